"""guest.convert with the real qemu-img (no appliance): each output format holds the same disk content, the
record is the file's own size and sha256, and a failed or stopped conversion leaves no target behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from provision.core.outputformat import OutputFormat, OutputSpec
from provision.errors import ProvisionError
from provision.guest.convert import convert_image, record_output
from provision.guest.qemuimg import QemuImgStopped

# the image tool where this machine has it (found before any test puts a stand-in first on PATH)
REAL_QEMU_IMG = shutil.which("qemu-img") or "qemu-img"


@pytest.fixture
def source(qemu_img, tmp_path) -> Path:
    """A 64 MiB qcow2 holding compressible text and a few random blocks."""
    raw = tmp_path / "content.raw"
    with open(raw, "wb") as handle:
        handle.truncate(64 << 20)
        handle.write(b"zvm persist line\n" * 200_000)
        handle.seek(40 << 20)
        handle.write(os.urandom(1 << 20))
    qcow2 = tmp_path / "seeded.qcow2"
    qemu_img("convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2))
    raw.unlink()
    return qcow2


def info(path: Path) -> dict:
    return json.loads(subprocess.run([REAL_QEMU_IMG, "info", "--output=json", str(path)], check=True,
                                     capture_output=True, text=True).stdout)


@pytest.mark.parametrize(("fmt", "compress"), [("qcow2", True), ("raw", False), ("vmdk", False), ("vdi", False)])
def test_each_format_holds_the_same_disk(source, tmp_path, fmt, compress):
    spec = OutputSpec(OutputFormat(fmt), compress)
    target = tmp_path / f"out{spec.suffix}"
    convert_image(source, "qcow2", target, spec)
    assert info(target)["format"] == fmt
    subprocess.run([REAL_QEMU_IMG, "compare", "-q", "-f", "qcow2", "-F", fmt, str(source), str(target)], check=True)
    if compress:
        checked = subprocess.run([REAL_QEMU_IMG, "check", "--output=json", str(target)], check=True,
                                 capture_output=True, text=True).stdout
        assert json.loads(checked)["compressed-clusters"] > 0
        assert target.stat().st_size < source.stat().st_size / 2
    record = record_output(target, spec)
    assert (record.format, record.compressed) == (spec.format, compress)
    assert record.size == target.stat().st_size
    assert record.sha256 == hashlib.sha256(target.read_bytes()).hexdigest()


def stand_in(folder: Path, body: str) -> str:
    """A PATH holding only a qemu-img stand-in that writes half a target, then runs `body` (Python)."""
    folder.mkdir()
    script = folder / "qemu-img"
    script.write_text(f"#!{sys.executable}\nimport os, signal, sys\n"
                      "open(sys.argv[-1], 'wb').write(b'half an image')\n" + body + "\n")
    script.chmod(0o755)
    return str(folder)


def test_a_failing_qemu_img_leaves_no_target_and_says_why(source, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", stand_in(tmp_path / "bin", "sys.stderr.write('qemu-img: disk on fire\\n'); sys.exit(1)"))
    target = tmp_path / ".out.vmdk.converting"
    with pytest.raises(ProvisionError, match="could not write the vmdk image: qemu-img: disk on fire"):
        convert_image(source, "qcow2", target, OutputSpec(OutputFormat.VMDK))
    assert not os.path.lexists(target)


def test_a_full_disk_is_named(source, tmp_path, monkeypatch):
    body = "sys.stderr.write('qemu-img: error while writing at byte 0: No space left on device\\n'); sys.exit(1)"
    monkeypatch.setenv("PATH", stand_in(tmp_path / "bin", body))
    target = tmp_path / ".out.qcow2.converting"
    with pytest.raises(ProvisionError, match="host disk is full: no space left in .* compressed qcow2"):
        convert_image(source, "qcow2", target, OutputSpec(OutputFormat.QCOW2, compress=True))
    assert not os.path.lexists(target)


def test_ctrl_c_reaching_qemu_img_is_a_stop_and_leaves_no_target(source, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", stand_in(tmp_path / "bin", "os.kill(os.getpid(), signal.SIGINT)"))
    target = tmp_path / ".out.raw.converting"
    with pytest.raises(QemuImgStopped):
        convert_image(source, "qcow2", target, OutputSpec(OutputFormat.RAW))
    assert not os.path.lexists(target)


def test_no_qemu_img_is_a_clear_error(source, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(ProvisionError, match="qemu-img is not installed"):
        convert_image(source, "qcow2", tmp_path / "out.raw", OutputSpec(OutputFormat.RAW))
