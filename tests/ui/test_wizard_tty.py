"""The real command on a pseudo-terminal: a person's keystrokes answer questionary's prompts.

Two appliance launches per test at most (the wizard's, then a fresh read-only handle or none), plus the shared
sample disk template from conftest.
"""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from provision.core.layout import load_layout
from tests.commands.test_ctrl_c_while_launching import left_running, qemu_pids_under
from tests.support.files import sha256
from tests.support.held_writes import HOLD_WRITES_ENV
from tests.support.keyfactory import public_line
from tests.support.onscreen import flat, wrapped
from tests.support.openssh import keygen, list_certificate

pexpect = pytest.importorskip("pexpect")

pytestmark = [pytest.mark.tty, pytest.mark.appliance]

REPO = Path(__file__).resolve().parents[2]
LAUNCH_TIMEOUT = 240  # the wait for the appliance: ~15 s under TCG, more on a busy machine
PASSWORD = "tty test pass 42"
ENTER = "\r"
CTRL_C = "\x03"
STOPPED = 120  # a stopped launch ends in a second or two: this only catches a run that waits for all of it


def wait_for_qemu(child, timeout: float = LAUNCH_TIMEOUT) -> set[int]:
    """The pids of the appliance's qemu, once it runs under the command (the launch is under way)."""
    deadline = time.monotonic() + timeout
    while not (found := qemu_pids_under(child.pid)):
        assert child.isalive() and time.monotonic() < deadline, child.before
        time.sleep(0.05)
    return found


def spawn(disk: Path, home: Path, *, args: list[str] | None = None, module: str = "provision", **extra_env: str):
    """`python -m provision` (or, for the held writes, the wrapper tests.support.held_writes) on a pty."""
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
        sys.executable, ["-m", module, *(args or [str(disk)])], env=env, cwd=str(REPO), encoding="utf-8",
        timeout=60, dimensions=(50, 200),
    )


def home_with_keys(tmp_path: Path) -> tuple[Path, str]:
    """~/.ssh with id_ed25519.pub and a newer laptop.pub: the checklist ticks id_ed25519.pub (the default)."""
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    line = public_line(comment="tty@test")
    (home / ".ssh" / "id_ed25519.pub").write_text(line + "\n")
    (home / ".ssh" / "laptop.pub").write_text(public_line(comment="laptop@test") + "\n")
    os.utime(home / ".ssh" / "id_ed25519.pub", (time.time() - 3600, time.time() - 3600))
    return home, line


def answer_keys_and_netbird(child) -> None:
    """The questions asked while the appliance starts: Enter takes the ticked default key; no Netbird."""
    child.expect("qcow2")
    child.expect("SSH public keys")
    child.send(ENTER)
    child.expect("Join a Netbird network on first boot")
    child.send("n")


def answer_password(child) -> None:
    """Asked once the image's state is known; the select's default is "Type a password" on a blank image."""
    child.expect("Password for the user zvm", timeout=LAUNCH_TIMEOUT)
    child.send(ENTER)
    child.expect(r"Password \(at least 8")
    child.send(PASSWORD + ENTER)
    child.expect("The same password again")
    child.send(PASSWORD + ENTER)
    child.expect("The VM's name")  # Enter keeps the default, zvm: an image without a name is not given one
    child.send(ENTER)
    child.expect("Write this to")


