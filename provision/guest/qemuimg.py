"""The one runner of qemu-img: a new blank qcow2, an overlay backed by an image, a standalone qcow2 copy, an
overlay pointed at a copy of its base and committed into it, a conversion into an output format, the size a copy
needs, and whether another process holds an image's lock.

Each run's failure is mapped here once: qemu-img missing, the terminal's Ctrl-C (QemuImgStopped), a full host
disk, or qemu-img's own last line. The file a run was writing is removed whatever stops it. qemu-img runs
under umask 077: a file it creates is its owner's alone (callers create an image's file first, 0600, with
host.writing.create_private). Every message that names the tool takes its name from QEMU_IMG
(tests/test_architecture.py allows the string nowhere else).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from provision.core.disk import ImageInfo
from provision.core.outputformat import OutputFormat, OutputSpec
from provision.errors import ProvisionError

QEMU_IMG = "qemu-img"
NOT_INSTALLED = f"{QEMU_IMG} is not installed (Debian: apt-get install qemu-utils)"
COPY_FAILED = f"{QEMU_IMG} could not copy the base"  # batch's copy, standalone or an overlay
MEASURE_TIMEOUT = 120.0  # seconds: a measure reads the image's allocation map, never its data
INFO_TIMEOUT = 60.0

# convert's own options per format: vmdk as one growable file (VMware Workstation/Player and ESXi's importers
# read it), vdi dynamically allocated (VirtualBox's default).
_FORMAT_OPTIONS = {
    OutputFormat.VMDK: ["-o", "subformat=monolithicSparse"],
    OutputFormat.VDI: ["-o", "static=off"],
}
# Compressed qcow2 uses zstd: measured here (qemu-img 7.2, 2 cores) on a 200 MB image it took 0.8-0.9 s
# against 5.4-8.1 s for the default zlib, and came out 4% smaller (-W made zlib ~1.5x faster, zstd slower).
# qemu reads zstd clusters since 5.1 (2020); older readers (Ubuntu 20.04's qemu 4.2) cannot open the image.
_COMPRESS_OPTIONS = ["-c", "-o", "compression_type=zstd"]


class QemuImgStopped(Exception):
    """qemu-img got the terminal's Ctrl-C (the whole process group gets it): a stop, not a failure."""


def create_blank(path: Path, size: int) -> None:
    """A new empty qcow2 of `size` bytes at `path` (sample-disk)."""
    _run(["create", "-q", "-f", "qcow2", str(path), str(size)], failed=f"{QEMU_IMG} create failed", target=path,
         full=f"to create {path.name}")


def create_overlay(base: ImageInfo, target: Path, *, failed: str | None = None, full: str | None = None) -> None:
    """A qcow2 overlay at `target` backed by `base` (absolute path, its probed format named): writes land in
    the overlay, the base is only read. `failed` and `full` say what it is for (by default: seed's working
    overlay; batch's --overlay copy says COPY_FAILED)."""
    command = ["create", "-q", "-f", "qcow2", "-b", str(Path(base.path).absolute()), "-F", base.format,
               str(target)]
    _run(command, failed=failed or f"{QEMU_IMG} could not make a working overlay of {base.path}", target=target,
         full=full or f"for a working overlay of {base.path}")


def copy_qcow2(base: ImageInfo, target: Path) -> None:
    """A standalone sparse qcow2 copy of `base` at `target` (batch's copy of the base)."""
    command = ["convert", "-q", "-f", base.format, "-O", "qcow2", str(base.path), str(target)]
    _run(command, failed=COPY_FAILED, target=target, full="to copy the base")


def rebase_unsafe(overlay: Path, backing: Path) -> None:
    """`overlay` (qcow2) now backed by `backing` (qcow2, absolute path), its clusters left as they are: only
    right when `backing` holds what the old backing file held, byte for byte (a copy of it)."""
    _run(["rebase", "-q", "-u", "-f", "qcow2", "-b", str(Path(backing).absolute()), "-F", "qcow2", str(overlay)],
         failed=f"{QEMU_IMG} could not point the seeded overlay at its copy of the base")


