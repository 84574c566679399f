"""diskformat.probe_image: pure-Python header checks, no appliance."""

from __future__ import annotations

import json
import os
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from provision.errors import ImageUnusableError, UsageError
from provision.guest.diskformat import probe_image
from tests.conftest import run_qemu_img
from tests.support.binding import needs_guestfs
from tests.support.command import zvm
from tests.support.files import sha256
from tests.support.keyfactory import public_line

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


# -- the backing file's format (issue 14): qemu opens the backing file by the header's word --------------


def backing_format_extension(path: Path) -> int:
    """The offset of the qcow2 header's backing-format extension (0xE2792ACA)."""
    data = path.read_bytes()[:65536]
    off = struct.unpack_from(">I", data, 100)[0]
    while True:
        ext_type, ext_len = struct.unpack_from(">II", data, off)
        if ext_type == 0xE2792ACA:
            return off
        assert ext_type != 0, "no backing-format extension"
        off += 8 + ((ext_len + 7) & ~7)


def drop_backing_format(path: Path) -> None:
    """End the extensions where the backing format stands: the header an older qemu-img (before 6.1)
    wrote for `qemu-img create -b base` without -F."""
    patch(path, backing_format_extension(path), b"\0" * 8)


def raw_disk(path: Path, size: int = MiB) -> Path:
    path.write_bytes(b"\0" * 510 + b"\x55\xaa" + b"\0" * (size - 512))
    return path


def vmdk_descriptor_passing_as_raw(path: Path, extent: Path) -> Path:
    """A VMDK descriptor made by qemu-img, whose extent is a host file, padded with a comment line so that it
    also carries an MBR boot signature: read as raw it looks like a disk, opened as vmdk qemu reads `extent`."""
    made = path.with_name("made.vmdk")
    run_qemu_img("create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", str(made), "1M")
    text = made.read_bytes().replace(b'"made-flat.vmdk"', f'"{extent}"'.encode())
    assert f'"{extent}"'.encode() in text
    pad = b"#" + b" " * (510 - len(text) - 1) + b"\x55\xaa" + b" " * 511 + b"\n"
    path.write_bytes(text + pad)
    assert path.read_bytes()[510:512] == b"\x55\xaa" and path.stat().st_size == 1024
    return path


def qemu_info(path: Path) -> dict:
    out = subprocess.run(["qemu-img", "info", "--output=json", "-U", str(path)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout)


@pytest.fixture
def loop_device(tmp_path):
    """loop_device(file) -> /dev/loopN, a real host block device showing `file`; detached afterwards."""
    attached: list[str] = []

    def attach(backing: Path) -> Path:
        if os.geteuid() != 0 or shutil.which("losetup") is None:
            pytest.skip("a loop device needs root and losetup")
        made = subprocess.run(["losetup", "--find", "--show", "--read-only", str(backing)],
                              capture_output=True, text=True, check=False)
        if made.returncode != 0:
            pytest.skip(f"no loop device could be attached: {made.stderr.strip()}")
        attached.append(made.stdout.strip())
        device = Path(attached[-1])
        assert stat.S_ISBLK(device.stat().st_mode)
        return device

    yield attach
    for device in attached:
        subprocess.run(["losetup", "--detach", device], check=False)


def test_backing_format_is_recorded(qemu_img, qcow2, tmp_path):
    qcow2(tmp_path / "base.qcow2")
    raw_disk(tmp_path / "base.raw")
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(tmp_path / "on-qcow2.qcow2"))
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", str(tmp_path / "on-raw.qcow2"))
    assert probe_image(tmp_path / "on-qcow2.qcow2").backing_format == "qcow2"
    assert probe_image(tmp_path / "on-raw.qcow2").backing_format == "raw"
    assert probe_image(tmp_path / "base.qcow2").backing_format is None


def test_a_vmdk_backing_that_passes_as_raw_is_refused(qemu_img, tmp_path):
    host_file = tmp_path / "host-secret"
    host_file.write_bytes(b"host data\n" * 1000)
    base = vmdk_descriptor_passing_as_raw(tmp_path / "base.img", host_file)
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", "base.img", "-F", "vmdk", str(overlay), "1M")
    # what makes it hostile: qemu opens the base as vmdk and would read the host file as the disk
    assert qemu_info(base)["format"] == "vmdk"
    assert qemu_info(base)["format-specific"]["data"]["extents"][0]["filename"] == str(host_file)
    refused(overlay, "base.img", "'vmdk'", "only qcow2 or raw")


