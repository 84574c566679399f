"""diskformat.probe_image: pure-Python header checks, no appliance."""

from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from provision.diskformat import probe_image
from provision.errors import ImageUnusableError, UsageError

MiB = 1 << 20


@pytest.fixture
def qcow2(qemu_img):
    """qcow2(path, *qemu-img create options) -> path"""

    def make(path: Path, *options: str, size: str = "64M") -> Path:
        qemu_img("create", "-q", "-f", "qcow2", *options, str(path), size)
        return path

    return make


def patch(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def set_incompatible(path: Path, bits: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(72)
        current = struct.unpack(">Q", fh.read(8))[0]
        fh.seek(72)
        fh.write(struct.pack(">Q", current | bits))


def refused(path: Path, *words: str) -> str:
    with pytest.raises(ImageUnusableError) as info:
        probe_image(path)
    message = info.value.message
    assert str(path) in message
    for word in words:
        assert word in message
    return message


# -- accepted -------------------------------------------------------------------------------------


def test_qcow2_v3_is_accepted(qcow2, tmp_path):
    info = probe_image(qcow2(tmp_path / "a.qcow2"))
    assert (info.format, info.qcow2_version, info.virtual_size, info.backing_file) == ("qcow2", 3, 64 * MiB, None)
    assert info.file_size == os.path.getsize(tmp_path / "a.qcow2")
    assert info.read_only_file is False


def test_qcow2_v2_is_accepted(qcow2, tmp_path):
    info = probe_image(qcow2(tmp_path / "a.qcow2", "-o", "compat=0.10"))
    assert info.qcow2_version == 2


def test_dirty_bit_is_accepted(qcow2, tmp_path):
    path = qcow2(tmp_path / "a.qcow2")
    set_incompatible(path, 1 << 0)
    assert probe_image(path).format == "qcow2"


def test_raw_with_mbr_signature_is_accepted(tmp_path):
    path = tmp_path / "disk.raw"
    path.write_bytes(b"\0" * 510 + b"\x55\xaa" + b"\0" * (MiB - 512))
    info = probe_image(path)
    assert (info.format, info.virtual_size, info.qcow2_version) == ("raw", MiB, None)


def test_raw_with_gpt_header_is_accepted(tmp_path):
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 512 + b"EFI PART" + b"\0" * (MiB - 520))
    assert probe_image(path).format == "raw"


def test_overlay_of_a_valid_base_is_accepted(qemu_img, qcow2, tmp_path, monkeypatch):
    base = qcow2(tmp_path / "base.qcow2")
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(overlay))
    monkeypatch.chdir("/")  # the relative backing name resolves against the overlay's folder, not the cwd
    info = probe_image(overlay)
    assert info.backing_file == "base.qcow2"
    assert info.virtual_size == probe_image(base).virtual_size


def test_read_only_file_is_reported(qcow2, tmp_path):
    path = qcow2(tmp_path / "a.qcow2")
    path.chmod(0o444)
    assert probe_image(path).read_only_file is True


# -- refused: not a disk image --------------------------------------------------------------------


def test_missing_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        probe_image(tmp_path / "nope.qcow2")


def test_directory_is_refused(tmp_path):
    refused(tmp_path, "directory")


@pytest.mark.parametrize("content", [b"", b"x" * 100])
def test_empty_or_tiny_file_is_refused(tmp_path, content):
    path = tmp_path / "tiny.img"
    path.write_bytes(content)
    refused(path, "not a disk image" if not content else "too small")


