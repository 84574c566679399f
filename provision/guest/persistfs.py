"""A mounted persist filesystem, read and written through the appliance without ever following a link.

Every path is absolute inside persist ("/home/zvm/.ssh"): each component is lstat-checked (a real directory
is remembered, so each ancestor costs one round trip), and files are written under a temporary name in the
same directory, then renamed over the destination. Implements core.fs's ReadableFS, WalkableFS and
WritableFS; the appliance hands one out per mount_persist block.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat as statmod
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any

from provision.core.fs import TEMP_PREFIX, Stat, StatKind
from provision.errors import APPLIANCE_HINT, ApplianceError, UnsafeEntryError

_KIND_BY_FMT = {
    statmod.S_IFREG: StatKind.FILE,
    statmod.S_IFDIR: StatKind.DIR,
    statmod.S_IFLNK: StatKind.SYMLINK,
    statmod.S_IFIFO: StatKind.FIFO,
    statmod.S_IFSOCK: StatKind.SOCKET,
    statmod.S_IFCHR: StatKind.CHAR,
    statmod.S_IFBLK: StatKind.BLOCK,
}
_READ_CHUNK = 1 << 20  # below the protocol's message limit


def _check_path(path: str) -> list[str]:
    """Validate an absolute persist path; return it and its ancestors, root first ('/', '/a', '/a/b')."""
    if not isinstance(path, str) or not path.startswith("/") or "\x00" in path:
        raise ValueError(f"not an absolute persist path: {path!r}")
    if path == "/":
        return ["/"]
    parts = path[1:].split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"not a normalised persist path: {path!r}")
    return ["/"] + ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _absent(exc: RuntimeError) -> bool:
    return any(os.strerror(code) in str(exc) for code in (errno.ENOENT, errno.ENOTDIR))


def _stat(st: dict) -> Stat:
    mode = st["st_mode"]
    return Stat(
        kind=_KIND_BY_FMT.get(statmod.S_IFMT(mode), StatKind.UNKNOWN),
        uid=st["st_uid"],
        gid=st["st_gid"],
        mode=mode & 0o7777,
        nlink=st["st_nlink"],
        size=st["st_size"],
    )


def _where(path: str) -> str:
    return f"persist:{path}"


def _not_a(path: str, st: Stat | None, wanted: str) -> str:
    if st is None:
        return f"{_where(path)} does not exist"
    if st.kind == StatKind.SYMLINK:
        return f"{_where(path)} is a symbolic link; refusing to follow it"
    return f"{_where(path)} is a {st.kind}, not a {wanted}"


class PersistFS:
    """A mounted persist filesystem. Every path is absolute inside persist ("/home/zvm/.ssh")."""

    def __init__(self, g: Any, *, readonly: bool, device: str) -> None:  # g: a guestfs.GuestFS
        self._g = g
        self.readonly = readonly
        self.device = device
        # Paths found to be real directories. Only this object changes the filesystem while it is in use
        # (the appliance is ours alone), so a directory stays one until this object removes or replaces
        # it: each ancestor of a path is checked once, not at every call (each call is a round trip).
        self._dirs: set[str] = set()
        self._staged: dict[str, str] = {}  # temporary name -> the path it was staged for, checked then

    def retire(self) -> None:
        """The mount_persist block has ended: no further use."""
        self._g = None

    def _handle(self):
        if self._g is None:
            raise RuntimeError("this persist filesystem was used after its mount_persist block")
        return self._g

    # -- reading ---------------------------------------------------------------------------------

    def lstat(self, path: str) -> Stat | None:
        """The entry at `path` itself, always asked of the appliance (never from what is known)."""
        _check_path(path)
        try:
            st = self._handle().lstatns(path)
        except RuntimeError as exc:
            # The Python binding has no last_errno(): the daemon's message carries strerror.
            if _absent(exc):
                return None
            raise ApplianceError(f"cannot stat {_where(path)}: {exc}", hint=APPLIANCE_HINT) from None
        return _stat(st)

    def lstat_many(self, paths: Sequence[str]) -> dict[str, Stat | None]:
        """lstat() of each path, in one round trip per parent directory (lstatnslist) instead of one per
        path. The meaning is lstat's, parent directories included. A parent already found absent answers
        for its children without a call (a first seeding's whole contract: one call)."""
        by_parent: dict[str, list[str]] = {}
        for path in paths:
            _check_path(path)
            parent, name = ("/", ".") if path == "/" else (str(PurePosixPath(path).parent), PurePosixPath(path).name)
            if name not in by_parent.setdefault(parent, []):
                by_parent[parent].append(name)
        found: dict[str, Stat | None] = {}
        for parent in sorted(by_parent, key=lambda p: (len(_check_path(p)), p)):  # shallow first
            names = by_parent[parent]
            joined = [parent if name == "." else f"{parent.rstrip('/')}/{name}" for name in names]
            if any(found.get(ancestor, ...) is None for ancestor in _check_path(parent)):
                found.update(dict.fromkeys(joined))
                continue
            try:
                stats = self._handle().lstatnslist(parent, names)
            except RuntimeError as exc:
                if not _absent(exc):
                    raise ApplianceError(f"cannot stat in {_where(parent)}: {exc}", hint=APPLIANCE_HINT) from None
                stats = [{"st_ino": -1}] * len(names)
            for path, st in zip(joined, stats, strict=True):
                found[path] = None if st["st_ino"] == -1 else _stat(st)  # -1: could not be stat'ed, i.e. absent
        return {path: found[path] for path in paths}

    def read_file(self, path: str, limit: int = 1 << 20) -> bytes:
        st = self._checked_final(path)
        if st is None or st.kind != StatKind.FILE:
            raise UnsafeEntryError(_not_a(path, st, "regular file"))
        if st.size > limit:
            raise UnsafeEntryError(f"{_where(path)} is {st.size} bytes, more than the {limit} expected")
        data = b""
        while True:  # pread, unlike read_file, needs no udev settle: ~1 ms instead of ~130 ms under TCG
            chunk = self._call("read", path, self._handle().pread, path, _READ_CHUNK, len(data))
            data += chunk
            if len(chunk) < _READ_CHUNK or len(data) > limit:  # a short read is the end of the file
                break
        if len(data) > limit:
            raise UnsafeEntryError(f"{_where(path)} is more than the {limit} bytes expected")
        return data

    def readlink(self, path: str) -> str:
        st = self._checked_final(path)
        if st is None or st.kind != StatKind.SYMLINK:
            raise UnsafeEntryError(f"{_where(path)} is not a symbolic link")
        return self._call("read the link", path, self._handle().readlink, path)

    def listdir(self, path: str) -> list[str]:
        st = self._checked_final(path)
        if st is None or st.kind != StatKind.DIR:
            raise UnsafeEntryError(_not_a(path, st, "directory"))
        return sorted(self._call("list", path, self._handle().ls, path))

    # -- writing ---------------------------------------------------------------------------------

    def make_dir(self, path: str, uid: int, gid: int, mode: int) -> None:
        """Create one directory level (the parent must be a real directory).

        An existing real directory is kept and given the owner and mode; anything else there is refused.
        """
        st = self._checked_final(path)
        if st is not None and st.kind != StatKind.DIR:
            raise UnsafeEntryError(f"{_where(path)} is a {st.kind} where a directory is expected")
        g = self._handle()
        if st is None:
            self._call("create", path, g.mkdir_mode, path, 0o700)
        self._dirs.add(path)
        self._call("set the owner of", path, g.lchown, uid, gid, path)
        self._call("set the mode of", path, g.chmod, mode, path)

    def set_owner_mode(self, path: str, uid: int, gid: int, mode: int) -> None:
        st = self._checked_final(path)
        if st is None:
            raise UnsafeEntryError(f"{_where(path)} does not exist")
        if st.kind == StatKind.SYMLINK:
            raise UnsafeEntryError(f"{_where(path)} is a symbolic link; refusing to follow it")
        # lchown first (chown clears set-id bits), then chmod, which would follow a link: checked above.
        g = self._handle()
        self._call("set the owner of", path, g.lchown, uid, gid, path)
        self._call("set the mode of", path, g.chmod, mode, path)

    def stage_file(self, path: str, data: bytes, uid: int, gid: int, mode: int) -> str:
        """Write `data` under a temporary name in `path`'s directory, with its final owner and mode.

        Returns the temporary name for commit_file(). Staging many files, then one sync(), then committing
        them keeps every final name holding the old file or the whole new one, never an empty or partial
        one, even if the run dies (ext4 delays allocating a new file's blocks), at the cost of one sync.
        """
        if not isinstance(data, bytes):
            raise TypeError("stage_file takes bytes")
        self._check_file_target(path)
        parent = str(PurePosixPath(path).parent)
        tmp = f"{parent.rstrip('/')}/{TEMP_PREFIX}{secrets.token_hex(8)}"
        if self.lstat(tmp) is not None:
            raise UnsafeEntryError(f"{_where(tmp)} already exists")
        try:
            # The handle's umask is 077, so the temp file is born 0600: a secret is never readable by others.
            g = self._handle()
            self._call("write", tmp, g.write, tmp, data)
            self._call("set the owner of", tmp, g.lchown, uid, gid, tmp)
            self._call("set the mode of", tmp, g.chmod, mode, tmp)
            written = self.lstat(tmp)
            if written is None or written.kind != StatKind.FILE or written.nlink != 1 or written.size != len(data):
                raise UnsafeEntryError(f"{_where(tmp)} changed while it was written")
        except BaseException:
            self.discard(tmp)
            raise
        self._staged[tmp] = path
        return tmp

    def commit_file(self, tmp: str, path: str) -> None:
        """Rename a staged file into place. rename(2) replaces whatever sits at `path` (a regular file, a
        symbolic link, a fifo...) without following it; a directory there is refused."""
        if self._staged.pop(tmp, None) != path or path in self._dirs:  # else checked when staged, unchanged since
            self._check_file_target(path)
        self._call("rename", path, self._handle().rename, tmp, path)

    def discard(self, tmp: str) -> None:
        self._staged.pop(tmp, None)
        try:
            self._handle().rm_f(tmp)
        except RuntimeError:
            pass

    def sync(self) -> None:
        """Flush this filesystem and its disk, no other. The daemon's sync would fsync every block device of
        the appliance, partitions included: a batch appliance holding many disks paid for all of them at
        every disk's sync (0.9 s per sync with 10 disks under TCG). BLKFLSBUF syncs the filesystem mounted on
        the device (sync_filesystem: ext4 commits its journal with a cache flush), then the device."""
        self._call("sync", "/", self._handle().blockdev_flushbufs, self.device)

    def _check_file_target(self, path: str) -> None:
        st = self._checked_final(path)
        if st is not None and st.kind == StatKind.DIR:
            raise UnsafeEntryError(f"{_where(path)} is a directory where a file is expected")

    def remove(self, path: str) -> None:
        """Unlink a non-directory entry (never follows it). Absent: nothing to do."""
        st = self._checked_final(path)
        if st is None:
            return
        if st.kind == StatKind.DIR:
            raise UnsafeEntryError(f"{_where(path)} is a directory; remove_tree removes directories")
        self._call("remove", path, self._handle().rm, path)

    def remove_tree(self, path: str) -> None:
        """Remove a directory and everything below it (rm -rf never follows links). Absent: nothing to do."""
        if path == "/":
            raise ValueError("refusing to remove the root of persist")
        st = self._checked_final(path)
        if st is None:
            return
        self._dirs = {known for known in self._dirs if known != path and not known.startswith(path + "/")}
        self._call("remove", path, self._handle().rm_rf, path)

    # -- helpers ---------------------------------------------------------------------------------

    def _checked_final(self, path: str) -> Stat | None:
        """lstat every ancestor of `path` (each must be a real directory), then return lstat(path)."""
        chain = _check_path(path)
        for ancestor in chain[:-1]:
            if ancestor in self._dirs:
                continue
            st = self.lstat(ancestor)
            if st is None:
                raise UnsafeEntryError(f"{_where(ancestor)} does not exist (needed for {_where(path)})")
            if st.kind == StatKind.SYMLINK:
                raise UnsafeEntryError(
                    f"{_where(ancestor)} is a symbolic link; refusing to follow it to reach {_where(path)}"
                )
            if st.kind != StatKind.DIR:
                raise UnsafeEntryError(f"{_where(ancestor)} is a {st.kind} where a directory is expected")
            self._dirs.add(ancestor)
        st = self.lstat(path)
        if st is not None and st.kind == StatKind.DIR:
            self._dirs.add(path)
        return st

    def _call(self, what: str, path: str, fn, *args):
        if self.readonly and what not in ("read", "read the link", "list"):
            raise ApplianceError(f"cannot {what} {_where(path)}: persist is mounted read-only")
        try:
            return fn(*args)
        except RuntimeError as exc:
            # The libguestfs message names the call and the path, never the data written.
            raise ApplianceError(f"cannot {what} {_where(path)}: {exc}", hint=APPLIANCE_HINT) from None
