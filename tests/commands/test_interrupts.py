"""Ctrl-C through the real command and the real appliance: before writing, during writing, twice during writing.

Each run is the command in its own session, and Ctrl-C is SIGINT sent to its process group, as a terminal sends
it (qemu runs in a process group of its own, so only the tool sees it).

Landing a signal inside the writes needs a slow point there: the command runs through tests.support.held_writes,
which, right after the first write, creates `writing` in the folder ZVM_PROVISION_TEST_HOLD_WRITES names and
waits until `resume` appears. The product has no such hook; without the wrapper the writes run straight through.

Launches: the three runs go together (three appliances), then one read-only appliance reads the disks back.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provision.core.credentials.sshkeys import public_key_fingerprint
from provision.core.fs import TEMP_PREFIX
from provision.core.layout import load_layout
from tests.commands.test_faults import _descendants
from tests.support.files import copy_disk, sha256
from tests.support.held_writes import HOLD_WRITES_ENV
from tests.support.keyfactory import public_line
from tests.support.persist import CERTIFICATE_ROLES

pytestmark = pytest.mark.appliance

REPO = Path(__file__).resolve().parents[2]
LAYOUT = load_layout()
PASSWORD = "interrupt me 1234"
TIMEOUT = 600  # a launch under TCG on a busy 2-core machine


def wait_for(condition, what: str, proc: subprocess.Popen, timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            raise AssertionError(f"the command ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def qemu_running_under(pid: int) -> bool:
    """A qemu among the command's descendants: the appliance is being launched."""
    for child in _descendants(pid) - {pid}:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as fh:
                if b"qemu" in fh.read():
                    return True
        except OSError:
            continue
    return False


