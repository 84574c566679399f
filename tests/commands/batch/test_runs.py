"""`zvm-provision batch` as a person runs it: the real command, the real appliance, real disks.

- `--jobs 2`: two appliances at once (seen as two qemu processes of the command at the same moment), each
  image correct and independent of the other; meanwhile a second batch on the same out dir is refused
  (the lock), and the live status stays off (stderr is a terminal, but --json is given).
- Ctrl-C on a terminal while the appliance starts: the live status shows each step with its seconds; then
  exit 130, no image under a final name, no temporary copy, and report.json says what happened.

Launches (TCG): two at once, one read-only check of their images, and one interrupted.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from provision.guest.report import inspect_disk
from provision.core.credentials.passwords import hash_password
from provision.core.credentials.sshkeys import public_key_fingerprint
from provision.core.contractcheck import check_image_contract
from provision.core.layout import load_layout
from provision.guest.appliance import Appliance
from provision.guest.diskformat import probe_image
from tests.support.command import command_env
from tests.support.keyfactory import public_line
from tests.support.onscreen import flat

ROOT = Path(__file__).resolve().parents[3]
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
ERIN_PASSWORD = "erin's own password, given"


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "provision", "batch", *args, "--accel", "tcg"]


TERM = {"TERM": "xterm-256color"}


def staff(folder: Path, rows: dict[str, str]) -> tuple[Path, dict[str, str]]:
    """A manifest: name -> password hash ('' generates one). Returns it and each user's key line."""
    lines = {}
    for name in rows:
        lines[name] = public_line(comment=f"{name}@laptop")
        (folder / f"{name}.pub").write_text(lines[name] + "\n")
    path = folder / "staff.csv"
    path.write_text("name,ssh_keys,password_hash\n" + "".join(f"{n},{n}.pub,{h}\n" for n, h in rows.items()))
    path.chmod(0o600)
    return path, lines


class Terminal:
    """A pseudo-terminal whose output is collected in the background."""

    def __init__(self, columns: int = 120) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        self._chunks: list[bytes] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every writer closed its end
                return
            if not data:
                return
            self._chunks.append(data)

    @property
    def raw(self) -> str:
        return b"".join(self._chunks).decode("utf-8", "replace")

    @property
    def text(self) -> str:
        return ANSI.sub("", self.raw)

    def wait_for(self, pattern: str, process: subprocess.Popen, timeout: float = 600) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.text)
            if match:
                return match
            assert process.poll() is None, f"the command ended ({process.returncode}) before {pattern!r}:\n{self.text}"
            time.sleep(0.2)
        raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.text}")

    def close_slave(self) -> None:
        os.close(self.slave)

    def finish(self) -> None:
        self._thread.join(10)
        os.close(self.master)


def mkpasswd(password: str, like: str) -> str:
    """`password` hashed by mkpasswd (libxcrypt; not passlib, which made the hash) with `like`'s salt and rounds."""
    match = re.fullmatch(r"\$6\$(?:rounds=(\d+)\$)?([./0-9A-Za-z]+)\$[./0-9A-Za-z]{86}", like)
    assert match, "not a sha-512 crypt hash"
    rounds = ["-R", match.group(1)] if match.group(1) else []
    return subprocess.run(["mkpasswd", "-m", "sha-512", *rounds, "-S", match.group(2), "--stdin"],
                          input=password, capture_output=True, text=True, check=True).stdout.strip()


def appliances_of(pid: int, folder: Path) -> int:
    """How many qemu processes of `pid` run an appliance on a disk in `folder` right now."""
    count = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            raw = Path(f"/proc/{name}/stat").read_bytes()
            cmdline = Path(f"/proc/{name}/cmdline").read_bytes()
        except OSError:
            continue
        comm = raw[raw.find(b"(") + 1 : raw.rfind(b")")]
        fields = raw[raw.rfind(b")") + 2 :].split()
        if int(fields[1]) == pid and comm.startswith(b"qemu-system") and str(folder).encode() in cmdline:
            count += 1
    return count


