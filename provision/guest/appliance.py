"""The only module that imports guestfs: open images, find persist, safe writes, clean shutdown.

guestfs is imported lazily inside functions so that `zvm-provision --help` never loads it.

Safety rules (docs: shared/reference/security-notes.md section 1):
- every image is added with the format diskformat.probe_image found (never probed by qemu);
- tracing and verbose output are forced off (a trace prints write payloads: secrets);
- network stays off; the direct backend runs qemu as our own child;
- only persist is mounted, with mount_vfs and an explicit ext4 type;
- no path operation follows a symlink: every component is lstat-checked; files are written to a
  temp name in the same directory and renamed over the destination.

--accel auto tries KVM with a watchdog on that launch's own qemu; a KVM that hangs or crashes is
remembered for this host (~/.cache/zvm-provision/accel.json) and later runs go straight to TCG.

Every call to the appliance is a round trip, and calls that name a device start `udevadm settle` in it
(about 0.1 s under TCG): persist is found with a few reads, mounted read-only for the first look and
remounted read-write for the writes, stat calls are batched, and shutdown flushes once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import secrets
import shutil
import stat as statmod
import struct
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from provision.guest.diskformat import ImageInfo
from provision.errors import (
    ApplianceError,
    ImageInUseError,
    ImageUnusableError,
    ProvisionError,
    UnsafeEntryError,
)
from provision.core.layout import load_layout

ACCEL_CHOICES = ("auto", "kvm", "tcg")
KVM_LAUNCH_TIMEOUT = 60.0  # a working KVM launch takes 2-5 s; a broken nested KVM hangs forever
TCG_LAUNCH_TIMEOUT = 600.0  # about 15 s here; libguestfs itself would wait 20 minutes
APPLIANCE_HINT = "run libguestfs-test-tool to diagnose libguestfs"
TEMP_PREFIX = ".zvm-provision."

_KIND_BY_FMT = {
    statmod.S_IFREG: "file",
    statmod.S_IFDIR: "dir",
    statmod.S_IFLNK: "symlink",
    statmod.S_IFIFO: "fifo",
    statmod.S_IFSOCK: "socket",
    statmod.S_IFCHR: "char",
    statmod.S_IFBLK: "block",
}
_LOCK_RE = re.compile(r'Failed to get (?:shared )?"write" lock|Is another process using the image')
_LOCK_PATH_RE = re.compile(r"Is another process using the image \[([^\]]+)\]")
_READ_ONLY_RE = re.compile(r"Permission denied|Operation not permitted|Read-only file system")


@dataclass(frozen=True)
class Stat:
    kind: str  # "file" "dir" "symlink" "fifo" "socket" "char" "block"
    uid: int
    gid: int
    mode: int  # permission bits & 0o7777
    nlink: int
    size: int


@dataclass(frozen=True)
class Partition:
    device: str
    label: str | None
    fs_type: str | None
    size: int

    def describe(self) -> str:
        label = "no label" if self.label is None else f"label {_shown(self.label)}"
        fs_type = "unknown filesystem" if self.fs_type is None else _shown(self.fs_type, quote=False)
        return f"{self.device} ({label}, {fs_type}, {self.size} bytes)"


@dataclass(frozen=True)
class NewPartition:
    """One partition for Appliance.create_gpt_layout (sectors of 512 bytes, end inclusive)."""

    name: str  # GPT partition name
    start: int
    end: int
    fs_type: str  # "vfat", "ext4"...
    label: str
    gpt_type: str | None = None  # GPT type GUID, e.g. the EFI system partition's


def _shown(text: str, *, quote: bool = True) -> str:
    """Text read from the guest is untrusted: cap and escape it before it reaches a terminal."""
    text = text if len(text) <= 64 else text[:64] + "..."
    return repr(text) if quote else text.encode("unicode_escape").decode("ascii")


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
        kind=_KIND_BY_FMT.get(statmod.S_IFMT(mode), "unknown"),
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
    if st.kind == "symlink":
        return f"{_where(path)} is a symbolic link; refusing to follow it"
    return f"{_where(path)} is a {st.kind}, not a {wanted}"


class PersistFS:
    """A mounted persist filesystem. Every path is absolute inside persist ("/home/zvm/.ssh")."""

    def __init__(self, g, *, readonly: bool, device: str) -> None:
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
        if st is None or st.kind != "file":
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
        if st is None or st.kind != "symlink":
            raise UnsafeEntryError(f"{_where(path)} is not a symbolic link")
        return self._call("read the link", path, self._handle().readlink, path)

    def listdir(self, path: str) -> list[str]:
        st = self._checked_final(path)
        if st is None or st.kind != "dir":
            raise UnsafeEntryError(_not_a(path, st, "directory"))
        return sorted(self._call("list", path, self._handle().ls, path))

    # -- writing ---------------------------------------------------------------------------------

    def make_dir(self, path: str, uid: int, gid: int, mode: int) -> None:
        """Create one directory level (the parent must be a real directory).

        An existing real directory is kept and given the owner and mode; anything else there is refused.
        """
        st = self._checked_final(path)
        if st is not None and st.kind != "dir":
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
        if st.kind == "symlink":
            raise UnsafeEntryError(f"{_where(path)} is a symbolic link; refusing to follow it")
        # lchown first (chown clears set-id bits), then chmod, which would follow a link: checked above.
        g = self._handle()
        self._call("set the owner of", path, g.lchown, uid, gid, path)
        self._call("set the mode of", path, g.chmod, mode, path)

    def write_file(self, path: str, data: bytes, uid: int, gid: int, mode: int) -> None:
        """Atomically replace `path` with `data`, never following a link (stage, sync, commit)."""
        tmp = self.stage_file(path, data, uid, gid, mode)
        try:
            self.sync()
            self.commit_file(tmp, path)
        except BaseException:
            self.discard(tmp)
            raise

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
            if written is None or written.kind != "file" or written.nlink != 1 or written.size != len(data):
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
        self._call("sync", "/", self._handle().sync)

    def _check_file_target(self, path: str) -> None:
        st = self._checked_final(path)
        if st is not None and st.kind == "dir":
            raise UnsafeEntryError(f"{_where(path)} is a directory where a file is expected")

    def remove(self, path: str) -> None:
        """Unlink a non-directory entry (never follows it). Absent: nothing to do."""
        st = self._checked_final(path)
        if st is None:
            return
        if st.kind == "dir":
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
            if st.kind == "symlink":
                raise UnsafeEntryError(
                    f"{_where(ancestor)} is a symbolic link; refusing to follow it to reach {_where(path)}"
                )
            if st.kind != "dir":
                raise UnsafeEntryError(f"{_where(ancestor)} is a {st.kind} where a directory is expected")
            self._dirs.add(ancestor)
        st = self.lstat(path)
        if st is not None and st.kind == "dir":
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


class _KvmHangs(Exception):
    """Under --accel auto, KVM did not start the appliance before its watchdog fired."""


class _KvmUnavailable(Exception):
    """Under --accel auto, qemu says KVM is not there (nothing to remember: finding out costs nothing)."""


_KVM_UNAVAILABLE = "kvm not available"  # libguestfs: "force_kvm supplied but kvm not available"


def _qemu_line(text: str) -> str | None:
    """qemu's last own line in a launch's output: its error, if it printed one."""
    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("qemu")]
    return lines[-1] if lines else None


class _KvmCrashed(Exception):
    """Under --accel auto, the appliance failed at once under KVM (qemu aborted, for instance)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


