"""Property: the header probe, fed mutated real headers, accepts or refuses with its own error, and never reads
outside a file.

Seeds are made by qemu-img (qcow2 v2 and v3, overlays with qcow2 and raw backing files, small clusters, lazy
refcounts, extended L2, zstd, an external data file) plus raw MBR and GPT disks. Each example mutates one of
them (header fields set to boundary values, bit flips, overwritten bytes, edits of the header-extension chain,
a rewritten backing name, truncation, extension) and probes it next to a backing file that is itself a seed,
mutated or not. Every file the probe opens is wrapped: a seek to a negative offset or a read past the end of
the file (other than the first 64 KiB "read up to" of the header) fails the example.

Default: a few hundred examples; ZVM_PROPERTY_EXAMPLES=N runs N (see conftest.py).
"""

from __future__ import annotations

import io
import os
import re
import struct
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from provision.errors import ProvisionError
from provision.guest import diskformat
from provision.guest.diskformat import probe_image

MiB = 1 << 20
HEAD_READ = 65536  # the probe reads up to this much at offset 0 in one go, whatever the file's size

# (offset, width) of every qcow2 header field, docs/interop/qcow2.rst
FIELDS = {
    "magic": (0, 4), "version": (4, 4), "backing_file_offset": (8, 8), "backing_file_size": (16, 4),
    "cluster_bits": (20, 4), "size": (24, 8), "crypt_method": (32, 4), "l1_size": (36, 4),
    "l1_table_offset": (40, 8), "refcount_table_offset": (48, 8), "refcount_table_clusters": (56, 4),
    "nb_snapshots": (60, 4), "snapshots_offset": (64, 8), "incompatible_features": (72, 8),
    "compatible_features": (80, 8), "autoclear_features": (88, 8), "refcount_order": (96, 4),
    "header_length": (100, 4), "compression_type": (104, 1),
}  # fmt: skip
EXTENSION_TYPES = [0, 0xE2792ACA, 0x6803F857, 0x23852875, 0x0537BE77, 0x44415441, 0x12345678]
BACKING_FORMATS = [b"qcow2", b"raw", b"vmdk", b"file", b"", b"qcow2\0", b"QCOW2", b"raw ", b"\xff\xfe", b"x" * 16]


class ReadOutsideFile(AssertionError):
    """Not an OSError and not a ProvisionError: the probe cannot turn it into a refusal."""


class CheckedFile:
    """A read-only file that fails on a negative seek or a read beyond the end of the file."""

    def __init__(self, raw: io.BufferedReader, size: int, name: str) -> None:
        self.raw, self.size, self.name = raw, size, name

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET and offset < 0:
            raise ReadOutsideFile(f"{self.name}: seek to {offset}")
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def read(self, size: int = -1) -> bytes:
        start = self.raw.tell()
        if size is None or size < 0:
            raise ReadOutsideFile(f"{self.name}: unbounded read at {start}")
        if start + size > self.size and not (start == 0 and size == HEAD_READ):
            raise ReadOutsideFile(f"{self.name}: read of {size} bytes at {start}, the file has {self.size}")
        return self.raw.read(size)

    def __enter__(self) -> CheckedFile:
        return self

    def __exit__(self, *exc) -> None:
        self.raw.close()


class Opens:
    def __init__(self) -> None:
        self.names: list[str] = []

    def __call__(self, file, mode="r", *args, **kwargs):
        assert mode == "rb" and not args and not kwargs, (mode, args, kwargs)
        # the real open, under the patched name; CheckedFile closes it
        raw = io.open(file, mode)  # noqa: SIM115, UP020
        size = os.fstat(raw.fileno()).st_size
        name = os.readlink(f"/proc/self/fd/{raw.fileno()}")
        self.names.append(name)
        return CheckedFile(raw, size, name)


# -- seeds: real headers made by qemu-img -----------------------------------------------------------


