"""A copy of a file that shares the source's blocks (a reflink: the FICLONE ioctl), where the filesystem can
(btrfs, XFS with reflink, bcachefs, OCFS2, and NFS 4.2 or CIFS servers that clone). It costs no data and no time,
and the blocks are copied only when one side is written (copy-on-write). Where the filesystem cannot (ext4, tmpfs,
two filesystems), nothing is made and the caller copies.

The new file is created exclusively (never over a file, never through a link), 0600 from its creation.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

FICLONE = 0x40049409  # _IOW(0x94, 9, int): linux/fs.h
# What the kernel answers when this filesystem, or this pair of files, cannot share blocks: not a reason to fail.
_CANNOT_CLONE = {errno.EXDEV, errno.EOPNOTSUPP, errno.ENOTTY, errno.EINVAL, errno.ENOSYS, errno.EBADF,
                 errno.EPERM, errno.ETXTBSY}
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def clone_file(source: Path, target: Path) -> bool:
    """`target` made as a reflink of `source` (True), or nothing made where the filesystem cannot share blocks
    (False). Any other failure (the folder missing, no space for the new file's metadata) raises OSError, with
    nothing left at `target`."""
    src = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
    try:
        dst = os.open(target, _NEW_FILE, 0o600)
        try:
            fcntl.ioctl(dst, FICLONE, src)
        except OSError as exc:
            os.close(dst)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            if exc.errno in _CANNOT_CLONE:
                return False
            raise
        except BaseException:
            os.close(dst)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            raise
        os.close(dst)
        return True
    finally:
        os.close(src)


def can_clone(source: Path, folder: Path, probe_name: str) -> bool:
    """Whether a file in `folder` can be a reflink of `source`: tried once on `folder/probe_name` (a name the
    caller owns), which is removed at once."""
    probe = folder / probe_name
    with contextlib.suppress(FileNotFoundError):
        os.unlink(probe)  # a killed run's
    try:
        return clone_file(source, probe)
    except OSError:
        return False
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(probe)
