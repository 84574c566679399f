"""`zvm-provision inspect`: what an image's persist partition carries, gathered read-only through the appliance.

The image is opened read-only (libguestfs puts a throw-away overlay in front of it) and persist is mounted
read-only; nothing is followed through a link, and the walk over the tree is capped. core.inspection judges
what was read against the contract; ui.render shows it.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from provision.core.disk import ImageInfo
from provision.core.inspection import InspectReport
from provision.guest.launch import Accel, Notice
from provision.guest.report import inspect_disk
from provision.guest.session import ImageSession


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