def test_keystrokes_seed_the_image(sample_disk, open_readonly, tmp_path):
    home, key_line = home_with_keys(tmp_path)
    child = spawn(sample_disk, home)
    child.logfile_read = screen = io.StringIO()  # everything the person saw, to count what was said
    try:
        child.expect("qcow2")
        # asked at once, while the appliance starts: not after it
        child.expect("SSH public keys", timeout=30)
        child.send(ENTER)
        child.expect("Join a Netbird network on first boot")
        child.send("n")
        # then a live line with the seconds, until the appliance is up
        child.expect(r"Starting the libguestfs appliance… \d+ s", timeout=30)
        child.expect("persist: not seeded yet", timeout=LAUNCH_TIMEOUT)
        child.expect("Password for the user zvm")
        child.send(ENTER)
        child.expect(r"Password \(at least 8")
        child.send("short" + ENTER)  # refused in place; the prompt stays open
        child.expect("at least 8 characters long")
        child.send("\x7f" * 5 + PASSWORD + ENTER)
        child.expect("The same password again")
        child.send(PASSWORD + ENTER)
        child.expect("The VM's name")
        child.send("\x7f" * 3 + "zvm-typed" + ENTER)  # the answer starts as the default, zvm: erase it
        child.expect("Write this to")
        child.send("y")
        confirmed = time.monotonic()
        child.expect(pexpect.EOF, timeout=120)
        exited = time.monotonic()
    finally:
        child.close()
    output = child.before or ""
    print(f"confirmation to exit: {exited - confirmed:.2f} s")  # a measurement, not a timed test
    assert child.exitstatus == 0, output
    assert PASSWORD not in output
    seen = screen.getvalue()
    # the skeleton in one line, the hand-over summary once, its known_hosts line naming the hostname typed
    assert "directory skeleton: " in seen and " dir  /var/lib/nixos" not in seen, seen
    assert seen.count("Add this to ~/.ssh/known_hosts") == 1 and seen.count("machine-id: ") == 1, seen
    assert re.search(r"zvm-typed ssh-ed25519 AAAA\S+", seen), seen
    assert "Netbird: not set up" in seen, seen

    from tests.support import libxcrypt as crypt  # noqa: PLC0415 (what PAM does at login)

    with open_readonly(sample_disk) as (_, fs):
        hashed = fs.read_file("/passwords/zvm").decode().strip()
        keys = fs.read_file("/home/zvm/.ssh/authorized_keys").decode()
        stat = fs.lstat("/home/zvm/.ssh/authorized_keys")
        hostname = fs.read_file("/etc/hostname")
    assert hostname == b"zvm-typed\n"  # the name typed at the wizard's question
    assert hashed.startswith("$6$") and crypt.crypt(PASSWORD, hashed) == hashed
    assert keys == key_line + "\n"  # the ticked default, id_ed25519.pub, not the newer laptop.pub
    assert (stat.uid, stat.gid, stat.mode) == (1000, 100, 0o600)


@pytest.mark.parametrize(("count", "gap"), [(1, 0.0), (2, 1.5), (3, 0.2)])
def test_ctrl_c_at_the_first_question_stops_the_starting_appliance_at_once_leaving_the_image_byte_identical(
    sample_disk, tmp_path, count, gap
):
    """Nothing is written before the appliance is up, so Ctrl-C kills the launch rather than waiting for it (it
    used to wait ~50 s). A second Ctrl-C used to end the interpreter with the launch thread inside libguestfs:
    glibc's "double free or corruption", exit 134, 2 runs in 3. The bound on the end is generous (a launch
    takes 15-60 s here; the stop a second or two): it catches a run that waits for the launch, not a slow host."""
    home, _ = home_with_keys(tmp_path)
    before = sha256(sample_disk)
    child = spawn(sample_disk, home)
    try:
        child.expect("SSH public keys")
        qemus = wait_for_qemu(child)
        child.send(CTRL_C)  # a key at the question: prompt_toolkit reads it
        for _ in range(count - 1):
            time.sleep(gap)
            if child.isalive():
                child.sendintr()  # the terminal's Ctrl-C once the prompt has given the terminal back: SIGINT
        child.expect(pexpect.EOF, timeout=STOPPED)
    finally:
        child.close()
    output = " ".join((child.before or "").split())
    assert child.exitstatus == 130, (child.exitstatus, child.signalstatus, output)
    assert "double free" not in output and "Traceback" not in output, output
    # says what it waits for, and what another Ctrl-C does
    assert "nothing was written: stopping it now" in output and "another Ctrl-C changes nothing" in output, output
    assert "the image was not changed" in output
    assert sha256(sample_disk) == before
    assert qemus and left_running(qemus) == []


def test_no_at_the_confirmation_exits_1_saying_nothing_was_written(sample_disk, tmp_path):
    home, _ = home_with_keys(tmp_path)
    before = sha256(sample_disk)
    child = spawn(sample_disk, home)
    try:
        answer_keys_and_netbird(child)
        answer_password(child)
        child.send("n")
        child.expect(pexpect.EOF, timeout=120)
    finally:
        child.close()
    assert child.exitstatus == 1, child.before  # an answer, not an interrupt (130 is for signals)
    assert "nothing was written" in (child.before or "")
    assert sha256(sample_disk) == before