_OUTPUT_LIMIT = 1 << 16


def _events() -> int:
    import guestfs

    return guestfs.EVENT_APPLIANCE | guestfs.EVENT_LIBRARY | guestfs.EVENT_WARNING


def _collect(output: list[str], buf) -> None:
    if sum(map(len, output)) < _OUTPUT_LIMIT:
        output.append(buf.decode("utf-8", "replace") if isinstance(buf, bytes) else str(buf))


def _quiet_errors(g) -> None:
    """Keep libguestfs from printing its errors on stderr in this thread; they still arrive as exceptions.

    libguestfs keeps its error handler per thread, and the Python binding switches the printing off only in
    the thread that made the handle. A launch runs in another thread (seed.ImageSession), where a KVM that
    hangs or crashes would print screens of "guestfs_launch failed" text. The binding has no call for it,
    so the C function is called on the handle the binding wraps; if that ever fails, errors are printed
    as before, nothing worse."""
    try:
        import ctypes

        capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.py_object, ctypes.c_char_p)(
            ("PyCapsule_GetPointer", ctypes.pythonapi)
        )
        handle = capsule_pointer(g._o, b"guestfs_h")
        library = ctypes.CDLL("libguestfs.so.0")  # already loaded by the binding: the same library
        library.guestfs_set_error_handler.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
        library.guestfs_set_error_handler(handle, None, None)
    except Exception:  # noqa: BLE001 - a missing nicety, never a failure
        pass


