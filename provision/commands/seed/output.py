"""`zvm-provision seed IMAGE --output OUT [--compress] [--format F]`: seed a new image to hand over, leaving
IMAGE byte-identical.

How (commands.workcopy): a qcow2 overlay backed by IMAGE is made beside OUT under a hidden name (IMAGE is only
read), seeded through the one seeding path (commands.seed.apply), then converted into OUT's format under another
hidden name, and linked to OUT only when complete; both hidden files are removed whatever happens. So OUT is
either absent or a whole image, and an existing OUT is never overwritten.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from provision.host import writing as hostfiles
from provision.commands.seed.apply import CtrlCWhileWriting, SeedOutcome
from provision.commands.workcopy import WorkCopy, tokened_leftovers
from provision.core.disk import ImageInfo
from provision.core.outputformat import OutputSpec
from provision.errors import StoppedWhileWriting, UsageError
from provision.guest.convert import record_output
from provision.guest.diskformat import probe_image
from provision.guest.qemuimg import QemuImgStopped


def check_output(out: Path) -> Path:
    """Before anything is read or made: OUT must be new (IMAGE itself exists, so it is refused too), in an
    existing folder."""
    out = Path(out).absolute()
    if os.path.lexists(out):
        raise UsageError(f"{out} already exists; it is never overwritten",
                         hint="remove it first, or give --output another name")
    if not out.parent.is_dir():
        raise UsageError(f"{out.parent}: no such folder (for --output)")
    return out


def leftovers_note(out: Path) -> str | None:
    """What to say about hidden working files that an earlier --output run to the same OUT could not remove
    (killed, power lost): they may be large. They are not removed here: another run to the same OUT may be
    using them right now."""
    found = tokened_leftovers(out)
    if not found:
        return None
    names = ", ".join(path.name for path in found)
    return (f"{out.parent} holds hidden files that an interrupted --output run to {out.name} left behind "
            f"({names}); remove them unless another zvm-provision is writing {out.name} now")


def seed_to_output(
    info: ImageInfo, out: Path, spec: OutputSpec, seed: Callable[[ImageInfo], SeedOutcome], ctrl_c: CtrlCWhileWriting,
) -> SeedOutcome:
    """Seed a working overlay of `info` with `seed`, then write it to `out` in `spec`'s format. The outcome
    names `out` and carries its record (format, size, sha256)."""
    work = WorkCopy(out, secrets.token_hex(6))
    stopped = StoppedWhileWriting(f"stopped by user (Ctrl-C): {out} was not created; {info.path} was not changed")
    try:
        work.make(info, overlay=True)
        outcome = seed(probe_image(work.partial))
        ctrl_c.end()  # the seeding is written; from here Ctrl-C stops the conversion at once
        if ctrl_c.interrupted:
            raise stopped
        work.finish(spec, convert=True, replace=False)
    except QemuImgStopped:
        raise stopped from None
    except KeyboardInterrupt as exc:
        if isinstance(exc, StoppedWhileWriting):
            raise
        raise stopped from None
    finally:
        work.remove()
    hostfiles.fsync(out.parent)
    written = dataclasses.replace(outcome.info, path=out)
    return dataclasses.replace(outcome, info=written, source=info.path, output=record_output(out, spec))