def test_ctrl_c_key_during_the_writes_finishes_them_and_hands_over_the_summary(sample_disk, tmp_path):
    """The Ctrl-C key on the terminal (the tty sends SIGINT to the command, not to qemu) while the wizard's
    confirmed plan is being written. The run holds after its first write (tests/support/held_writes.py)."""
    home, key_line = home_with_keys(tmp_path)
    hold = tmp_path / "hold"
    hold.mkdir()
    child = spawn(sample_disk, home, module="tests.support.held_writes", **{HOLD_WRITES_ENV: str(hold)})
    try:
        answer_keys_and_netbird(child)
        answer_password(child)
        child.send("y")
        deadline = time.monotonic() + 120
        while not (hold / "writing").exists():
            assert child.isalive() and time.monotonic() < deadline, child.before
            time.sleep(0.05)
        child.send(CTRL_C)
        child.expect("finishing the writes")
        (hold / "resume").touch()
        # Read to the end in one piece: pexpect's patterns are DOTALL, so an intermediate expect such as
        # "Done: .* seeded" could swallow the summary lines this test checks (a CI run failed so).
        child.expect(pexpect.EOF, timeout=120)
    finally:
        child.close()
    # Without the terminal's escape sequences: stderr's live line may redraw in the middle of stdout's summary
    # on the shared terminal.
    rest = flat(child.before or "")  # a long temporary path wraps the summary's lines anywhere
    assert child.exitstatus == 130, rest
    assert re.search(r"Done: .*seeded", rest), rest
    assert re.search(r"zvm ssh-ed25519 \S+", rest), rest  # the known_hosts line of the hand-over summary
    assert "was seeded" in rest and "nothing more was written" not in rest, rest


def test_a_scripted_run_on_a_terminal_shows_the_live_status_but_not_with_json(sample_disk, tmp_path):
    home, _ = home_with_keys(tmp_path)
    key = home / ".ssh" / "id_ed25519.pub"
    args = [str(sample_disk), "--no-password", "--ssh-key", str(key), "--dry-run", "--yes"]
    plain = spawn(sample_disk, home, args=args)
    as_json = spawn(sample_disk, home, args=[*args, "--json"])
    try:
        plain.expect(r"Starting the libguestfs appliance… \d+ s", timeout=60)
        plain.expect("Plan \\(dry run", timeout=LAUNCH_TIMEOUT)
        plain.expect(pexpect.EOF, timeout=120)
        as_json.expect(pexpect.EOF, timeout=LAUNCH_TIMEOUT)
    finally:
        plain.close()
        as_json.close()
    assert plain.exitstatus == 0, plain.before
    assert as_json.exitstatus == 0 and '"dry_run": true' in as_json.before, as_json.before
    assert "Starting the libguestfs appliance" not in as_json.before


def test_inspect_on_a_terminal_shows_the_live_status_while_the_appliance_starts(sample_disk, tmp_path):
    home, _ = home_with_keys(tmp_path)
    child = spawn(sample_disk, home, args=["inspect", str(sample_disk)])
    try:
        child.expect(r"Starting the libguestfs appliance… \d+ s", timeout=60)
        child.expect("persist", timeout=LAUNCH_TIMEOUT)
        child.expect(pexpect.EOF, timeout=120)
    finally:
        child.close()
    assert child.exitstatus == 0, child.before


def test_the_wizard_with_output_writes_the_new_image_and_leaves_image_byte_identical(sample_disk, tmp_path):
    """seed IMAGE --output OUT on a terminal: the same questions; the confirmation names OUT, not the working
    overlay; IMAGE is not changed."""
    home, _ = home_with_keys(tmp_path)
    out = tmp_path / "handed.qcow2"
    before = sha256(sample_disk)
    child = spawn(sample_disk, home, args=[str(sample_disk), "--output", str(out), "--compress"])
    try:
        answer_keys_and_netbird(child)
        answer_password(child)
        child.expect(wrapped("handed.qcow2 (a new compressed qcow2 image;"))  # wrapped where the path ends
        child.send("y")
        child.expect(pexpect.EOF, timeout=240)
    finally:
        child.close()
    output = flat(child.before or "")
    assert child.exitstatus == 0, output
    assert f"Written: {out} (compressed qcow2" in output
    assert sha256(sample_disk) == before
    assert out.is_file() and sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_sample_disk_shows_each_step_live_on_a_terminal_and_nothing_of_it_otherwise(tmp_path):
    """A newcomer's first command takes 45-55 s: on a terminal it says what it does, with the seconds; off a
    terminal (a log, a pipe) stderr stays empty."""
    from tests.conftest import SAMPLE_SIZE  # noqa: PLC0415

    on_tty = tmp_path / "on-tty.qcow2"
    child = spawn(on_tty, tmp_path, args=["sample-disk", str(on_tty), "--size", SAMPLE_SIZE])
    piped = tmp_path / "piped.qcow2"
    off_tty = subprocess.Popen(
        [sys.executable, "-m", "provision", "sample-disk", str(piped), "--size", SAMPLE_SIZE],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(REPO),
        env={**os.environ, "ZVM_PROVISION_ACCEL": "tcg", "PYTHONPATH": str(REPO)},
    )
    try:
        child.expect(r"Starting the libguestfs appliance… \d+ s", timeout=60)
        child.expect(r"Partitioning and formatting the disk… \d+ s", timeout=LAUNCH_TIMEOUT)
        child.expect(pexpect.EOF, timeout=LAUNCH_TIMEOUT)
        out, err = off_tty.communicate(timeout=LAUNCH_TIMEOUT)
    finally:
        child.close()
        if off_tty.poll() is None:
            off_tty.kill()
    assert child.exitstatus == 0, child.before
    assert off_tty.returncode == 0 and err == b"", err
    assert out.decode().startswith(f"created {piped}")
    assert on_tty.is_file() and piped.is_file()