@pytest.mark.parametrize(("said", "base_name"), [("raw", "base.qcow2"), ("qcow2", "base.raw")])
def test_a_backing_format_that_disagrees_with_the_file_is_refused(qemu_img, qcow2, tmp_path, said, base_name):
    qcow2(tmp_path / "base.qcow2")
    raw_disk(tmp_path / "base.raw")
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", base_name, "-F", said, str(overlay), "64M")
    found = "raw" if said == "qcow2" else "qcow2"
    refused(overlay, base_name, f"the header says {said}", f"it is {found}")


def test_a_backing_file_without_a_format_is_refused_with_the_rebase_command(qemu_img, qcow2, tmp_path):
    qcow2(tmp_path / "base.qcow2")
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(overlay))
    drop_backing_format(overlay)
    assert "backing-filename-format" not in qemu_info(overlay)  # qemu would probe the base's format
    with pytest.raises(ImageUnusableError) as info:
        probe_image(overlay)
    assert "does not say the format of its backing file 'base.qcow2'" in info.value.message
    assert info.value.hint == f"record it: qemu-img rebase -u -F qcow2 -b base.qcow2 {overlay}"
    # the hint works: after it, the overlay is accepted
    qemu_img("rebase", "-u", "-F", "qcow2", "-b", "base.qcow2", str(overlay))
    assert probe_image(overlay).backing_format == "qcow2"


@pytest.mark.parametrize("name", ["vmdk\0", "", "qcow2\0", "raw" + "x" * 20, "\xff"], ids=repr)
def test_a_malformed_backing_format_is_refused(qemu_img, qcow2, tmp_path, name):
    qcow2(tmp_path / "base.qcow2")
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(overlay))
    off = backing_format_extension(overlay)
    raw = name.encode("latin-1")
    patch(overlay, off + 4, struct.pack(">I", len(raw)) + raw.ljust(8, b"\0")[: max(8, len(raw))])
    # the extension table continues after the (padded) name: keep it well formed by ending it there
    patch(overlay, off + 8 + ((len(raw) + 7) & ~7), b"\0" * 8)
    refused(overlay, "backing")


def test_two_backing_format_extensions_are_refused(qemu_img, qcow2, tmp_path):
    """qemu keeps the last one: a probe that read only the first could be told 'raw' while qemu hears 'vmdk'."""
    qcow2(tmp_path / "base.qcow2")
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", str(overlay))
    off = backing_format_extension(overlay)
    first = struct.pack(">II", 0xE2792ACA, 5) + b"qcow2\0\0\0"
    second = struct.pack(">II", 0xE2792ACA, 4) + b"vmdk\0\0\0\0"
    patch(overlay, off, first + second + b"\0" * 8)
    refused(overlay, "more than one backing format")


@pytest.mark.parametrize("via", ["direct", "symlink"])
def test_a_block_device_as_backing_file_is_refused_unread(qemu_img, tmp_path, loop_device, via):
    device = loop_device(raw_disk(tmp_path / "host-disk.raw"))
    assert probe_image(device).format == "raw"  # the device itself is a valid disk: only its role is wrong
    name = str(device)
    if via == "symlink":
        (tmp_path / "base.raw").symlink_to(device)
        name = "base.raw"
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", name, "-F", "raw", str(overlay), "1M")
    refused(overlay, name, "not a regular file")


def test_a_file_swapped_after_the_check_of_its_kind_is_refused(qcow2, tmp_path, monkeypatch):
    """stat, then open: if the name now leads elsewhere (a device, a fifo), what was opened is not read."""
    image = qcow2(tmp_path / "a.qcow2")
    other = qcow2(tmp_path / "other.qcow2")
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda path, *a, **k: real_open(other if Path(path) == image else path, *a, **k))
    refused(image, "changed while it was being checked")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_character_device_as_backing_file_is_refused(qemu_img, tmp_path, device):
    overlay = tmp_path / "overlay.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-u", "-b", device, "-F", "raw", str(overlay), "1M")
    refused(overlay, device, "not a regular file")


def qcow2_on_a_device(qcow2, path: Path) -> Path:
    """A qcow2 image whose length is whole sectors, as it is when written to a block device."""
    qcow2(path)
    os.truncate(path, MiB)
    return path


