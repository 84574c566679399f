"""guest.qemuimg, the one runner of qemu-img, with the real tool (no appliance) and stand-ins for its failures:
every run maps "not installed", Ctrl-C and a full disk the same way and leaves no half-written file; an image
whose lock another process holds is told apart from one qemu cannot open for another reason."""

from __future__ import annotations

import json
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from provision.core.outputformat import OutputFormat, OutputSpec
from provision.errors import ImageInUseError, ProvisionError
from provision.guest import qemuimg
from provision.guest.diskformat import probe_image
from tests.conftest import qemu_holding_lock


@pytest.fixture
def base(qemu_img, tmp_path) -> Path:
    path = tmp_path / "base.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "64M")
    return path


# Each runner that writes a file, and the file it writes.
RUNNERS = {
    "create_blank": lambda base, target: qemuimg.create_blank(target, 64 << 20),
    "create_overlay": lambda base, target: qemuimg.create_overlay(probe_image(base), target),
    "copy_qcow2": lambda base, target: qemuimg.copy_qcow2(probe_image(base), target),
    "convert": lambda base, target: qemuimg.convert(base, "qcow2", target, OutputSpec(OutputFormat.VDI)),
}


def stand_in(folder: Path, body: str) -> str:
    """A PATH holding only a qemu-img stand-in that writes half its target (the argument naming out.img), then
    runs `body` (Python)."""
    folder.mkdir()
    script = folder / "qemu-img"
    script.write_text(f"#!{sys.executable}\nimport os, signal, sys\n"
                      "target = next(a for a in sys.argv if a.endswith('out.img'))\n"
                      "open(target, 'wb').write(b'half an image')\n"
                      f"open({str(folder / 'wrote')!r}, 'w').write(target)\n" + body + "\n")
    script.chmod(0o755)
    return str(folder)


def assert_removed(tmp_path: Path, target: Path) -> None:
    """The stand-in wrote half of `target`, and the runner removed it."""
    assert (tmp_path / "bin" / "wrote").read_text() == str(target)
    assert not target.exists()


@pytest.mark.parametrize(("runner", "fmt", "backed"), [("create_blank", "qcow2", False),
                                                   ("create_overlay", "qcow2", True),
                                                   ("copy_qcow2", "qcow2", False),
                                                   ("convert", "vdi", False)])
def test_each_runner_writes_the_image_it_says(base, tmp_path, runner, fmt, backed):
    target = tmp_path / "out.img"
    RUNNERS[runner](base, target)
    found = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(target)], check=True,
                                      capture_output=True, text=True).stdout)
    assert (found["format"], found["virtual-size"], found.get("backing-filename")) == (
        fmt, 64 << 20, str(base) if backed else None)


@pytest.mark.parametrize("runner", RUNNERS)
def test_no_qemu_img_is_one_message_for_every_runner(base, tmp_path, monkeypatch, runner):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    target = tmp_path / "out.img"
    with pytest.raises(ProvisionError) as caught:
        RUNNERS[runner](base, target)
    assert caught.value.message == "qemu-img is not installed (Debian: apt-get install qemu-utils)"
    assert not target.exists()


@pytest.mark.parametrize("runner", RUNNERS)
def test_ctrl_c_reaching_qemu_img_is_a_stop_for_every_runner_and_leaves_no_file(base, tmp_path, monkeypatch,
                                                                                  runner):
    monkeypatch.setenv("PATH", stand_in(tmp_path / "bin", "os.kill(os.getpid(), signal.SIGINT)"))
    target = tmp_path / "out.img"
    with pytest.raises(qemuimg.QemuImgStopped):
        RUNNERS[runner](base, target)
    assert_removed(tmp_path, target)


# qemu-img's stderr, and what the person is told: a full disk names the folder; anything else, qemu-img's last line
FAILURES = {
    "full disk": ("qemu-img: error while writing at byte 0: No space left on device",
                  "^the host disk is full: no space left in {folder} "),
    "other": ("first line\\nqemu-img: disk on fire", "^qemu-img .*: qemu-img: disk on fire$"),
}


@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("runner", RUNNERS)
def test_a_failure_is_said_alike_for_every_runner_and_leaves_no_file(base, tmp_path, monkeypatch, runner, failure):
    stderr, said = FAILURES[failure]
    monkeypatch.setenv("PATH", stand_in(tmp_path / "bin", f"sys.stderr.write('{stderr}\\n'); sys.exit(1)"))
    target = tmp_path / "out.img"
    with pytest.raises(ProvisionError, match=said.format(folder=re.escape(str(tmp_path)))):
        RUNNERS[runner](base, target)
    assert_removed(tmp_path, target)


def test_measure_is_the_size_a_copy_needs_or_none_when_it_cannot_tell(base, tmp_path, monkeypatch):
    needed = qemuimg.measure_qcow2(probe_image(base))
    assert needed is not None and 0 < needed < 64 << 20  # an empty 64M qcow2 needs its metadata only
    info = probe_image(base)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert qemuimg.measure_qcow2(info) is None


def test_an_image_another_process_holds_is_in_use(base):
    with qemu_holding_lock(base):
        held = qemuimg.open_problem(probe_image(base))
    assert isinstance(held, ImageInUseError)
    assert held.message.startswith(f"{base} is in use by another process")
    assert qemuimg.open_problem(probe_image(base)) is None  # released


def test_an_image_qemu_refuses_for_another_reason_is_not_called_in_use(base, tmp_path):
    """Once, any stderr holding "lock" meant in use: a folder named "locks" was enough."""
    folder = tmp_path / "locks"
    folder.mkdir()
    broken = folder / "blocked.qcow2"
    data = bytearray(base.read_bytes())
    data[48:56] = struct.pack(">Q", 65536 + 512)  # refcount table offset not cluster aligned: qemu refuses it
    broken.write_bytes(bytes(data))
    problem = qemuimg.open_problem(probe_image(broken))  # the header probe passes it
    assert type(problem) is not ImageInUseError and isinstance(problem, ProvisionError)
    assert problem.message.startswith("qemu-img could not open the image: ")
    assert problem.message.endswith("Reference count table offset invalid")