class Seeds(dict):
    def __repr__(self) -> str:  # a failing example prints its arguments: not megabytes of seeds
        return f"<{len(self)} seeds: {', '.join(self)}>"



@pytest.fixture(scope="module")
def seeds(qemu_img, tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("seeds")

    def qcow2(name: str, *options: str, size: str = "64M") -> bytes:
        path = folder / f"{name}.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", *options, str(path), size)
        return path.read_bytes()

    mbr = bytearray(MiB)
    mbr[510:512] = b"\x55\xaa"
    gpt4k = bytearray(64 * 1024)
    gpt4k[4096:4104] = b"EFI PART"
    made = {
        "v3": qcow2("v3"),
        "v2": qcow2("v2", "-o", "compat=0.10"),
        "overlay-qcow2": qcow2("oq", "-u", "-b", "base.img", "-F", "qcow2"),
        "overlay-raw": qcow2("or", "-u", "-b", "base.img", "-F", "raw"),
        "v2-overlay": qcow2("v2o", "-u", "-o", "compat=0.10", "-b", "base.img", "-F", "qcow2"),
        "small-clusters": qcow2("sc", "-o", "cluster_size=512"),
        "big-clusters": qcow2("bc", "-o", "cluster_size=2M"),
        "lazy-refcounts": qcow2("lr", "-o", "lazy_refcounts=on"),
        "extended-l2": qcow2("el2", "-o", "extended_l2=on"),
        "zstd": qcow2("zstd", "-o", "compression_type=zstd"),
        "data-file": qcow2("df", "-o", f"data_file={folder / 'data.raw'}"),
        "raw-mbr": bytes(mbr),
        "raw-gpt-4k": bytes(gpt4k),
    }
    for name in ("v3", "overlay-qcow2", "raw-mbr"):  # the seeds themselves are what the probe expects
        assert (made[name][:4] == diskformat.QCOW2_MAGIC) == (name != "raw-mbr")
    return Seeds(made)


# -- mutations --------------------------------------------------------------------------------------


def boundary_values(width: int, landmarks: list[int]) -> list[int]:
    top = (1 << (8 * width)) - 1
    values = {0, 1, 2, 3, 7, 8, 9, 21, 22, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**63 - 1, 2**63, top, top - 7}
    return sorted({v & top for v in values | set(landmarks)})


def landmarks(data: bytes) -> list[int]:
    """Offsets where a parser's bounds checks matter: header fields, sector and cluster edges, each
    extension's edges, the backing name's edges, the end of the file."""
    points = {0, 1, 4, 8, 16, 20, 24, 32, 36, 40, 48, 56, 60, 64, 71, 72, 79, 80, 88, 96, 99, 100, 103, 104, 105,
              111, 112, 509, 510, 511, 512, 513, 519, 520, 1023, 1024, 1025, 4095, 4096, 4097, 4103, 4104, 4105,
              65535, 65536, 65537}  # fmt: skip
    for off, _ext_type, length in extension_chain(data):
        points |= {off, off + 4, off + 7, off + 8, off + 9, off + 8 + length - 1, off + 8 + length,
                   off + 8 + ((length + 7) & ~7)}
    if len(data) >= 20:
        offset, size = struct.unpack_from(">Q", data, 8)[0], struct.unpack_from(">I", data, 16)[0]
        points |= {offset - 1, offset, offset + 1, offset + size - 1, offset + size, offset + size + 1}
    points |= {len(data) - 1, len(data), len(data) + 1}
    return sorted(p for p in points if 0 <= p < 2**32)


