"""What one disk of a launched read-only appliance carries: persist mounted read-only, its state and its tree
read, judged by core.inspection. `inspect`, batch's resume and the fleet's audit all read an image through it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from provision.core.disk import ImageInfo
from provision.core.inspection import InspectReport, build_report
from provision.core.layout import Layout, load_layout
from provision.core.state import read_state
from provision.core.walk import walk_persist

if TYPE_CHECKING:
    from provision.guest.appliance import Appliance


def inspect_disk(appliance: Appliance, index: int, info: ImageInfo, layout: Layout | None = None) -> InspectReport:
    """Inspect disk `index` of a launched, read-only appliance (batch can inspect many disks per launch)."""
    if not appliance.readonly:
        raise ValueError("inspect needs a read-only appliance: the image must not change")
    layout = layout or load_layout()
    partitions = appliance.partitions(index)
    # mount_persist finds persist itself (and refuses an image without exactly one); a read-only appliance
    # mounts it read-only ("ro").
    with appliance.mount_persist(index) as fs:
        state = read_state(fs, layout)
        walk = walk_persist(fs, layout)
        device = fs.device
    return build_report(info, partitions, state, walk, layout, persist_device=device, now=datetime.now(UTC))
