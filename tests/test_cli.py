"""The command line without the appliance: help, usage errors, input validation before the image is opened.

Each refusal here must happen before libguestfs starts, so these tests are fast; that the image stays
byte-identical is checked on a real image file.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.keyfactory import private_pem, public_line

SECRET_PASSWORD = "correct horse battery staple 7Q!"


def run(*args: str, stdin: bytes = b"", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "ZVM_PROVISION_ACCEL": "tcg", **(env or {})}
    result = subprocess.run(
        [sys.executable, "-m", "provision", *args],
        input=stdin, capture_output=True, env=full_env, timeout=120, check=False,
    )
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def fake_disk(tmp_path: Path) -> Path:
    """A file with a GPT signature: passes the header check, but the tests below must refuse before that."""
    disk = tmp_path / "disk.raw"
    data = bytearray(1 << 20)
    data[510:512] = b"\x55\xaa"
    data[512:520] = b"EFI PART"
    disk.write_bytes(bytes(data))
    return disk


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "id.pub"
    path.write_text(public_line() + "\n")
    return path


def test_help_teaches_the_commands_and_exit_codes():
    result = run("--help")
    assert result.returncode == 0
    for word in ("seed", "inspect", "batch", "sample-disk", "Exit codes", "130"):
        assert word in result.stdout
    seed_help = run("seed", "--help").stdout
    for flag in ("--password-stdin", "--password-hash-file", "--no-password", "--ssh-key", "--replace-keys",
                 "--netbird-setup-key-file", "--dry-run", "--json", "--accel", "--new-machine-id"):
        assert flag in seed_help


@pytest.mark.parametrize("flag", ["--password", "--password-hash", "--netbird-setup-key", "--netbird-key"])
def test_no_secret_flag_takes_a_value_on_the_command_line(fake_disk, key_file, flag):
    """Everything else on the line is valid (an image that passes the header check, a key, a dry run): the
    only thing that can refuse it is the option's absence."""
    seed_help = run("seed", "--help").stdout
    assert f"{flag} " not in seed_help and f"{flag}=" not in seed_help
    before = sha256(fake_disk)
    for args in ([flag, SECRET_PASSWORD], [f"{flag}={SECRET_PASSWORD}"]):
        result = run("seed", str(fake_disk), "--no-password", "--ssh-key", str(key_file), "--dry-run", *args,
                     env={"LIBGUESTFS_HV": "/nonexistent/qemu-system-x86_64"})  # a launch would fail at once
        assert result.returncode == 2, result.stderr
        assert f"No such option: {flag}" in result.stderr
        assert SECRET_PASSWORD not in result.stderr + result.stdout
    assert sha256(fake_disk) == before


def test_two_password_sources_are_a_usage_error(fake_disk, key_file, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(SECRET_PASSWORD + "\n")
    result = run(str(fake_disk), "--password-stdin", "--password-file", str(pw), "--ssh-key", str(key_file),
                 stdin=SECRET_PASSWORD.encode())
    assert result.returncode == 2
    assert "choose one password source" in result.stderr


def test_nothing_given_without_a_terminal_fails_at_once(fake_disk):
    before = sha256(fake_disk)
    result = run(str(fake_disk))
    assert result.returncode == 2
    assert "--ssh-key" in result.stderr and "--password-stdin" in result.stderr
    assert sha256(fake_disk) == before


@pytest.mark.parametrize(
    ("stdin", "reason"),
    [
        (b"", "empty"),
        (b"\n", "empty"),
        (b"two\nlines\n", "one line"),
        (b"nul\x00inside\n", "NUL"),
        (b"x" * 5000 + b"\n", "4096"),
    ],
    ids=["nothing", "empty-line", "two-lines", "nul", "too-long"],
)
def test_bad_passwords_on_stdin_are_refused_before_the_image_is_opened(fake_disk, key_file, stdin, reason):
    before = sha256(fake_disk)
    result = run(str(fake_disk), "--password-stdin", "--ssh-key", str(key_file), stdin=stdin)
    assert result.returncode == 2, result.stderr
    assert reason.lower() in result.stderr.lower()
    assert sha256(fake_disk) == before


def test_a_private_key_given_as_ssh_key_is_refused_and_never_echoed(fake_disk, tmp_path):
    private = tmp_path / "id_ed25519"
    pem = private_pem()
    private.write_text(pem)
    before = sha256(fake_disk)
    result = run(str(fake_disk), "--no-password", "--ssh-key", str(private))
    assert result.returncode == 2
    assert "private key" in result.stderr
    body = pem.splitlines()[1]
    assert body not in result.stderr and body not in result.stdout
    assert sha256(fake_disk) == before


def test_bad_hash_file_is_refused_without_echoing_it(fake_disk, key_file, tmp_path):
    bad = tmp_path / "hash"
    bad.write_text("$6$rounds=10$salt$" + "b" * 86 + "\n")
    result = run(str(fake_disk), "--password-hash-file", str(bad), "--ssh-key", str(key_file))
    assert result.returncode == 2
    assert "b" * 86 not in result.stderr


def test_bad_netbird_key_and_url_are_refused(fake_disk, key_file, tmp_path):
    nb = tmp_path / "nb"
    nb.write_text("not-a-uuid-but-a-secret\n")
    result = run(str(fake_disk), "--no-password", "--ssh-key", str(key_file), "--netbird-setup-key-file", str(nb))
    assert result.returncode == 2
    assert "not-a-uuid-but-a-secret" not in result.stderr
    result = run(str(fake_disk), "--no-password", "--ssh-key", str(key_file),
                 "--netbird-management-url", "http://insecure.example")
    assert result.returncode == 2
    assert "https" in result.stderr


def test_missing_key_file_and_missing_image_are_clear(fake_disk, tmp_path):
    result = run(str(fake_disk), "--no-password", "--ssh-key", str(tmp_path / "nope.pub"))
    assert result.returncode == 2 and "no such file" in result.stderr
    key = tmp_path / "k.pub"
    key.write_text(public_line())
    result = run(str(tmp_path / "missing.qcow2"), "--no-password", "--ssh-key", str(key))
    assert result.returncode == 2 and "no such file" in result.stderr


def test_a_text_file_is_not_an_image(tmp_path, key_file):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 1000)
    result = run(str(text), "--no-password", "--ssh-key", str(key_file))
    assert result.returncode == 3
    assert "disk image" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_accel_is_a_usage_error(fake_disk, key_file):
    result = run(str(fake_disk), "--no-password", "--ssh-key", str(key_file), "--accel", "warp")
    assert result.returncode == 2


def test_a_key_file_cryptography_cannot_load_is_a_usage_error_not_an_internal_error(fake_disk, tmp_path):
    """An ECDSA key with a compressed point: cryptography raises NotImplementedError for it (found by the
    property tests); the command must say what is wrong with the key and exit 2."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.test_credentials import compressed_point_line

    key = tmp_path / "compressed.pub"
    key.write_text(compressed_point_line(ec.generate_private_key(ec.SECP256R1())) + "\n")
    result = run(str(fake_disk), "--no-password", "--ssh-key", str(key), "--dry-run")
    assert result.returncode == 2, result.stderr
    assert "not a valid ecdsa-sha2-nistp256 key" in result.stderr and "internal error" not in result.stderr