def extension_chain(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, type, length) of each header extension of a (possibly broken) qcow2 header, leniently."""
    if len(data) < 104 or data[:4] != diskformat.QCOW2_MAGIC:
        return []
    version = struct.unpack_from(">I", data, 4)[0]
    off = struct.unpack_from(">I", data, 100)[0] if version >= 3 else 72
    chain = []
    while off + 8 <= min(len(data), 65536) and len(chain) < 16:
        ext_type, ext_len = struct.unpack_from(">II", data, off)
        chain.append((off, ext_type, ext_len))
        if ext_type == 0:
            break
        off += 8 + ((ext_len + 7) & ~7)
    return chain


def put(data: bytearray, offset: int, value: bytes) -> None:
    if offset > len(data):
        data.extend(bytes(offset - len(data)))
    data[offset : offset + len(value)] = value


@st.composite
def mutated(draw, seeds: dict[str, bytes]) -> bytes:
    overlays = [name for name in sorted(seeds) if "overlay" in name]
    data = bytearray(seeds[draw(st.sampled_from(sorted(seeds) + overlays * 2), label="seed")])  # chains: more
    for _ in range(draw(st.integers(0, 6), label="mutations")):
        marks = landmarks(bytes(data))
        kind = draw(st.sampled_from(["field", "field", "bit", "bytes", "extension", "extension", "backing-name",
                                     "truncate", "extend", "shrink"]))
        near = draw(st.one_of(st.sampled_from([m for m in marks if m < 4200] or [0]), st.integers(0, 511),
                              st.integers(0, max(len(data) - 1, 0))), label="offset")
        if kind == "field":
            offset, width = FIELDS[draw(st.sampled_from(sorted(FIELDS)))]
            value = draw(st.one_of(st.sampled_from(boundary_values(width, marks)),
                                   st.integers(0, (1 << (8 * width)) - 1)))
            put(data, offset, value.to_bytes(width, "big"))
        elif kind == "bit":
            if data:
                data[near % len(data)] ^= 1 << draw(st.integers(0, 7))
        elif kind == "bytes":
            put(data, near, draw(st.binary(min_size=1, max_size=24)))
        elif kind == "extension":
            chain = extension_chain(bytes(data))
            if not chain:
                continue
            off, _ext_type, ext_len = chain[draw(st.integers(0, len(chain) - 1))]
            edit = draw(st.sampled_from(["type", "length", "insert-backing-format", "insert-any", "end-here"]))
            if edit == "type":
                put(data, off, draw(st.sampled_from(EXTENSION_TYPES)).to_bytes(4, "big"))
            elif edit == "length":
                room = [m - off - 8 for m in marks if m >= off + 8]
                length = draw(st.one_of(st.sampled_from([0, 1, 7, 8, 15, 16, ext_len + 1, ext_len + 8, 2**32 - 1]
                                                        + room), st.integers(0, 2**32 - 1)))
                put(data, off + 4, (length & 0xFFFFFFFF).to_bytes(4, "big"))
            elif edit == "end-here":
                put(data, off, bytes(8))
            else:
                ext_type = 0xE2792ACA if edit == "insert-backing-format" else draw(st.sampled_from(EXTENSION_TYPES))
                body = draw(st.one_of(st.sampled_from(BACKING_FORMATS), st.binary(max_size=24)))
                padded = body + bytes(-len(body) % 8)
                rest = bytes(data[off : off + 512])  # shift what follows, as an insertion would
                put(data, off, struct.pack(">II", ext_type, len(body)) + padded + rest)
        elif kind == "backing-name":
            offset = struct.unpack_from(">Q", data, 8)[0] if len(data) >= 20 else 0
            if not 0 < offset < 65536:
                continue
            name = draw(st.one_of(
                st.sampled_from([b"base.img", b"./base.img", b"top.qcow2", b"missing", b"/", b".", b"..",
                                 b"/dev/null", b"/dev/zero", b"json:{}", b"nbd:x", b"file:base.img", b"base.img\0"]),
                st.binary(min_size=0, max_size=40)))  # fmt: skip
            put(data, offset, name)
            if draw(st.booleans()):
                put(data, 16, len(name).to_bytes(4, "big"))
        elif kind == "truncate":
            del data[draw(st.one_of(st.sampled_from([m for m in marks if m <= len(data)]),
                                    st.integers(0, len(data)))):]
        elif kind == "shrink":
            # a minimal hand-made header: no L1 table, a refcount table inside a short file, so that the checks
            # after those (backing name, extensions) see a file that ends inside the first cluster
            size = draw(st.sampled_from([m for m in marks if 112 <= m <= 4200] or [512]))
            if len(data) >= 64:
                put(data, 36, bytes(4))
                put(data, 48, (size - 8).to_bytes(8, "big"))
                del data[size:]
        elif kind == "extend":
            data.extend(bytes(draw(st.integers(1, 70000))))
    return bytes(data)


# -- the property -----------------------------------------------------------------------------------


def check_accepted(info, top: Path, data: bytes, base: Path) -> None:
    """What an accepted image must look like."""
    assert info.format in ("qcow2", "raw")
    assert info.file_size == len(data)
    if info.format == "raw":
        assert (info.virtual_size, info.qcow2_version, info.backing_file) == (len(data), None, None)
        return
    assert data[:4] == diskformat.QCOW2_MAGIC
    assert info.qcow2_version == struct.unpack_from(">I", data, 4)[0] in (2, 3)
    assert info.virtual_size == struct.unpack_from(">Q", data, 24)[0]
    if info.backing_file is None:
        assert info.backing_format is None
    else:
        # the backing file was checked: its format agrees with the header's word, and it is qcow2 or raw
        assert info.backing_format in ("qcow2", "raw")
        target = Path(info.backing_file) if info.backing_file.startswith("/") else top.parent / info.backing_file
        assert probe_image(target).format == info.backing_format


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("mutated")


FAMILIES = {
    "qcow2": lambda name: name not in ("raw-mbr", "raw-gpt-4k") and "overlay" not in name,
    "overlay": lambda name: "overlay" in name,
    "raw": lambda name: name in ("raw-mbr", "raw-gpt-4k"),
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
@given(data=st.data())
def test_mutated_headers_are_accepted_or_refused_and_never_read_outside_the_file(seeds, folder, family, data):
    """One run per family of seeds, so that each gets its share of examples."""
    top_bytes = data.draw(mutated({k: v for k, v in seeds.items() if FAMILIES[family](k)}), label="image")
    base_bytes = data.draw(st.one_of(st.sampled_from([seeds["v3"], seeds["raw-mbr"]]), mutated(seeds)),
                           label="backing file")
    top, base = folder / "top.qcow2", folder / "base.img"
    top.write_bytes(top_bytes)
    base.write_bytes(base_bytes)
    opens = Opens()
    with mock.patch.object(diskformat, "open", opens, create=True):
        try:
            info = probe_image(top)
        except ProvisionError as exc:
            assert exc.message and str(top) in exc.message
            event("refused: " + re.sub(r"[0-9]+|'[^']*'|\(.*", "#", exc.message.replace(str(folder), ""))[:90])
            info = None
    assert opens.names, "the probe did not read through open(): nothing was checked"
    if info is not None:
        event(f"accepted: {info.format}" + (f" on {info.backing_format}" if info.backing_file else ""))
        check_accepted(info, top, top_bytes, base)


def test_the_checked_file_catches_reads_outside_the_file(tmp_path):
    """The wrapper itself: it must fail the reads the property forbids, and allow the others."""
    path = tmp_path / "f"
    path.write_bytes(bytes(100))
    with Opens()(os.open(path, os.O_RDONLY), "rb") as fh:
        assert len(fh.read(HEAD_READ)) == 100  # the header's "read up to"
        fh.seek(92)
        assert len(fh.read(8)) == 8
        with pytest.raises(ReadOutsideFile):
            fh.read(9)
        fh.seek(100)
        with pytest.raises(ReadOutsideFile):
            fh.read(1)
        with pytest.raises(ReadOutsideFile):
            fh.seek(-1)
