"""`zvm-provision sample-disk OUT`: a blank disk with the zvm layout, to try the tool on (tests and benchmarks
use it too). The disk is built under a temporary name in the same folder and linked to OUT only when complete,
so an interrupted run never leaves a half-made disk under the final name. An existing OUT is never overwritten.
"""

from __future__ import annotations

import contextlib
import os
from contextlib import nullcontext
import secrets
from pathlib import Path

from provision.host import writing as hostfiles
from provision.core.text import parse_size
from provision.errors import UsageError
from provision.guest.launch import Accel, Notice
from provision.guest.sampledisk import Step, build_sample_disk, plan_partitions


def create_sample_disk(path: Path, size: str = "20G", *, accel: Accel = "auto",
                       step: Step = lambda _doing: nullcontext(), notice: Notice | None = None) -> None:
    """Create a blank qcow2 at `path` with the zvm layout, in one appliance launch; `step(what)` is shown around
    each step (the live line on a terminal)."""
    path = Path(path)
    size_bytes = parse_size(size)
    partitions = plan_partitions(size_bytes)
    if os.path.lexists(path):
        raise UsageError(f"{path} already exists; choose another name (it is never overwritten)")
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent}: no such folder")

    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(6)}"
    try:
        build_sample_disk(tmp, size_bytes, partitions, accel=accel, step=step, notice=notice)
        try:
            os.link(tmp, path)  # fails instead of replacing a file that appeared meanwhile
        except FileExistsError:
            raise UsageError(f"{path} already exists; choose another name (it is never overwritten)") from None
        except OSError:
            if os.path.lexists(path):
                raise
            os.rename(tmp, path)  # a filesystem without hard links
        hostfiles.fsync(path.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