def _children_with(token: bytes) -> set[int]:
    """Pids of this process's children whose command line holds `token`."""
    me = os.getpid()
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read()
            fields = raw[raw.rfind(b")") + 2 :].split()
            if len(fields) < 2 or int(fields[1]) != me:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if token in fh.read():
                    found.add(int(name))
        except (OSError, ValueError):
            continue
    return found


class _Watchdog:
    """Kills the qemu that one launch started if the appliance is not up within `timeout` seconds.

    Only that launch's qemu: batch runs several appliances in one process, and a watchdog must never touch
    another's. g.get_pid() cannot be used (launch() holds the handle until it returns), so the launch marks
    its qemu: a unique word on the appliance kernel's command line (the kernel passes unknown words to the
    appliance's init, which ignores them), found in qemu's argv in /proc. The clock starts when that qemu
    appears (building the appliance with supermin comes first and may take a while on a first run).
    """

    def __init__(self, g, timeout: float) -> None:
        self.timeout = timeout
        self.fired = False
        word = f"zvm_provision_launch={secrets.token_hex(8)}"
        append = g.get_append()
        g.set_append(f"{append} {word}" if append else word)
        self._token = word.encode()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="zvm-launch-watchdog", daemon=True)

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        seen_at = None
        while not self._stop.wait(0.5):
            ours = _children_with(self._token)
            if not ours:
                continue
            now = time.monotonic()
            seen_at = seen_at or now
            if now - seen_at < self.timeout:
                continue
            with self._lock:
                if self._stop.is_set():
                    return
                self.fired = True
                for pid in ours:
                    try:
                        os.kill(pid, 9)
                    except OSError:
                        pass
            return


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zvm-provision" / "accel.json"


def _shown_path(path: Path) -> str:
    home = os.path.expanduser("~")
    text = str(path)
    return "~" + text[len(home) :] if home not in ("", "/") and text.startswith(home + "/") else text


def _host_key(hv: str) -> str:
    """What a KVM verdict depends on: this kernel and this qemu binary. Read from the binary's metadata
    rather than by running `qemu --version`, which is slower and can time out on a loaded host (and a
    key that changes from run to run would make every run wait for the watchdog again)."""
    path = shutil.which(hv) or hv
    try:
        st = os.stat(path)
        qemu = f"{os.path.realpath(path)} {st.st_size} {int(st.st_mtime)}"
    except OSError:
        qemu = f"{hv} (missing)"
    return f"{os.uname().release} | {qemu}"


KVM_VERDICTS = ("hangs", "crashes")  # what a failed KVM launch under --accel auto records for this host
_VERDICTS_LOCK = threading.Lock()  # appliances in several threads (batch --jobs) may record at once


