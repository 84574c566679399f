"""The one way the tool writes a file on the host (not in an image): private from its first instant, never
through a symbolic link, synced before it counts.

- write_atomic: replace a file whole (batch's report.json and initial-passwords.csv, the KVM verdict cache);
- create_exclusive: make a file that must not exist yet (a generated key pair);
- create_private: an empty file, 0600 from its first instant, for another program (guest.qemuimg) to fill:
  every working copy and output image (they hold the password hash, the host key, the Netbird setup key);
- make_private_dirs: the folders the tool creates, 0700 whatever the umask;
- fsync: make a file's or a folder's content durable (a renamed image, a folder's new entries); sync_image
  the same for an image the appliance wrote, its failure never ignored.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from provision.errors import ProvisionError, UsageError

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def fsync(path: Path | str) -> None:
    """fsync(2) a file or a folder (a folder: its entries, e.g. a rename into it)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sync_image(path: Path | str) -> None:
    """fsync an image the appliance wrote: a failure (EIO) may have lost its writes, so it is a ProvisionError,
    never ignored; a file that cannot be synced at all (EINVAL) has nothing to flush."""
    try:
        fsync(path)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise ProvisionError(f"{path} could not be written out to the host disk ({exc.strerror}); the image "
                                 "may not be complete", hint="check the host disk, then run again") from None


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.fsync(fd)


def create_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from its first instant (no window with wider permissions); never overwrite
    anything, never follow a link (FileExistsError)."""
    fd = os.open(path, _NEW_FILE, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; a .pub must be readable
        _write_all(fd, data)
    finally:
        os.close(fd)


def create_private(path: Path) -> None:
    """An empty file at `path`, readable and writable by its owner only from its first instant, whatever the
    umask: never an existing file, never through a link (FileExistsError). The image tool then writes into it
    (it truncates, it keeps the mode)."""
    os.close(os.open(path, _NEW_FILE, 0o600))


def make_private_dirs(path: Path) -> None:
    """`path` and each missing folder above it, created 0700 (an existing one is left as it is)."""
    missing = []
    for folder in (path, *path.parents):
        if os.path.lexists(folder):
            break  # a file there: the mkdir below says "Not a directory", naming it
        missing.append(folder)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            if not os.path.isdir(folder):  # made meanwhile by another run: a folder is fine
                raise


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data`: written to `.NAME.tmp` beside it (0600 while it is written), synced, given
    `mode`, renamed over `path`, and the folder synced. A reader sees the old file or the whole new one.

    The temporary name is fixed, so a run killed half-way leaves nothing new behind (the next run removes
    it first): callers that may run at once hold a lock around the call.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    fd = os.open(tmp, _NEW_FILE, 0o600)
    try:
        try:
            _write_all(fd, data)
            if mode != 0o600:
                os.fchmod(fd, mode)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync(path.parent)


def write_key_pair(path: Path, private_bytes: bytes, public_line: str) -> None:
    """Write `path` (0600) and `path`.pub (0644); refuse to overwrite either."""
    path = Path(path)
    pub = path.with_name(path.name + ".pub")
    for target in (path, pub):
        if os.path.lexists(target):
            raise UsageError(f"{target} already exists; not overwriting it")
    try:
        create_exclusive(path, private_bytes, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists; not overwriting it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        create_exclusive(pub, public_line.rstrip("\n").encode("utf-8") + b"\n", 0o644)
    except OSError as exc:
        os.unlink(path)  # no half-written pair: the private key alone is useless to the wizard
        if isinstance(exc, FileExistsError):
            raise UsageError(f"{pub} already exists; not overwriting it") from None
        raise UsageError(f"cannot write {pub}: {exc.strerror}") from None