def test_text_file_is_refused_without_showing_its_content(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("SECRET-CONTENT line\n" * 200)
    message = refused(path, "does not look like a disk image")
    assert "SECRET" not in message


def test_raw_without_partition_table_is_refused(tmp_path):
    path = tmp_path / "zeros.raw"
    path.write_bytes(b"\0" * MiB)
    refused(path, "does not look like a disk image")


# -- refused: broken or hostile qcow2 -------------------------------------------------------------


def test_truncated_qcow2_is_refused(qcow2, tmp_path):
    path = qcow2(tmp_path / "a.qcow2")
    os.truncate(path, 100_000)
    refused(path, "truncated")


def test_qcow2_cut_inside_its_header_is_refused(qcow2, tmp_path):
    path = qcow2(tmp_path / "a.qcow2")
    os.truncate(path, 90)
    refused(path, "truncated")


def test_header_length_beyond_the_file_is_refused(qcow2, tmp_path):
    path = qcow2(tmp_path / "a.qcow2")
    patch(path, 100, struct.pack(">I", 4096))
    os.truncate(path, 1024)
    refused(path, "truncated")


def test_unknown_qcow2_version_is_refused(qcow2, tmp_path):
    path = qcow2(tmp_path / "a.qcow2")
    patch(path, 4, struct.pack(">I", 4))
    refused(path, "version 4")


def test_encrypted_qcow2_is_refused(qcow2, tmp_path):
    path = tmp_path / "enc.qcow2"
    made = subprocess.run(
        ["qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=x",
         "-o", "encrypt.format=luks,encrypt.key-secret=sec0", str(path), "64M"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        # LUKS times its key derivation with thread CPU clocks, which some VMs do not provide ("Unable to get
        # accurate CPU usage"): write the header field qemu-img writes for LUKS instead (crypt_method 2).
        qcow2(path)
        patch(path, 32, (2).to_bytes(4, "big"))
    refused(path, "encrypted")


@pytest.mark.parametrize("method", [1, 2], ids=["aes", "luks"])
def test_any_crypt_method_is_refused(qcow2, tmp_path, method):
    path = qcow2(tmp_path / "enc.qcow2")
    patch(path, 32, method.to_bytes(4, "big"))
    refused(path, "encrypted")


def test_corrupt_bit_is_refused(qcow2, tmp_path):
    path = qcow2(tmp_path / "a.qcow2")
    set_incompatible(path, 1 << 1)
    refused(path, "corrupt")


def test_unknown_incompatible_bit_is_refused(qcow2, tmp_path):
    path = qcow2(tmp_path / "a.qcow2")
    set_incompatible(path, 1 << 40)
    refused(path, "unknown incompatible feature")


def test_external_data_file_is_refused(qcow2, tmp_path):
    path = qcow2(tmp_path / "a.qcow2", "-o", f"data_file={tmp_path / 'data.raw'}")
    refused(path, "external data file")


def test_external_data_file_extension_alone_is_refused(qcow2, tmp_path):
    path = qcow2(tmp_path / "a.qcow2", "-o", f"data_file={tmp_path / 'data.raw'}")
    with open(path, "r+b") as fh:  # clear the feature bit: the header extension must still be caught
        fh.seek(72)
        bits = struct.unpack(">Q", fh.read(8))[0] & ~(1 << 2)
        fh.seek(72)
        fh.write(struct.pack(">Q", bits))
    refused(path, "names an external data file")


# -- backing files --------------------------------------------------------------------------------


def test_host_text_file_as_backing_is_refused(qcow2, tmp_path):
    path = qcow2(tmp_path / "evil.qcow2", "-b", "/etc/hostname", "-F", "raw")
    refused(path, "/etc/hostname", "not a valid disk image")


@pytest.mark.parametrize("backing", ['json:{"file":{"driver":"file","filename":"/etc/shadow"}}', "nbd:localhost:10809"])
def test_protocol_backing_is_refused(qcow2, tmp_path, backing):
    path = qcow2(tmp_path / "evil.qcow2", "-u", "-b", backing, "-F", "raw")
    refused(path, "protocol or json")


def test_missing_backing_is_refused(qcow2, tmp_path):
    path = qcow2(tmp_path / "ov.qcow2", "-u", "-b", "gone.qcow2", "-F", "qcow2")
    refused(path, "gone.qcow2", "does not exist")


def test_backing_loop_is_refused(qcow2, tmp_path):
    qcow2(tmp_path / "a.qcow2", "-u", "-b", "b.qcow2", "-F", "qcow2")
    qcow2(tmp_path / "b.qcow2", "-u", "-b", "a.qcow2", "-F", "qcow2")
    refused(tmp_path / "a.qcow2", "loops")


def test_backing_chain_depth_is_limited(qcow2, tmp_path):
    qcow2(tmp_path / "0.qcow2")
    for i in range(1, 4):
        qcow2(tmp_path / f"{i}.qcow2", "-b", f"{i - 1}.qcow2", "-F", "qcow2")
    assert probe_image(tmp_path / "3.qcow2").backing_file == "2.qcow2"
    with pytest.raises(ImageUnusableError, match="deeper than 2"):
        probe_image(tmp_path / "3.qcow2", max_backing_depth=2)