def test_the_wizard_signs_the_host_key_with_the_host_ca_given_as_a_flag(sample_disk, open_readonly, tmp_path):
    """`zvm-provision IMAGE --host-ca F --host-domain D` on a terminal: the wizard asks nothing about
    certificates, yet the flags reach its plan. The image then holds a host certificate, signed by that CA,
    for the hostname typed at the wizard's question (and its --host-domain name), on the host key it carries:
    read back through a fresh appliance and judged by real `ssh-keygen -L`."""

    home, _ = home_with_keys(tmp_path)
    host_ca = keygen(tmp_path / "host_ca", "host-ca@it")
    host_ca.chmod(0o600)
    domain, hostname = "corp.example", "vm-wizard"
    args = [str(sample_disk), "--host-ca", str(host_ca), "--host-domain", domain]
    child = spawn(sample_disk, home, args=args)
    child.logfile_read = screen = io.StringIO()
    try:
        answer_keys_and_netbird(child)
        child.expect("Password for the user zvm", timeout=LAUNCH_TIMEOUT)
        child.send(ENTER)
        child.expect(r"Password \(at least 8")
        child.send(PASSWORD + ENTER)
        child.expect("The same password again")
        child.send(PASSWORD + ENTER)
        child.expect("The VM's name")
        child.send("\x7f" * 3 + hostname + ENTER)  # the answer starts as the default, zvm: erase it
        child.expect("Write this to")
        child.send("y")
        child.expect(pexpect.EOF, timeout=240)
    finally:
        child.close()
    seen = flat(screen.getvalue())
    assert child.exitstatus == 0, seen[-1500:]
    ca_public = (tmp_path / "host_ca.pub").read_text().split()
    # the hand-over's line for the fleet
    assert f"@cert-authority *.{domain} {ca_public[0]} {ca_public[1]}" in seen, seen[-1500:]
    assert "PRIVATE KEY" not in seen and PASSWORD not in seen

    layout = load_layout()
    with open_readonly(sample_disk) as (_, fs):
        cert_entry = layout.role("host-certificate")
        certificate = fs.read_file(cert_entry.path)
        stat = fs.lstat(cert_entry.path)
        host_public = fs.read_file(layout.role("host-key-public").path)
        image_hostname = fs.read_file("/etc/hostname")
    assert image_hostname == f"{hostname}\n".encode()
    assert (stat.uid, stat.gid, stat.mode) == (cert_entry.uid, cert_entry.gid, cert_entry.mode)

    cert = tmp_path / "ssh_host_ed25519_key-cert.pub"
    cert.write_bytes(certificate)
    described = list_certificate(cert)  # real ssh-keygen -L
    assert "host certificate" in described, described
    principals = described.split("Principals:")[1].split("Critical Options:")[0].split()
    assert principals == [hostname, f"{hostname}.{domain}"], described
    assert f'Key ID: "{hostname} ' in described, described

    def fingerprint(path: Path) -> str:
        return subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True,
                              check=True).stdout.split()[1]

    assert f"Signing CA: ED25519 {fingerprint(tmp_path / 'host_ca.pub')}" in described, described
    plain = tmp_path / "host.pub"
    plain.write_bytes(host_public)
    assert fingerprint(cert) == fingerprint(plain)  # the certificate certifies the host key the image holds
