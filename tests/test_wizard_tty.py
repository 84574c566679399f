"""The real command on a pseudo-terminal: a person's keystrokes answer questionary's prompts.

Two appliance launches per test (the wizard's, then a fresh read-only handle or none), plus the shared
sample disk template from conftest.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import pytest

from tests.keyfactory import public_line

pexpect = pytest.importorskip("pexpect")

pytestmark = [pytest.mark.tty, pytest.mark.appliance]

REPO = Path(__file__).resolve().parent.parent
LAUNCH_TIMEOUT = 240  # the first question waits for the appliance: ~15 s under TCG, more on a busy machine
PASSWORD = "tty test pass 42"
ENTER = "\r"
CTRL_C = "\x03"


def spawn(disk: Path, home: Path, **extra_env: str):
    env = dict(os.environ)
    env.update(extra_env)
    env.update(
        HOME=str(home),
        ZVM_PROVISION_ACCEL="tcg",
        PYTHONPATH=str(REPO),
        TERM="xterm",
        PROMPT_TOOLKIT_NO_CPR="1",  # pexpect does not answer cursor-position requests
        NO_COLOR="1",
    )
    return pexpect.spawn(
        sys.executable, ["-m", "provision", str(disk)], env=env, cwd=str(REPO), encoding="utf-8",
        timeout=60, dimensions=(50, 200),
    )


def home_with_one_key(tmp_path: Path) -> tuple[Path, str]:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    line = public_line(comment="tty@test")
    (home / ".ssh" / "id_ed25519.pub").write_text(line + "\n")
    return home, line


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_keystrokes_seed_the_image(sample_disk, open_readonly, tmp_path):
    home, key_line = home_with_one_key(tmp_path)
    bench = tmp_path / "bench.txt"
    child = spawn(sample_disk, home, ZVM_PROVISION_BENCH_FILE=str(bench))
    try:
        child.expect("qcow2")
        # the select's default is "Type a password"
        child.expect("Password for the user zvm", timeout=LAUNCH_TIMEOUT)
        child.send(ENTER)
        child.expect(r"Password \(at least 8")
        child.send("short" + ENTER)  # refused in place; the prompt stays open
        child.expect("at least 8 characters long")
        child.send("\x7f" * 5 + PASSWORD + ENTER)
        child.expect("The same password again")
        child.send(PASSWORD + ENTER)
        child.expect("SSH public keys")  # the one ~/.ssh/*.pub is pre-selected
        child.send(ENTER)
        child.expect("Join a Netbird network on first boot")
        child.send("n")
        child.expect("Write this to")
        child.send("y")
        child.expect(pexpect.EOF, timeout=120)
        exited = time.monotonic()
    finally:
        child.close()
    output = child.before or ""
    event, confirmed = bench.read_text().split()
    assert event == "confirmed"
    print(f"confirmation to exit: {exited - float(confirmed):.2f} s")  # a measurement, not a timed test
    assert child.exitstatus == 0, output
    assert PASSWORD not in output

    from tests import libxcrypt as crypt  # noqa: PLC0415 (what PAM does at login)

    with open_readonly(sample_disk) as (_, fs):
        hashed = fs.read_file("/passwords/zvm").decode().strip()
        keys = fs.read_file("/home/zvm/.ssh/authorized_keys").decode()
        stat = fs.lstat("/home/zvm/.ssh/authorized_keys")
    assert hashed.startswith("$6$") and crypt.crypt(PASSWORD, hashed) == hashed
    assert keys == key_line + "\n"
    assert (stat.uid, stat.gid, stat.mode) == (1000, 100, 0o600)


def test_ctrl_c_mid_wizard_leaves_the_image_byte_identical(sample_disk, tmp_path):
    home, _ = home_with_one_key(tmp_path)
    before = sha256(sample_disk)
    child = spawn(sample_disk, home)
    try:
        child.expect("Password for the user zvm", timeout=LAUNCH_TIMEOUT)
        child.send(ENTER)
        child.expect(r"Password \(at least 8")
        child.send(PASSWORD + ENTER)
        child.expect("The same password again")
        child.send(CTRL_C)
        child.expect(pexpect.EOF, timeout=120)
    finally:
        child.close()
    assert child.exitstatus == 130, child.before
    assert "the image was not changed" in (child.before or "")
    assert sha256(sample_disk) == before