def _read_verdicts() -> dict:
    try:
        data = json.loads(_cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _kvm_verdict(key: str) -> str | None:
    entry = _read_verdicts().get(key)
    verdict = entry.get("kvm") if isinstance(entry, dict) else None
    return verdict if verdict in KVM_VERDICTS else None


def _remember_kvm_verdict(key: str, verdict: str, detail: str) -> None:
    """Add this host's verdict to the cache. Threads take a lock, processes an flock on a lock file, and the
    file is replaced atomically from a uniquely named temporary file: no update is lost, none is torn."""
    if verdict not in KVM_VERDICTS:
        raise ValueError(f"unknown KVM verdict {verdict!r}")
    path = _cache_file()
    entry = {"kvm": verdict, "detail": detail, "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with _VERDICTS_LOCK:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.with_name(path.name + ".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                verdicts = _read_verdicts()
                verdicts[key] = entry
                fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
                try:
                    with os.fdopen(fd, "w", encoding="utf-8") as fh:
                        fh.write(json.dumps(verdicts, indent=2) + "\n")
                    os.replace(tmp, path)
                except BaseException:
                    os.unlink(tmp)
                    raise
        except OSError:
            pass  # only an optimisation: the next run will try KVM again


LAUNCH_MARK_ENV = "ZVM_PROVISION_LAUNCH_MARK_FILE"  # scripts/bench.py: "launched <time.monotonic()>" goes there


def _bench_mark(event: str) -> None:
    """For the benchmark: the moment the appliance is up, on the system-wide monotonic clock, so that the
    work after the launch can be compared with guestfish's. (The wizard's own mark has its own file.)"""
    target = os.environ.get(LAUNCH_MARK_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(f"{event} {time.monotonic():.6f}\n")


def _notice(text: str) -> None:
    print(f"zvm-provision: {text}", file=sys.stderr, flush=True)


def _kvm_usable() -> bool:
    return os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)


_READ_CHUNK = 1 << 20  # below the protocol's message limit
_EXT_SUPERBLOCK_OFFSET = 1024
_EXT_SUPERBLOCK_SIZE = 512
# Features an ext3 driver understands; anything beyond makes blkid call the filesystem ext4.
_EXT3_INCOMPAT = 0x0002 | 0x0004 | 0x0010  # filetype, recover, meta_bg
_EXT3_RO_COMPAT = 0x0001 | 0x0002 | 0x0004  # sparse_super, large_file, btree_dir
_EXT_HAS_JOURNAL, _EXT_INCOMPAT_JOURNAL_DEV, _EXT_INCOMPAT_64BIT = 0x0004, 0x0008, 0x0080


def _ext_probe(superblock: bytes) -> tuple[str, str, int] | None:
    """(label, "ext2"/"ext3"/"ext4" as blkid names them, size in bytes) of an ext superblock, or None when
    it is not one. Reading it takes one pread_device, where blkid starts a program in the appliance."""
    if len(superblock) < 0x154 or superblock[0x38:0x3A] != b"\x53\xef":
        return None
    compat, incompat, ro_compat = struct.unpack_from("<III", superblock, 0x5C)
    if incompat & _EXT_INCOMPAT_JOURNAL_DEV:
        return None  # an external journal, not a filesystem
    if incompat & ~_EXT3_INCOMPAT or ro_compat & ~_EXT3_RO_COMPAT:
        kind = "ext4"
    else:
        kind = "ext3" if compat & _EXT_HAS_JOURNAL else "ext2"
    blocks = struct.unpack_from("<I", superblock, 0x04)[0]
    if incompat & _EXT_INCOMPAT_64BIT:
        blocks |= struct.unpack_from("<I", superblock, 0x150)[0] << 32
    block_size = 1024 << struct.unpack_from("<I", superblock, 0x18)[0]
    label = superblock[0x78:0x88].split(b"\0", 1)[0].decode("utf-8", "replace")
    return label, kind, blocks * block_size


_SECTOR = 512
_GPT_READ = 34 * _SECTOR  # protective MBR, GPT header, 128 entries of 128 bytes: what every GPT tool writes
# The first read of a disk: the GPT and the superblock of a first partition aligned at 1 MiB (every
# partitioning tool's default), so that partition needs no read of its own (each costs a udev settle).
_FIRST_READ = (1 << 20) + _EXT_SUPERBLOCK_OFFSET + _EXT_SUPERBLOCK_SIZE


def _gpt_partitions(raw: bytes, disk_size: int) -> list[tuple[int, int]] | None:
    """(number, first byte) of each partition in a disk's primary GPT, numbered as Linux numbers them
    (entry index + 1).

    None unless the table is one the kernel uses exactly as read here: a protective MBR, header and entry
    CRCs that match, entries where tools put them, every partition within the usable area, which lies on
    the disk. Anything else (an MBR disk, a damaged primary table the kernel would replace by the backup)
    is left to the full listing, which asks the appliance's kernel."""
    if len(raw) < _GPT_READ or raw[510:512] != b"\x55\xaa":
        return None
    if not any(raw[446 + 16 * i + 4] == 0xEE for i in range(4)):
        return None
    header = raw[_SECTOR : 2 * _SECTOR]
    if header[:8] != b"EFI PART":
        return None
    size, crc = struct.unpack_from("<II", header, 12)
    (my_lba,) = struct.unpack_from("<Q", header, 24)
    first_usable, last_usable = struct.unpack_from("<QQ", header, 40)
    entries_lba, count, entry_size, entries_crc = struct.unpack_from("<QIII", header, 72)
    if not 92 <= size <= _SECTOR or my_lba != 1 or entries_lba != 2 or entry_size != 128:
        return None
    if zlib.crc32(header[:16] + b"\0\0\0\0" + header[20:size]) != crc:
        return None
    table = raw[2 * _SECTOR : 2 * _SECTOR + count * entry_size]
    if count * entry_size > _GPT_READ - 2 * _SECTOR or zlib.crc32(table) != entries_crc:
        return None
    if not first_usable <= last_usable < disk_size // _SECTOR:
        return None
    found = []
    for index in range(count):
        entry = table[index * entry_size : (index + 1) * entry_size]
        if entry[:16] == bytes(16):
            continue  # an unused slot: Linux skips it but keeps the numbering
        first, last = struct.unpack_from("<QQ", entry, 32)
        if not first_usable <= first <= last <= last_usable:
            return None
        found.append((index + 1, first * _SECTOR))
    return found


class Appliance:
    """One libguestfs handle over one or more images (batch seeds many disks per launch)."""

    def __init__(
        self,
        images: Sequence[ImageInfo],
        *,
        readonly: bool,
        accel: str = "auto",
        kvm_timeout: float | None = None,
        tcg_timeout: float | None = None,
    ) -> None:
        if accel not in ACCEL_CHOICES:
            raise ValueError(f"accel must be one of {ACCEL_CHOICES}, not {accel!r}")
        if not images:
            raise ValueError("an appliance needs at least one image")
        self.images = tuple(images)
        self.readonly = readonly
        self.accel = accel
        self.kvm_timeout = KVM_LAUNCH_TIMEOUT if kvm_timeout is None else kvm_timeout
        self.tcg_timeout = TCG_LAUNCH_TIMEOUT if tcg_timeout is None else tcg_timeout
        self.accel_used: str | None = None  # "kvm" or "tcg" once launched
        self._g = None
        self._mounted: tuple[int, bool] | None = None  # (disk index, read-only) of the mounted persist
        self._in_use = False  # a mount_persist block is running
        self._raw_writes = False
        self._partitions: dict[int, list[Partition]] = {}
        self._persist: dict[int, Partition] = {}
        self._devices: list[str] | None = None  # device and partition lists, read once per launch
        self._all_partitions: list[str] | None = None
        # libguestfs's "print errors to stderr" handler is switched off per thread, in the thread that made
        # the handle. Make the handles here, in the caller's thread, which later runs the calls that may
        # fail on purpose (lstat of an absent path), even when launch() runs in a background thread.
        wanted = {"auto": ("kvm", "tcg")}.get(accel, (accel,))
        self._spare_handles = {name: self._make_handle(name) for name in wanted}

    # -- launch ----------------------------------------------------------------------------------

    def launch(self) -> None:
        """Start the appliance. Blocking; the GIL is released, so a caller may run it in a thread.

        Ctrl-C: the handle uses set_pgroup(True), so qemu runs in its own process group and a
        terminal's SIGINT (sent to the foreground process group) never reaches it; only this process
        gets it and can then shut the appliance down cleanly (close()). Blocking SIGINT with
        pthread_sigmask around launch() was not used: qemu may reset its signal mask, while the process
        group is decided by libguestfs in the forked child before exec, which is reliable.
        """
        if self._g is not None:
            raise RuntimeError("the appliance is already launched")
        if not self.readonly:
            for info in self.images:
                if info.read_only_file:
                    raise ImageUnusableError(
                        f"{info.path} is read-only (no write permission); make it writable "
                        "or use inspect / --dry-run, which do not write"
                    )
        if self.accel == "tcg":
            self._launch_once("tcg")
        elif self.accel == "kvm":
            self._launch_once("kvm")
        elif not _kvm_usable():
            self._launch_once("tcg")
        else:
            self._launch_auto()
        _bench_mark("launched")

    def _launch_auto(self) -> None:
        """KVM where it works; where it hangs or crashes, software emulation, and remember that for this host
        (kernel and qemu binary), so that later runs go straight to TCG."""
        g = self._new_handle("kvm")
        key = _host_key(g.get_hv())
        if _kvm_verdict(key) is not None:
            g.close()
            self._launch_once("tcg")
            return
        remembered = f"remembered in {_shown_path(_cache_file())}"
        try:
            self._launch_once("kvm", handle=g)
        except _KvmUnavailable:
            self._launch_once("tcg")
        except _KvmHangs:
            _remember_kvm_verdict(key, "hangs", f"no answer within {self.kvm_timeout:g} s")
            _notice(f"KVM did not answer within {self.kvm_timeout:g} s; using software emulation (TCG) "
                    f"instead, {remembered}")
            self._launch_once("tcg")
        except _KvmCrashed as crash:
            # Remembered only once TCG works: if it fails as well, the fault is not KVM's, and its error is
            # the one to report.
            self._launch_once("tcg")
            _remember_kvm_verdict(key, "crashes", crash.detail)
            _notice(f"KVM crashed the appliance ({crash.detail}); using software emulation (TCG) instead, "
                    f"{remembered}")

    def _new_handle(self, accel: str):
        spare = self._spare_handles.pop(accel, None)
        return spare if spare is not None else self._make_handle(accel)

    def _make_handle(self, accel: str):
        import guestfs  # lazily: only this module imports it, and only when an image is opened

        g = guestfs.GuestFS(python_return_dict=True, environment=True, close_on_exit=True)
        # environment=True lets an administrator set LIBGUESTFS_PATH, _MEMSIZE, _CACHEDIR...; the
        # settings that matter for safety are forced here, after it was read.
        g.set_trace(False)  # a trace prints the first 256 bytes of every write: secrets
        g.set_verbose(False)
        g.set_network(False)
        g.set_backend("direct")  # qemu as our child: watchdog, process group and lock messages rely on it
        g.set_backend_settings(["force_tcg"] if accel == "tcg" else ["force_kvm"])
        g.set_pgroup(True)  # keep the terminal's Ctrl-C away from qemu (see launch())
        g.set_autosync(True)
        for info in self.images:
            g.add_drive_opts(str(info.path), readonly=self.readonly, format=info.format)
        return g

    def _launch_once(self, accel: str, *, handle=None) -> None:
        g = handle if handle is not None else self._new_handle(accel)
        timeout = self.kvm_timeout if accel == "kvm" else self.tcg_timeout
        watchdog = _Watchdog(g, timeout)
        # qemu's own stderr (e.g. the lock message) reaches only event callbacks, not the exception text.
        # Only the launch is listened to: no write happens during it, so nothing secret is captured.
        output: list[str] = []
        event_handle = g.set_event_callback(
            lambda _ev, _eh, buf, _arr: _collect(output, buf),
            _events(),
        )
        _quiet_errors(g)  # this may be a background thread: the error becomes an exception, not stderr text
        started = time.monotonic()
        try:
            with watchdog:
                g.launch()
            g.delete_event_callback(event_handle)
        except RuntimeError as exc:
            g.close()
            text = str(exc) + "\n" + "".join(output)
            probing_kvm = accel == "kvm" and self.accel == "auto"
            if watchdog.fired:
                if probing_kvm:
                    raise _KvmHangs() from None
                raise ApplianceError(
                    f"the appliance did not start within {timeout:g} s ({accel.upper()})"
                    + ("; try --accel tcg" if accel == "kvm" else ""),
                    hint=APPLIANCE_HINT,
                ) from None
            error = self._launch_error(text)
            if probing_kvm and type(error) is ApplianceError:  # not the image's fault (lock, permissions)
                if _KVM_UNAVAILABLE in text:
                    raise _KvmUnavailable() from None
                qemu_line = _qemu_line(text)
                after = f"after {time.monotonic() - started:.1f} s"
                raise _KvmCrashed(f"{_shown(qemu_line, quote=False)}, {after}" if qemu_line else after) from None
            raise error from None
        except BaseException:  # Ctrl-C right after launch returned: do not leak the handle
            g.close()
            raise
        g.umask(0o077)  # files and directories are born private; final modes are set explicitly
        self._g = g
        self.accel_used = accel

    def _launch_error(self, text: str) -> Exception:
        if _LOCK_RE.search(text):
            match = _LOCK_PATH_RE.search(text)
            where = match.group(1) if match else ", ".join(str(i.path) for i in self.images)
            return ImageInUseError(
                f"{where} is in use by another process (a running VM?); shut the VM down and try again",
                hint="a disk must not be seeded while a VM runs from it",
            )
        if _READ_ONLY_RE.search(text) and not self.readonly:
            paths = ", ".join(str(i.path) for i in self.images)
            return ImageUnusableError(
                f"{paths}: the image file is read-only (permission denied when opening it for writing)"
            )
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        first = _qemu_line(text) or (lines or ["unknown error"])[0]
        return ApplianceError(f"the libguestfs appliance failed to start: {first}", hint=APPLIANCE_HINT)

    @property
    def handle(self):
        if self._g is None:
            raise RuntimeError("the appliance is not launched")
        return self._g

    def qemu_pid(self) -> int:
        return self.handle.get_pid()

    # -- partitions ------------------------------------------------------------------------------

    def device(self, index: int) -> str:
        if self._devices is None:
            self._devices = self.handle.list_devices()
        devices = self._devices
        if not 0 <= index < len(devices):
            raise IndexError(f"no disk number {index}; the appliance has {len(devices)}")
        return devices[index]

    def partitions(self, index: int) -> list[Partition]:
        """Partitions of disk `index`, by device (clones share labels and UUIDs). Listed once per disk:
        each blkid costs a round trip to the appliance."""
        if index not in self._partitions:
            self._partitions[index] = self._list_partitions(index)
        return list(self._partitions[index])

    def _list_partitions(self, index: int) -> list[Partition]:
        g = self.handle
        disk = self.device(index)
        devices = self._partition_devices(disk)
        if not devices:
            return []
        sizes = {p["part_num"]: p["part_size"] for p in g.part_list(disk)}
        result = []
        for dev in devices:
            try:
                probe = g.blkid(dev)  # label and type in one call (vfs_label + vfs_type would be two)
            except RuntimeError:
                probe = {}
            result.append(
                Partition(
                    device=dev,
                    label=probe.get("LABEL") or None,
                    fs_type=probe.get("TYPE") or None,
                    size=sizes.get(int(dev[len(disk) :]), 0),
                )
            )
        return result

    def _partition_devices(self, disk: str) -> list[str]:
        # Each call costs ~0.3 s under TCG, so no part_to_dev per partition: /dev/sdb's partitions are
        # /dev/sdb<N> (and /dev/sdbc1 belongs to /dev/sdbc, whose suffix is not all digits).
        if self._all_partitions is None:
            self._all_partitions = self.handle.list_partitions()
        return [dev for dev in self._all_partitions if dev.startswith(disk) and dev[len(disk) :].isdigit()]

    def find_persist(self, index: int) -> Partition:
        """The one ext4 partition labelled persist on disk `index`; anything else is refused, listing
        every partition found."""
        if index not in self._persist:
            self._persist[index] = self._quick_persist(index) or self._persist_from_listing(index)
        return self._persist[index]

    def _quick_persist(self, index: int) -> Partition | None:
        """The common case, fast: a GPT disk with exactly one partition whose superblock says ext4 with the
        persist label (size: the filesystem's own, which fills the partition). A few preads, where listing
        devices and partitions costs two udev settles and blkid starts a program per partition. Anything
        unusual falls back to the full listing with blkid, and its error message."""
        layout = load_layout()
        g = self.handle
        # One image: its disk is /dev/sda, with no listing. The daemon refuses the appliance's own disk, and
        # every other disk is ours, so a read that succeeds reads this image.
        disk = "/dev/sda" if len(self.images) == 1 and self._devices is None else self.device(index)
        try:
            first = g.pread_device(disk, _FIRST_READ, 0)
        except RuntimeError:
            return None
        table = _gpt_partitions(first, self.images[index].virtual_size)
        if not table:
            return None
        found = []
        for number, start in table:
            dev = f"{disk}{number}"
            at = start + _EXT_SUPERBLOCK_OFFSET
            try:
                if at + _EXT_SUPERBLOCK_SIZE <= len(first):  # already read: the table says where it starts
                    probe = _ext_probe(first[at : at + _EXT_SUPERBLOCK_SIZE])
                else:
                    probe = _ext_probe(g.pread_device(dev, _EXT_SUPERBLOCK_SIZE, _EXT_SUPERBLOCK_OFFSET))
            except RuntimeError:
                return None
            if probe is not None and probe[0] == layout.label:
                found.append((dev, probe))
        if len(found) != 1 or found[0][1][1] != layout.fs_type:
            return None
        dev, (label, fs_type, size) = found[0]
        return Partition(device=dev, label=label, fs_type=fs_type, size=size)

    def _persist_from_listing(self, index: int) -> Partition:
        layout = load_layout()
        parts = self.partitions(index)
        labelled = [p for p in parts if p.label == layout.label]
        if len(labelled) == 1 and labelled[0].fs_type == layout.fs_type:
            return labelled[0]
        found = "; ".join(p.describe() for p in parts) or "none"
        image = self.images[index].path
        if not labelled:
            problem = f"no partition labelled {layout.label!r}"
        elif len(labelled) > 1:
            problem = f"{len(labelled)} partitions labelled {layout.label!r} (exactly one is expected)"
        else:
            problem = f"the partition labelled {layout.label!r} is not {layout.fs_type}"
        raise ImageUnusableError(f"{image}: {problem}; partitions found: {found}")

    @contextmanager
    def mount_persist(self, index: int, *, writable: bool | None = None) -> Iterator[PersistFS]:
        """Mount one disk's persist at the appliance's / (one disk at a time) for the `with` block.

        writable=False mounts read-only even on a writable appliance: reading the state that way leaves
        the image byte-identical (a read-write mount of ext4 updates its superblock). The default is
        read-write exactly when the appliance is.

        The filesystem stays mounted after the block: a later block on the same disk costs nothing, or one
        remount from read-only to read-write (a first look, then the writes), where unmounting and mounting
        again would start two programs in the appliance; another disk's block unmounts it first; close()
        unmounts it, checked, before the appliance shuts down. The PersistFS handed out works only inside
        its block.
        """
        readonly = self.readonly if writable is None else not writable
        if writable and self.readonly:
            raise RuntimeError("a read-only appliance cannot mount persist for writing")
        if self._in_use:
            raise RuntimeError("a persist filesystem is already in use; leave its block first")
        g = self.handle
        part = self.find_persist(index)
        self._mount(index, part, readonly)
        fs = PersistFS(g, readonly=readonly, device=part.device)
        self._in_use = True
        try:
            yield fs
        finally:
            self._in_use = False
            fs.retire()

    def _mount(self, index: int, part: Partition, readonly: bool) -> None:
        g = self.handle
        if self._mounted == (index, readonly):
            return
        if self._mounted is not None and self._mounted[0] == index:
            try:
                g.remount("/", rw=not readonly)
            except RuntimeError as exc:
                raise ImageUnusableError(
                    f"{self.images[index].path}: cannot remount persist ({part.device}) "
                    f"{'read-only' if readonly else 'read-write'}: {exc}"
                ) from None
            self._mounted = (index, readonly)
            return
        if self._mounted is not None:
            self._unmount()
        try:
            g.mount_vfs("ro" if readonly else "", load_layout().fs_type, part.device, "/")
        except RuntimeError as exc:
            raise ImageUnusableError(
                f"{self.images[index].path}: cannot mount persist ({part.device}): {exc}"
            ) from None
        self._mounted = (index, readonly)

    def _unmount(self) -> None:
        """Unmount the mounted persist (another disk's is next). No sync: umount writes the filesystem
        out, and close() is what makes an image complete."""
        assert self._mounted is not None
        index = self._mounted[0]
        self._mounted = None
        try:
            self.handle.umount("/")
        except RuntimeError as exc:
            device = self._persist[index].device if index in self._persist else "persist"
            raise ApplianceError(f"cannot unmount persist ({device}): {exc}", hint=APPLIANCE_HINT) from None

    def create_gpt_layout(self, index: int, partitions: Sequence[NewPartition]) -> None:
        """Write a new GPT with formatted partitions on disk `index` (sample disks, test fixtures)."""
        if self.readonly:
            raise RuntimeError("create_gpt_layout needs a writable appliance")
        if self._mounted is not None and self._mounted[0] == index:
            self._unmount()
        self._raw_writes = True  # written through the block device, not a filesystem: close() syncs
        self._partitions.pop(index, None)
        self._persist.pop(index, None)
        self._all_partitions = None
        g = self.handle
        disk = self.device(index)
        g.part_init(disk, "gpt")
        for number, part in enumerate(partitions, start=1):
            g.part_add(disk, "p", part.start, part.end)
            g.part_set_name(disk, number, part.name)
            if part.gpt_type:
                g.part_set_gpt_type(disk, number, part.gpt_type)
        devices = self._partition_devices(disk)
        for dev, part in zip(devices, partitions, strict=True):
            g.mkfs(part.fs_type, dev, label=part.label)

    # -- shutdown --------------------------------------------------------------------------------

    def close(self) -> None:
        """Durable end: unmount (checked), shut down (checked), close. Idempotent.

        Unmounting ext4 writes it out and flushes the disk (qemu then flushes the image file), so a sync
        after it would only flush again: libguestfs's autosync (umount_all + sync) is switched off for the
        shutdown. A disk written through its block device (create_gpt_layout) is synced explicitly.
        """
        spares = list(self._spare_handles.values())
        self._spare_handles.clear()
        for spare in spares:
            spare.close()  # never launched: nothing to lose
        g, self._g = self._g, None
        self._mounted = None
        if g is None:
            return
        failure = None
        try:
            try:
                g.umount_all()
            except RuntimeError as exc:
                failure = exc
            try:
                if self._raw_writes:
                    g.sync()
                g.set_autosync(failure is not None)  # after a failed unmount, let libguestfs try once more
                g.shutdown()
            except RuntimeError as exc:
                failure = failure or exc
        finally:
            g.close()
        if failure is not None:
            raise ApplianceError(
                f"the appliance did not shut down cleanly; the image may not be completely written: {failure}",
                hint=APPLIANCE_HINT,
            )
        if not self.readonly:
            for info in self.images:
                try:
                    fd = os.open(info.path, os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                except OSError:
                    pass

    def __enter__(self) -> Appliance:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        close_keeping_the_cause(self.close, exc)


def close_keeping_the_cause(close, cause: BaseException | None) -> None:
    """Run `close`. While an exception is on its way, a failure to close must not replace it: that
    exception says why the work stopped, and the failure to close is often its consequence (a dead qemu).
    The close failure is kept as a note on it (shown in a traceback, with --debug)."""
    if cause is None:
        close()
        return
    try:
        close()
    except Exception as failure:  # noqa: BLE001 - kept, as a note, on the exception that explains more
        text = failure.message if isinstance(failure, ProvisionError) else f"{type(failure).__name__}: {failure}"
        cause.add_note(f"while closing the appliance after this error: {text}")