class Command:
    """The seed command, scripted, in its own session; stderr goes to a file so it can be watched."""

    def __init__(self, work: Path, name: str, disk: Path, key: Path) -> None:
        self.hold = work / f"hold-{name}"
        self.hold.mkdir()
        self.stderr_path = work / f"{name}.stderr"
        env = {**os.environ, "ZVM_PROVISION_ACCEL": "tcg", "PYTHONPATH": str(REPO), HOLD_WRITES_ENV: str(self.hold)}
        env.pop("ZVM_PROVISION_DEBUG", None)
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.support.held_writes", str(disk), "--password-stdin", "--ssh-key", str(key)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, env=env, start_new_session=True,
            )  # fmt: skip
        self.proc.stdin.write(PASSWORD.encode() + b"\n")
        self.proc.stdin.close()

    def ctrl_c(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def writing(self) -> bool:
        return (self.hold / "writing").exists()

    def resume(self) -> None:
        (self.hold / "resume").touch()

    def finish(self) -> dict:
        stdout = self.proc.stdout.read().decode()
        code = self.proc.wait(timeout=TIMEOUT)
        return {"code": code, "stdout": stdout, "stderr": self.stderr}


def ctrl_c_once_writing(cmd: Command) -> None:
    wait_for(cmd.writing, "the first write", cmd.proc)
    cmd.ctrl_c()
    wait_for(lambda: "finishing the writes" in cmd.stderr, "the Ctrl-C to be noted", cmd.proc, 60)


def ctrl_c_during_writes(cmd: Command) -> dict:
    ctrl_c_once_writing(cmd)
    cmd.resume()
    return cmd.finish()


def ctrl_c_twice_during_writes(cmd: Command) -> dict:
    ctrl_c_once_writing(cmd)
    cmd.ctrl_c()
    return cmd.finish()


def ctrl_c_while_launching(cmd: Command) -> dict:
    wait_for(lambda: qemu_running_under(cmd.proc.pid), "the appliance's qemu", cmd.proc)
    cmd.ctrl_c()
    return cmd.finish()


SCENARIOS = {"during": ctrl_c_during_writes, "twice": ctrl_c_twice_during_writes, "before": ctrl_c_while_launching}


@pytest.fixture(scope="module")
def interrupted(sample_disk_template, tmp_path_factory, open_readonly):
    work = tmp_path_factory.mktemp("interrupts")
    key_line = public_line(comment="ctrl-c@test")
    key = work / "id.pub"
    key.write_text(key_line + "\n")
    disks = {name: copy_disk(sample_disk_template, work / f"{name}.qcow2") for name in SCENARIOS}
    before = {name: sha256(disk) for name, disk in disks.items()}
    with ThreadPoolExecutor(len(SCENARIOS)) as pool:
        futures = {name: pool.submit(run, Command(work, name, disks[name], key)) for name, run in SCENARIOS.items()}
        runs = {name: future.result() for name, future in futures.items()}
    back = {}
    for name in ("during", "twice"):
        with open_readonly(disks[name]) as (_, fs):
            stats = {e.path: fs.lstat(e.path) for e in LAYOUT.entries}
            files = {e.path: fs.read_file(e.path) for e in LAYOUT.files if stats[e.path] is not None and stats[e.path].kind == "file"}
            temps = [f"{d}/{n}" for d in sorted({e.parent for e in LAYOUT.files})
                     if stats.get(d) is not None and stats[d].kind == "dir"
                     for n in fs.listdir(d) if n.startswith(TEMP_PREFIX)]
        back[name] = {"stats": stats, "files": files, "temps": temps}
    return {"runs": runs, "disks": disks, "before": before, "back": back, "key_line": key_line}


def test_ctrl_c_during_writes_lets_them_finish_says_the_image_was_seeded_hands_over_and_exits_130(interrupted):
    run = interrupted["runs"]["during"]
    assert run["code"] == 130, run
    assert "was seeded" in run["stderr"], run
    assert "nothing more was written" not in run["stderr"] and "not changed" not in run["stderr"], run
    assert "Traceback" not in run["stderr"], run
    assert "Starting the libguestfs appliance" not in run["stderr"]  # no live status off a terminal
    # the hand-over summary, and it describes what the image now holds
    back = interrupted["back"]["during"]
    host_pub = back["files"]["/etc/ssh/ssh_host_ed25519_key.pub"].decode().strip()
    assert f"Host key: {public_key_fingerprint(host_pub)}" in run["stdout"], run
    assert "zvm " + " ".join(host_pub.split()[:2]) in run["stdout"]  # the known_hosts line
    assert back["files"]["/home/zvm/.ssh/authorized_keys"].decode() == interrupted["key_line"] + "\n"
    for entry in LAYOUT.entries:
        st = back["stats"][entry.path]
        if entry.role in ("netbird-setup-key", "netbird-management-url", "hostname", "update-signers",
                          *CERTIFICATE_ROLES):  # not asked for (update-signers: written only with --update-signer)
            continue
        assert st is not None and (st.kind, st.uid, st.gid, st.mode) == (entry.kind, entry.uid, entry.gid, entry.mode)
    assert back["files"]["/passwords/zvm"].startswith(b"$6$")
    assert not back["temps"]
    assert PASSWORD not in run["stdout"] + run["stderr"]


def test_a_second_ctrl_c_during_writes_stops_at_once_leaving_every_file_old_or_whole(interrupted):
    run = interrupted["runs"]["twice"]
    assert run["code"] == 130, run
    assert "second Ctrl-C" in run["stderr"] and "run the same command again" in run["stderr"], run
    assert "was seeded" not in run["stderr"] and "Traceback" not in run["stderr"], run
    back = interrupted["back"]["twice"]
    # stopped right after the first write: whatever file exists is whole, and no temporary file is left
    for path, data in back["files"].items():
        assert data.endswith(b"\n"), path
    assert not back["temps"]


def test_ctrl_c_before_writing_leaves_the_image_untouched_and_says_so(interrupted):
    run = interrupted["runs"]["before"]
    assert run["code"] == 130, run
    assert "the image was not changed" in run["stderr"], run
    assert "Traceback" not in run["stderr"], run
    assert sha256(interrupted["disks"]["before"]) == interrupted["before"]["before"]


def test_an_image_another_zvm_provision_is_writing_is_refused_naming_that_possibility(sample_disk, tmp_path):
    """The holder here is not a VM but another run (held after its first write): the refusal must not say
    only "a running VM?", and must leave the image to that run."""
    key = tmp_path / "id.pub"
    key.write_text(public_line(comment="first@test") + "\n")
    first = Command(tmp_path, "first", sample_disk, key)
    try:
        wait_for(first.writing, "the first run's first write", first.proc)
        second = subprocess.run(
            [sys.executable, "-m", "provision", str(sample_disk), "--no-password", "--ssh-key", str(key)],
            capture_output=True, text=True, timeout=TIMEOUT, check=False,
            env={**os.environ, "ZVM_PROVISION_ACCEL": "tcg", "PYTHONPATH": str(REPO)},
        )
    finally:
        first.resume()
        ended = first.finish()
    said = " ".join(second.stderr.split())
    assert second.returncode == 4, second.stderr
    assert "a running VM, or another zvm-provision on the same image" in said, said
    assert ended["code"] == 0, ended  # the first run was not disturbed
