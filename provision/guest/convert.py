"""The last step of an image made to hand over: its conversion (guest.qemuimg) from the seeded qcow2 into the
chosen format (compressed qcow2, raw, vmdk, vdi), synced, and the record a recipient verifies it against (size,
sha256).

The conversion writes only the temporary name it is given; placing it under the final name is the caller's
(commands.workcopy: batch replaces, seed refuses to overwrite). Whatever stops the conversion (the tool's error,
a full disk, Ctrl-C, an exception), the temporary file is removed before this returns or raises.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path

from provision.core.outputformat import OutputRecord, OutputSpec
from provision.guest import qemuimg

_DIGEST_CHUNK = 1 << 20


def convert_image(source: Path, source_format: str, target: Path, spec: OutputSpec) -> None:
    """Write `source` (a seeded image, or an overlay of one) to `target` in `spec`'s format, synced.
    On any failure `target` is removed: ProvisionError (the tool's reason), qemuimg.QemuImgStopped, or the
    exception in flight (KeyboardInterrupt)."""
    qemuimg.convert(source, source_format, target, spec)
    try:
        with open(target, "rb") as handle:  # durable before it is given its final name
            os.fsync(handle.fileno())
    except BaseException:
        _remove(target)
        raise


def record_output(path: Path, spec: OutputSpec) -> OutputRecord:
    """Size and sha256 of a finished image, for report.json and the seed summary."""
    return OutputRecord(spec.format, spec.compress, *size_and_sha256(path))


def size_and_sha256(path: Path) -> tuple[int, str]:
    """The file's size in bytes and sha256 (hex), read in chunks (an image can be many GiB)."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_DIGEST_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
