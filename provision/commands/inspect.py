"""`zvm-provision inspect`: what an image's persist partition carries, gathered read-only through the appliance.

The image is opened read-only (libguestfs puts a throw-away overlay in front of it) and persist is mounted
read-only; nothing is followed through a link, and the walk over the tree is capped. core.inspection judges
what was read against the contract; ui.render shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from provision.core.disk import ImageInfo
from provision.core.inspection import InspectReport, build_report
from provision.core.layout import Layout, load_layout
from provision.core.state import read_state
from provision.core.walk import walk_persist
from provision.guest.launch import Accel, Notice
from provision.guest.session import ImageSession

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
    return build_report(info, partitions, state, walk, layout, persist_device=device)


def inspect_image(
    info: ImageInfo, *, accel: Accel, waiting: Callable[[], AbstractContextManager[Any]] = nullcontext,
    notice: Notice | None = None,
) -> InspectReport:
    """Open one image read-only (libguestfs writes only to a throw-away overlay) and inspect it; `waiting` is
    shown while the appliance starts (the live line on a terminal)."""
    with ImageSession(info, readonly=True, accel=accel, notice=notice) as session:
        with waiting():
            session.wait()
        return inspect_disk(session.appliance, 0, info)