def commit(overlay: Path) -> None:
    """`overlay`'s clusters written into its backing file (-d: the overlay, removed next, is not emptied)."""
    _run(["commit", "-q", "-d", "-f", "qcow2", str(overlay)],
         failed=f"{QEMU_IMG} could not write the seeded overlay into its copy of the base",
         target=overlay, full="to write the seeded image")  # the overlay is discarded whatever happens


def convert_command(source: Path, source_format: str, target: Path, spec: OutputSpec) -> list[str]:
    """The whole command line of a conversion into `spec`'s format (scripts/bench.py times it too)."""
    command = [QEMU_IMG, "convert", "-q", "-f", source_format, "-O", spec.format.value]
    if spec.compress:
        command += _COMPRESS_OPTIONS
    command += _FORMAT_OPTIONS.get(spec.format, [])
    return [*command, str(source), str(target)]


def convert(source: Path, source_format: str, target: Path, spec: OutputSpec) -> None:
    """`source` written to `target` in `spec`'s format (not synced: the caller syncs what it keeps)."""
    _run(convert_command(source, source_format, target, spec)[1:],
         failed=f"{QEMU_IMG} could not write the {spec.describe()} image", target=target,
         full=f"for the {spec.describe()} image")


def measure_qcow2(base: ImageInfo) -> int | None:
    """The bytes a standalone qcow2 copy of `base` needs, or None when qemu-img cannot tell."""
    try:
        out = _run(["measure", "--output=json", "-f", base.format, "-O", "qcow2", str(base.path)],
                   failed="measure", timeout=MEASURE_TIMEOUT)
        return int(json.loads(out)["required"])
    except (ProvisionError, QemuImgStopped, OSError, subprocess.SubprocessError, ValueError, KeyError, TypeError):
        return None


def open_problem(info: ImageInfo) -> ProvisionError | None:
    """Why the image cannot be opened, asked before a shared launch (one image that cannot be opened would stop
    the whole launch), else None. Another process (a running VM, another run) holding its lock is read as a
    launch's refusal is (guest.launch.in_use_error): ImageInUseError. qemu-img opens an image as a launch does."""
    from provision.guest.launch import in_use_error  # here: cli.py imports this module for QEMU_IMG at start-up

    try:
        _run(["info", "-f", info.format, str(info.path)], failed=f"{QEMU_IMG} could not open the image",
             timeout=INFO_TIMEOUT)
    except _Failed as exc:
        return in_use_error(exc.stderr, [info]) or exc
    except (ProvisionError, QemuImgStopped, OSError, subprocess.SubprocessError):
        return None  # the launch will say what is wrong
    return None


class _Failed(ProvisionError):
    """qemu-img's own failure: the message for the person, and its whole stderr."""

    def __init__(self, message: str, stderr: str) -> None:
        super().__init__(message)
        self.stderr = stderr


def _run(args: Sequence[str], *, failed: str, target: Path | None = None, full: str | None = None,
         timeout: float | None = None) -> str:
    """qemu-img `args`, its output. Not installed: ProvisionError. Ctrl-C: QemuImgStopped. A full host disk:
    ProvisionError naming `target`'s folder and what it was `full` for. Else `failed`: qemu-img's last line
    (_Failed). `target` is removed on any failure, the exception in flight (KeyboardInterrupt) included."""
    try:
        return subprocess.run([QEMU_IMG, *args], capture_output=True, text=True, check=True,
                              stdin=subprocess.DEVNULL, timeout=timeout, umask=0o077).stdout
    except FileNotFoundError as exc:
        _remove(target)
        if exc.filename == QEMU_IMG:
            raise ProvisionError(NOT_INSTALLED) from None
        raise
    except subprocess.CalledProcessError as exc:
        _remove(target)
        if exc.returncode == -signal.SIGINT:
            raise QemuImgStopped() from None
        text = (exc.stderr or "").strip()
        if "No space left" in text and target is not None and full is not None:
            raise ProvisionError(f"the host disk is full: no space left in {target.parent} {full}") from None
        reason = text.splitlines()[-1] if text else f"exit status {exc.returncode}"
        raise _Failed(f"{failed}: {reason}", text) from None
    except BaseException:
        _remove(target)
        raise


def _remove(path: Path | None) -> None:
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
