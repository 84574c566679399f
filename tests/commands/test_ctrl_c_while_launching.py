"""One, two or three Ctrl-C while the appliance starts, through the real commands: every count ends with exit
130, no crash, the image byte-identical and the appliance's qemu gone.

A second Ctrl-C while the run waited for the launch used to end the interpreter while the launch thread was
inside libguestfs: its exit handlers freed the handle under the launch, and glibc aborted the process (`double
free or corruption`, exit 134, 2 runs in 3). Now the launch is stopped at once (its qemu killed: nothing has
been written before the appliance is up) and joined whatever Ctrl-C comes meanwhile.

Each run is the command in its own session; Ctrl-C is SIGINT to its process group, as a terminal sends it (qemu
runs in a process group of its own). The signals go once the appliance's qemu is running, so each run costs a
fraction of a launch. The wizard's variant, on a pseudo-terminal, is in tests/ui/test_wizard_tty.py.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.commands.batch.test_runs import processes_naming, staff
from tests.commands.test_interrupts import REPO, wait_for
from tests.commands.test_faults import _descendants
from tests.support.files import sha256
from tests.support.keyfactory import public_line

pytestmark = pytest.mark.appliance

# (how many Ctrl-C, seconds between them): the two 1.5 s apart, and rapid ones
COUNTS = [(1, 0.0), (2, 1.5), (3, 0.2)]
ENDED = 120  # the run ends within this after the last Ctrl-C (it ends in a second or two; a launch is 15-60 s)


def qemu_pids_under(pid: int) -> set[int]:
    """The appliance's qemu among `pid`'s descendants (not libguestfs's qemu-img or probes)."""
    found = set()
    for child in _descendants(pid) - {pid}:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as fh:
                if b"qemu-system" in fh.read():
                    found.add(child)
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            raw = fh.read()
    except OSError:
        return False
    return raw[raw.rfind(b")") + 2 :].split()[0] != b"Z"


def left_running(pids: set[int]) -> list[int]:
    """Those of `pids` still alive once an orphaned qemu has had time to be reaped by init."""
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return sorted(pid for pid in pids if alive(pid))


def ctrl_c_while_launching(args: list[str], work: Path, count: int, gap: float, stdin: bytes = b"") -> dict:
    """Run `python -m provision ARGS`, send `count` SIGINTs `gap` s apart once its qemu runs; its exit code,
    stderr and the qemu processes it had."""
    env = {**os.environ, "ZVM_PROVISION_ACCEL": "tcg", "PYTHONPATH": str(REPO)}
    env.pop("ZVM_PROVISION_DEBUG", None)
    stderr_path = work / "stderr"
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "provision", *args], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=err, env=env, cwd=work, start_new_session=True,
        )
    try:
        proc.stdin.write(stdin)
        proc.stdin.close()
        wait_for(lambda: qemu_pids_under(proc.pid), "the appliance's qemu", proc)
        qemus = qemu_pids_under(proc.pid)
        for number in range(count):
            if number:
                time.sleep(gap)
            try:
                os.killpg(proc.pid, signal.SIGINT)
            except ProcessLookupError:  # already ended: the later Ctrl-C came too late to matter
                break
        code = proc.wait(timeout=ENDED)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return {"code": code, "stderr": stderr_path.read_text(errors="replace"), "qemu_left": left_running(qemus)}


def assert_stopped_cleanly(run: dict) -> None:
    assert run["code"] == 130, run
    assert "double free" not in run["stderr"] and "Traceback" not in run["stderr"], run
    assert run["qemu_left"] == [], run


@pytest.mark.parametrize("command", ["seed", "inspect"])
@pytest.mark.parametrize(("count", "gap"), COUNTS)
def test_one_image_commands_stop_their_launch_at_once_on_any_number_of_ctrl_c(sample_disk, tmp_path, command,
                                                                               count, gap):
    key = tmp_path / "id.pub"
    key.write_text(public_line(comment="ctrl-c@test") + "\n")
    args, said = {  # the scripted seed (no terminal: no questions), and inspect
        "seed": ([str(sample_disk), "--password-stdin", "--ssh-key", str(key)], "the image was not changed"),
        "inspect": (["inspect", str(sample_disk)], "inspect changes nothing"),
    }[command]
    before = sha256(sample_disk)
    run = ctrl_c_while_launching(args, tmp_path, count, gap, stdin=b"launch interrupted 123\n")
    assert_stopped_cleanly(run)
    assert "nothing was written: stopping it now" in " ".join(run["stderr"].split()), run
    assert said in run["stderr"], run
    assert sha256(sample_disk) == before


@pytest.mark.parametrize(("count", "gap"), COUNTS)
def test_batch_stops_its_launch_at_once_on_any_number_of_ctrl_c(sample_disk, tmp_path, count, gap):
    manifest, _ = staff(tmp_path, {"gina": "", "hugo": ""})
    out = tmp_path / "out"
    before = sha256(sample_disk)
    run = ctrl_c_while_launching([
        "batch", str(manifest), "--base", str(sample_disk), "--out-dir", str(out), "--jobs", "1", "--accel", "tcg",
    ], tmp_path, count, gap)
    assert_stopped_cleanly(run)
    assert "0 image(s) made, 2 not made; no partial image is left" in run["stderr"], run
    assert sorted(p.name for p in out.iterdir()) == [
        ".zvm-provision-batch.key", ".zvm-provision-batch.lock", "report.json"]  # no image, no copy, no password
    assert processes_naming(out) == []
    assert sha256(sample_disk) == before


@pytest.mark.parametrize("command", ["keys", "inspect"])
@pytest.mark.parametrize(("count", "gap"), COUNTS[:2])
def test_fleet_commands_stop_their_launch_at_once_on_ctrl_c(sample_disk, tmp_path, command, count, gap):
    """keys and inspect over several images share batch's Cancel: a launch under way is stopped, not waited
    out (the fleet's chunks once launched without it, so the work phase still began after a Ctrl-C)."""
    images = tmp_path / "images"
    images.mkdir()
    for name in ("ann", "ben"):
        shutil.copyfile(sample_disk, images / f"{name}.qcow2")
    before = {p: sha256(p) for p in images.glob("*.qcow2")}
    args = {"keys": ["keys", str(images), "--remove-key", "nobody@nowhere", "--accel", "tcg"],
            "inspect": ["inspect", str(images), "--accel", "tcg"]}[command]
    run = ctrl_c_while_launching(args, tmp_path, count, gap)
    assert_stopped_cleanly(run)
    verb = {"keys": "changing keys on", "inspect": "inspecting"}[command]
    assert f"{verb} 2 disk(s)" not in run["stderr"], run  # the appliance never came up to work
    assert "an appliance still starting is stopped at once" in " ".join(run["stderr"].split()), run
    assert {p: sha256(p) for p in images.glob("*.qcow2")} == before  # (keys leaves batch's lock file there)