def wait_watching(process: subprocess.Popen, timeout: float, each: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        assert time.monotonic() < deadline, "the batch did not finish in time"
        each()
        time.sleep(0.2)


@pytest.mark.appliance
@pytest.mark.tty
def test_two_appliances_at_once_make_correct_independent_images_and_the_out_dir_is_locked(
    sample_disk_template, tmp_path
):
    erin_hash = hash_password(ERIN_PASSWORD, rounds=5000).reveal()
    manifest, lines = staff(tmp_path, {"erin": erin_hash, "frank": ""})
    out = tmp_path / "out"
    terminal = Terminal()
    first = subprocess.Popen(
        command(str(manifest), "--base", str(sample_disk_template), "--out-dir", str(out), "--jobs", "2", "--json"),
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=terminal.slave, env=command_env(TERM),
        cwd=tmp_path,
    )
    terminal.close_slave()
    seen = {"qemu": 0, "second": None}

    def watch() -> None:
        seen["qemu"] = max(seen["qemu"], appliances_of(first.pid, out))
        if seen["second"] is None and "starting an appliance" in terminal.text:  # the lock is held now
            seen["second"] = subprocess.run(
                command(str(manifest), "--base", str(sample_disk_template), "--out-dir", str(out)),
                capture_output=True, text=True, timeout=120, env=command_env(TERM), stdin=subprocess.DEVNULL,
            )

    wait_watching(first, 1200, watch)
    report = json.loads(first.stdout.read())
    terminal.finish()
    stderr = terminal.raw
    assert first.returncode == 0, stderr

    # two appliances ran at the same moment, one per image
    assert seen["qemu"] == 2, stderr
    assert "2 image(s) to make in 2 appliance launch(es), 2 at a time" in stderr
    assert stderr.count("starting an appliance with 1 disk(s)") == 2
    # stderr is a terminal, but with --json there is no live status: plain lines only
    assert "\x1b" not in stderr and all(line.startswith("batch: ") for line in stderr.splitlines() if line.strip())

    # the second batch on the same out dir was refused
    second = seen["second"]
    assert second is not None and second.returncode == 4, second
    assert f"another zvm-provision run (batch, keys or batch-report) is writing to {out}" in second.stderr
    assert "wait for it to finish" in second.stderr

    users = {u["name"]: u for u in report["users"]}
    assert {name: u["status"] for name, u in users.items()} == {"erin": "seeded", "frank": "seeded"}
    assert sorted(p.name for p in out.iterdir()) == [
        ".zvm-provision-batch.key", ".zvm-provision-batch.lock", "erin.qcow2", "frank.qcow2",
        "initial-passwords.csv", "report.json"]

    # each image is complete and holds only its own user's key, password and identity
    generated = dict(row.split(",", 1) for row in (out / "initial-passwords.csv").read_text().splitlines()[1:])
    assert list(generated) == ["frank"]
    passwords = {"erin": ERIN_PASSWORD, "frank": generated["frank"]}
    found = {}
    names = ("erin", "frank")
    with Appliance([probe_image(out / f"{n}.qcow2") for n in names], readonly=True, accel="tcg") as appliance:
        appliance.launch()
        for index, name in enumerate(names):
            inspected = inspect_disk(appliance, index, probe_image(out / f"{name}.qcow2"))
            with appliance.mount_persist(index) as fs:
                held = fs.read_file(load_layout().role("password-hash").path).decode().strip()
            found[name] = (inspected, held)
    for name, (inspected, held) in found.items():
        assert check_image_contract(inspected) == [], name
        assert [k.fingerprint for k in inspected.authorized_keys] == [public_key_fingerprint(lines[name])]
        assert mkpasswd(passwords[name], held) == held, name
        assert users[name]["machine_id"] == inspected.machine_id.value
        assert users[name]["host_key"]["fingerprint"] == inspected.host_key.fingerprint
    assert found["erin"][1] == erin_hash
    erin, frank = found["erin"][0], found["frank"][0]
    assert erin.machine_id.value != frank.machine_id.value
    assert erin.host_key.fingerprint != frank.host_key.fingerprint


@pytest.mark.appliance
@pytest.mark.tty
def test_ctrl_c_while_the_appliance_starts_exits_130_leaving_no_partial_image(sample_disk_template, tmp_path):
    manifest, _ = staff(tmp_path, {"gina": "", "hugo": ""})
    out = tmp_path / "out"
    terminal = Terminal()

    def controlling_terminal() -> None:  # as a shell does: the terminal's Ctrl-C reaches this process group
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        # and, as a shell does for a foreground job, SIGINT as by default: a suite started in the background
        # (`pytest &`, a CI runner) passes SIGINT on ignored, and Python then never raises KeyboardInterrupt
        signal.signal(signal.SIGINT, signal.SIG_DFL)

    process = subprocess.Popen(
        command(str(manifest), "--base", str(sample_disk_template), "--out-dir", str(out), "--jobs", "1"),
        stdin=terminal.slave, stdout=terminal.slave, stderr=terminal.slave, env=command_env(TERM),
        cwd=tmp_path,
        start_new_session=True, preexec_fn=controlling_terminal,
    )
    terminal.close_slave()
    try:
        # the live status: each step of the launch with its own seconds, counting
        # (the overlays to seed first; the copies of the base are made behind the launch)
        terminal.wait_for(r"launch 1: making 2 overlay\(s\) of the base", process)
        terminal.wait_for(r"launch 1: starting an appliance with 2 disk\(s\)[^\n]*?\b([3-9]|\d\d+) s", process)
        assert not (out / "gina.qcow2").exists() and (out / ".gina.qcow2.seeding").exists()
        os.write(terminal.master, b"\x03")  # Ctrl-C, typed at the terminal
        code = process.wait(timeout=900)
    finally:
        if process.poll() is None:
            process.kill()
    terminal.finish()
    text = terminal.text
    assert code == 130, text
    assert "stopping (Ctrl-C)" in text
    assert "stopped by Ctrl-C: 0 image(s) made, 2 not made; no partial image is left." in flat(text)
    assert sorted(p.name for p in out.iterdir()) == [
        ".zvm-provision-batch.key", ".zvm-provision-batch.lock", "report.json"]  # no image, no copy, no password
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True
    assert [(u["name"], u["status"], u["error"]) for u in report["users"]] == [
        ("gina", "interrupted", "stopped by Ctrl-C before it was made"),
        ("hugo", "interrupted", "stopped by Ctrl-C before it was made"),
    ]
    assert processes_naming(out) == []  # no appliance was left running on a copy


def processes_naming(folder: Path) -> list[int]:
    found = []
    for name in os.listdir("/proc"):
        try:
            if name.isdigit() and str(folder).encode() in Path(f"/proc/{name}/cmdline").read_bytes():
                found.append(int(name))
        except OSError:
            continue
    return found