def test_a_block_device_as_the_image_itself_is_accepted(qcow2, tmp_path, loop_device):
    device = loop_device(qcow2_on_a_device(qcow2, tmp_path / "disk.qcow2"))
    info = probe_image(device)
    assert (info.path, info.format, info.virtual_size) == (device, "qcow2", 64 * MiB)
    assert info.file_size == MiB  # the device's size, not its st_size (0)


# -- the same refusals through the real command: exit 3 before any launch, nothing created ---------------


# Any launch would fail differently (exit 1, "failed to start"): an exit 3 here came before it.
NO_LAUNCH = {"LIBGUESTFS_HV": "/nonexistent/qemu-system-x86_64"}


@pytest.fixture
def hostile_backings(qemu_img, qcow2, tmp_path, loop_device) -> dict[str, tuple[Path, str]]:
    """name -> (an overlay made by qemu-img, a word its refusal must carry)"""
    qcow2(tmp_path / "base.qcow2")
    vmdk_descriptor_passing_as_raw(tmp_path / "base.img", Path("/etc/hostname"))

    def overlay(name: str, *options: str) -> Path:
        path = tmp_path / f"{name}.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", "-u", *options, str(path), "64M")
        return path

    no_format = overlay("no-format", "-b", "base.qcow2", "-F", "qcow2")
    drop_backing_format(no_format)
    device = loop_device(raw_disk(tmp_path / "host-disk.raw"))
    return {
        "vmdk": (overlay("vmdk", "-b", "base.img", "-F", "vmdk"), "only qcow2 or raw"),
        "disagrees": (overlay("disagrees", "-b", "base.qcow2", "-F", "raw"), "the header says raw"),
        "no-format": (no_format, "qemu-img rebase -u -F qcow2 -b base.qcow2"),
        "block-device": (overlay("block-device", "-b", str(device), "-F", "raw"), "not a regular file"),
    }


def test_backing_refusals_through_the_command_exit_3_before_the_appliance(hostile_backings, tmp_path):
    key = tmp_path / "k.pub"
    key.write_text(public_line() + "\n")
    manifest = tmp_path / "staff.csv"
    manifest.write_text("name,ssh_keys\nalice,k.pub\n")
    out = tmp_path / "out"

    def listing() -> dict[str, str]:
        return {p.name: sha256(p) if p.is_file() else "dir" for p in tmp_path.iterdir()}

    for name, (path, word) in hostile_backings.items():
        for args in (["inspect", str(path)], ["inspect", "--json", str(path)],
                     [str(path), "--no-password", "--ssh-key", str(key)],
                     [str(path), "--no-password", "--ssh-key", str(key), "--dry-run"],
                     ["batch", str(manifest), "--base", str(path), "--out-dir", str(out)],
                     ["batch", str(manifest), "--base", str(path), "--out-dir", str(out), "--overlay"]):
            before = listing()
            result = zvm(*args, cwd=tmp_path, env=NO_LAUNCH, timeout=120)
            assert result.returncode == 3, (name, args, result.stderr)
            assert word in result.stderr and "appliance" not in result.stderr, (name, args, result.stderr)
            assert "Traceback" not in result.stderr
            assert listing() == before and not out.exists(), (name, args)  # nothing created, nothing changed


@needs_guestfs
def test_a_block_device_image_passes_the_header_check_of_the_command(qcow2, tmp_path, loop_device):
    device = loop_device(qcow2_on_a_device(qcow2, tmp_path / "disk.qcow2"))
    result = zvm("inspect", str(device), cwd=tmp_path, env=NO_LAUNCH, timeout=120)
    assert result.returncode == 1 and "libguestfs-test-tool" in result.stderr, result.stderr  # it reached the launch


@pytest.mark.appliance
def test_a_block_device_image_is_inspected_through_the_appliance(sample_disk_template, tmp_path, loop_device):
    """The whole way: a host block device holding a zvm disk is read by the real appliance."""
    raw = tmp_path / "disk.raw"
    run_qemu_img("convert", "-O", "raw", str(sample_disk_template), str(raw))
    device = loop_device(raw)
    env = {**os.environ, "ZVM_PROVISION_ACCEL": "tcg"}
    result = subprocess.run([sys.executable, "-m", "provision", "inspect", "--json", str(device)],
                            capture_output=True, text=True, env=env, timeout=600, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["image"]["path"] == str(device) and report["image"]["format"] == "raw"
    assert [p["label"] for p in report["partitions"] if p["persist"]] == ["persist"]
