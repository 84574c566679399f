"""Read a disk image's header in pure Python before anything else (qemu, libguestfs) touches the file.

A genuine qcow2 header can name host files: a backing file, an external data file (CVE-2024-32498,
CVE-2024-4467). Telling libguestfs the format stops format probing (CVE-2010-3851) but not those, so the
header is checked here first, and the format found here is the one handed to libguestfs (never probed).

qemu opens a backing file by the format the header names (the backing-format extension), or probes it when
none is named: the header's word must be qcow2 or raw and agree with what this probe finds in the file, and a
backing file must be a regular file (a host block device must never be read as one).

qcow2 header layout: qemu docs/interop/qcow2.rst. All fields are big-endian.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import struct
from dataclasses import dataclass
from pathlib import Path

from provision.core.disk import ImageInfo
from provision.errors import ImageUnusableError, UsageError
from provision.guest.qemuimg import QEMU_IMG

QCOW2_MAGIC = b"QFI\xfb"
_V2_HEADER_LENGTH = 72
_V3_MIN_HEADER_LENGTH = 104

# incompatible_features bits
_INCOMPAT_DIRTY = 1 << 0  # lazy refcounts: qemu repairs it on a read-write open
_INCOMPAT_CORRUPT = 1 << 1
_INCOMPAT_DATA_FILE = 1 << 2
_INCOMPAT_COMPRESSION = 1 << 3  # compression type field present (zlib/zstd)
_INCOMPAT_EXTL2 = 1 << 4  # extended L2 entries (subclusters)
_INCOMPAT_KNOWN_SAFE = _INCOMPAT_DIRTY | _INCOMPAT_COMPRESSION | _INCOMPAT_EXTL2

_EXT_END = 0x00000000
_EXT_BACKING_FORMAT = 0xE2792ACA
_EXT_DATA_FILE = 0x44415441

_MIN_RAW_SIZE = 1024  # an MBR sector plus the sector where a GPT header lives
_MAX_BACKING_NAME = 1023  # qemu's own limit
_MAX_BACKING_FORMAT = 15  # qemu keeps the name in a 16-byte field and refuses a longer extension
_BACKING_FORMATS = ("qcow2", "raw")

# "json:{...}", "nbd:...", "http://...", "file:..." -- qemu treats these as protocols, not paths.
_PROTOCOL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


@dataclass(frozen=True)
class _Qcow2Header:
    virtual_size: int
    version: int
    backing_file: str | None
    backing_format: str | None


def require_image_file(path: Path) -> None:
    """A missing image is the first thing a command reports: before a password is read, a key source fetched
    or a manifest parsed (their errors would hide the simpler one). probe_image checks the rest."""
    try:
        os.stat(path)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except OSError:
        pass  # probe_image says what is wrong with it


def probe_image(path: Path, *, max_backing_depth: int = 8) -> ImageInfo:
    """Identify `path` as qcow2 or raw, refusing anything hostile, broken or not a disk image.

    A qcow2 backing file is resolved relative to the image's folder and probed with the same rules.
    """
    return _probe(Path(path), depth=0, max_depth=max_backing_depth, seen=frozenset())


def _probe(path: Path, *, depth: int, max_depth: int, seen: frozenset[str]) -> ImageInfo:
    what = "backing file" if depth else "image"
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if depth:
            raise ImageUnusableError(f"{path}: the backing file does not exist") from None
        raise UsageError(f"{path}: no such file") from None
    except OSError as exc:
        raise ImageUnusableError(f"{path}: cannot read the {what}: {exc.strerror}") from None
    _check_kind(path, st, backing=bool(depth))
    real = os.path.realpath(path)
    if real in seen:
        raise ImageUnusableError(f"{path}: the backing file chain loops back to itself")

    try:
        # O_NONBLOCK: a fifo swapped in after the stat must not hang the open; the fstat below refuses it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as fh:
            opened = os.fstat(fd)
            if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
                raise ImageUnusableError(f"{path}: the file changed while it was being checked")
            file_size = fh.seek(0, os.SEEK_END) if stat.S_ISBLK(st.st_mode) else st.st_size
            fh.seek(0)
            head = fh.read(65536)
            if head[:4] == QCOW2_MAGIC:
                header = _parse_qcow2(path, fh, head, file_size)
            else:
                _check_raw(path, fh, head, file_size)
                header = None
    except OSError as exc:
        raise ImageUnusableError(f"{path}: cannot read the {what}: {exc.strerror}") from None

    if header is None:
        return ImageInfo(path=path, format="raw", virtual_size=file_size, file_size=file_size, qcow2_version=None,
                         backing_file=None, read_only_file=_read_only(path, st))
    if header.backing_file is not None:
        _check_backing(path, header.backing_file, header.backing_format, depth=depth, max_depth=max_depth,
                       seen=seen | {real})
    return ImageInfo(
        path=path,
        format="qcow2",
        virtual_size=header.virtual_size,
        file_size=file_size,
        qcow2_version=header.version,
        backing_file=header.backing_file,
        read_only_file=_read_only(path, st),
        backing_format=header.backing_format if header.backing_file is not None else None,
    )


def _check_kind(path: Path, st: os.stat_result, *, backing: bool) -> None:
    """Before the file is opened: an image may be a regular file or a block device, a backing file only a
    regular file (qemu would read a host disk named as a backing file)."""
    if stat.S_ISDIR(st.st_mode):
        raise ImageUnusableError(f"{path}: is a directory, not a disk image")
    if stat.S_ISREG(st.st_mode):
        return
    if stat.S_ISBLK(st.st_mode) and not backing:
        return
    if stat.S_ISBLK(st.st_mode):
        raise ImageUnusableError(f"{path}: is a block device, not a regular file: a backing file must be a file")
    raise ImageUnusableError(f"{path}: is not a regular file, not a disk image")


def _read_only(path: Path, st: os.stat_result) -> bool:
    # root passes os.access whatever the mode, so a file with no write bit is read-only too.
    return not (st.st_mode & 0o222) or not os.access(path, os.W_OK)


def _check_raw(path: Path, fh, head: bytes, file_size: int) -> None:
    if file_size < _MIN_RAW_SIZE:
        if file_size == 0:
            raise ImageUnusableError(f"{path}: is empty, not a disk image")
        raise ImageUnusableError(f"{path}: is only {file_size} bytes, too small to be a disk image")
    mbr = head[510:512] == b"\x55\xaa"
    gpt = head[512:520] == b"EFI PART"
    if not gpt and file_size >= 4096 + 8:
        fh.seek(4096)  # GPT on a 4 KiB-sector disk
        gpt = fh.read(8) == b"EFI PART"
    if not (mbr or gpt):
        raise ImageUnusableError(
            f"{path}: does not look like a disk image (neither a qcow2 header, "
            "nor an MBR boot signature, nor a GPT header)"
        )


def _u32(buf: bytes, off: int) -> int:
    return struct.unpack_from(">I", buf, off)[0]


def _u64(buf: bytes, off: int) -> int:
    return struct.unpack_from(">Q", buf, off)[0]


def _parse_qcow2(path: Path, fh, head: bytes, file_size: int) -> _Qcow2Header:
    def bad(reason: str) -> ImageUnusableError:
        return ImageUnusableError(f"{path}: unusable qcow2 image: {reason}")

    if len(head) < _V2_HEADER_LENGTH:
        raise bad("the file is truncated (shorter than a qcow2 header)")
    version = _u32(head, 4)
    if version not in (2, 3):
        raise bad(f"qcow2 version {version} is not supported (only 2 and 3)")
    backing_offset = _u64(head, 8)
    backing_size = _u32(head, 16)
    cluster_bits = _u32(head, 20)
    virtual_size = _u64(head, 24)
    crypt_method = _u32(head, 32)
    l1_size = _u32(head, 36)
    l1_offset = _u64(head, 40)
    refcount_offset = _u64(head, 48)
    refcount_clusters = _u32(head, 56)

    if not 9 <= cluster_bits <= 21:
        raise bad(f"cluster_bits {cluster_bits} is out of range")
    cluster_size = 1 << cluster_bits
    if crypt_method != 0:
        raise bad(f"it is encrypted; decrypt it first ({QEMU_IMG} convert) and seed the plain copy")

    incompatible = 0
    header_length = _V2_HEADER_LENGTH
    if version == 3:
        if len(head) < _V3_MIN_HEADER_LENGTH:
            raise bad("the file is truncated (shorter than a qcow2 v3 header)")
        incompatible = _u64(head, 72)
        header_length = _u32(head, 100)
        if header_length < _V3_MIN_HEADER_LENGTH or header_length % 8 or header_length > cluster_size:
            raise bad(f"header length {header_length} is invalid")
        if header_length > file_size:
            raise bad("the file is truncated (it ends inside the header)")
        if incompatible & _INCOMPAT_CORRUPT:
            raise bad(f"qemu marked it corrupt; check it with '{QEMU_IMG} check' and repair a copy")
        if incompatible & _INCOMPAT_DATA_FILE:
            raise bad("its data lives in an external data file, which is not allowed")
        unknown = incompatible & ~(_INCOMPAT_KNOWN_SAFE | _INCOMPAT_CORRUPT | _INCOMPAT_DATA_FILE)
        if unknown:
            raise bad(f"unknown incompatible feature bits 0x{unknown:x}")

    # Structures the header points to must lie inside the file.
    if l1_size and l1_offset + 8 * l1_size > file_size:
        raise bad("the file is truncated (the L1 table lies beyond its end)")
    if refcount_offset == 0 or refcount_offset + 8 > file_size:
        raise bad("the file is truncated (the refcount table lies beyond its end)")
    if refcount_clusters == 0:
        raise bad("the refcount table is empty")

    backing = None
    if backing_offset:
        if backing_size == 0 or backing_size > _MAX_BACKING_NAME:
            raise bad(f"backing file name length {backing_size} is invalid")
        if backing_offset + backing_size > min(cluster_size, file_size):
            raise bad("the backing file name lies outside the first cluster")
        raw_name = _read_at(fh, head, backing_offset, backing_size)
        try:
            backing = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise bad("the backing file name is not valid UTF-8") from None
        if "\x00" in backing:
            raise bad("the backing file name contains a NUL byte")

    ext_end = backing_offset if backing_offset else cluster_size
    backing_format = _check_extensions(bad, fh, head, header_length, min(ext_end, cluster_size, file_size))
    return _Qcow2Header(virtual_size, version, backing, backing_format)


def _read_at(fh, head: bytes, offset: int, size: int) -> bytes:
    if offset + size <= len(head):
        return head[offset : offset + size]
    fh.seek(offset)
    return fh.read(size)


def _check_extensions(bad, fh, head: bytes, start: int, end: int) -> str | None:
    """Walk the header extensions (they follow the header, inside the first cluster); return the backing
    format the header names, if any."""
    backing_format = None
    off = start
    while off + 8 <= end:
        ext = _read_at(fh, head, off, 8)
        if len(ext) < 8:
            break
        ext_type, ext_len = struct.unpack(">II", ext)
        if ext_type == _EXT_END:
            return backing_format
        if ext_type == _EXT_DATA_FILE:
            raise bad("it names an external data file, which is not allowed")
        if ext_len > end - off - 8:
            raise bad("a header extension runs past the end of the header area")
        if ext_type == _EXT_BACKING_FORMAT:
            if backing_format is not None:  # qemu keeps the last one: refuse rather than guess which
                raise bad("it names more than one backing format")
            backing_format = _backing_format(bad, _read_at(fh, head, off + 8, ext_len), ext_len)
        off += 8 + ((ext_len + 7) & ~7)
    # Running off the end without an end marker: qemu would refuse to open it as well.
    if off + 8 > end and off < end:
        raise bad("the header extensions are malformed")
    return backing_format


def _backing_format(bad, raw: bytes, length: int) -> str:
    if len(raw) != length or not 0 < length <= _MAX_BACKING_FORMAT:
        raise bad(f"the backing format name length {length} is invalid")
    try:
        name = raw.decode("ascii")
    except UnicodeDecodeError:
        raise bad("the backing format name is not ASCII") from None
    if not name.isprintable():
        raise bad("the backing format name holds a control character or NUL byte")
    return name


def _check_backing(
    path: Path, backing: str, said: str | None, *, depth: int, max_depth: int, seen: frozenset[str]
) -> None:
    """`said`: the backing format the header names (None when it names none)."""
    shown = backing if len(backing) <= 200 else backing[:200] + "..."
    if _PROTOCOL_RE.match(backing):
        raise ImageUnusableError(
            f"{path}: unusable qcow2 image: its backing file {shown!r} is a protocol or json: "
            "specification, not a file"
        )
    if depth + 1 > max_depth:
        raise ImageUnusableError(f"{path}: the backing file chain is deeper than {max_depth}")
    target = Path(backing)
    if not target.is_absolute():
        target = path.parent / target
    if said is not None and said not in _BACKING_FORMATS:
        # refused before the backing file is even opened: it is not ours to interpret
        raise ImageUnusableError(
            f"{path}: unusable qcow2 image: the header gives its backing file {shown!r} the format {said!r}; "
            "only qcow2 or raw backing files are allowed"
        )
    try:
        found = _probe(target, depth=depth + 1, max_depth=max_depth, seen=seen)
    except (ImageUnusableError, UsageError) as exc:
        raise ImageUnusableError(
            f"{path}: unusable qcow2 image: its backing file {shown!r} is not a valid disk image "
            f"({exc.message})",
            hint=exc.hint,
        ) from None
    if said is None:
        # qemu would probe the backing file's format itself (an old qemu's image tool wrote such headers)
        raise ImageUnusableError(
            f"{path}: unusable qcow2 image: it does not say the format of its backing file {shown!r} "
            f"(it is {found.format}), and qemu would guess it",
            hint=f"record it: {QEMU_IMG} rebase -u -F {found.format} -b {shlex.quote(backing)} "
            f"{shlex.quote(str(path))}",
        )
    if said != found.format:
        raise ImageUnusableError(
            f"{path}: unusable qcow2 image: the header says {said} for its backing file {shown!r}, "
            f"but it is {found.format}"
        )
