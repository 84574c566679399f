"""The command line without the appliance: help, usage errors, input validation before the image is opened.

Each refusal here must happen before libguestfs starts, so these tests are fast; that the image stays
byte-identical is checked on a real image file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.command import in_process, zvm
from tests.support.files import sha256
from tests.support.keyfactory import private_pem, public_line

SECRET_PASSWORD = "correct horse battery staple 7Q!"


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
    result = zvm("--help")
    assert result.returncode == 0
    for word in ("seed", "inspect", "batch", "sample-disk", "Exit codes", "130"):
        assert word in result.stdout
    seed_help = zvm("seed", "--help").stdout
    for flag in ("--password-stdin", "--password-hash-file", "--no-password", "--ssh-key", "--replace-keys",
                 "--netbird-setup-key-file", "--dry-run", "--json", "--accel", "--new-machine-id"):
        assert flag in seed_help


@pytest.mark.parametrize("flag", ["--password", "--password-hash", "--netbird-setup-key", "--netbird-key"])
def test_no_secret_flag_takes_a_value_on_the_command_line(fake_disk, key_file, flag):
    """Everything else on the line is valid (an image that passes the header check, a key, a dry run): the
    only thing that can refuse it is the option's absence."""
    seed_help = zvm("seed", "--help").stdout
    assert f"{flag} " not in seed_help and f"{flag}=" not in seed_help
    before = sha256(fake_disk)
    for args in ([flag, SECRET_PASSWORD], [f"{flag}={SECRET_PASSWORD}"]):
        result = in_process("seed", str(fake_disk), "--no-password", "--ssh-key", str(key_file), "--dry-run",
                            *args, env={"LIBGUESTFS_HV": "/nonexistent/qemu"})  # a launch would fail at once
        assert result.returncode == 2, result.stderr
        assert f"no such option: {flag}" in result.stderr
        assert SECRET_PASSWORD not in result.stderr + result.stdout
    assert sha256(fake_disk) == before


def test_two_password_sources_are_a_usage_error(fake_disk, key_file, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text(SECRET_PASSWORD + "\n")
    pw.chmod(0o600)
    result = in_process(str(fake_disk), "--password-stdin", "--password-file", str(pw), "--ssh-key",
                        str(key_file), stdin=SECRET_PASSWORD.encode())
    assert result.returncode == 2
    assert "choose one password source" in result.stderr


def test_nothing_given_without_a_terminal_fails_at_once(fake_disk):
    before = sha256(fake_disk)
    result = in_process(str(fake_disk))
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
        (b"7 chars\n", "at least 8 characters"),  # the wizard's rule: one policy on every path
    ],
    ids=["nothing", "empty-line", "two-lines", "nul", "too-long", "too-short"],
)
def test_bad_passwords_on_stdin_are_refused_before_the_image_is_opened(fake_disk, key_file, stdin, reason):
    before = sha256(fake_disk)
    result = in_process(str(fake_disk), "--password-stdin", "--ssh-key", str(key_file), stdin=stdin)
    assert result.returncode == 2, result.stderr
    assert reason.lower() in result.stderr.lower()
    assert sha256(fake_disk) == before


def test_a_private_key_given_as_ssh_key_is_refused_and_never_echoed(fake_disk, tmp_path):
    private = tmp_path / "id_ed25519"
    pem = private_pem()
    private.write_text(pem)
    before = sha256(fake_disk)
    result = in_process(str(fake_disk), "--no-password", "--ssh-key", str(private))
    assert result.returncode == 2
    assert "private key" in result.stderr
    body = pem.splitlines()[1]
    assert body not in result.stderr and body not in result.stdout
    assert sha256(fake_disk) == before


def test_a_short_password_file_is_refused_as_the_wizard_refuses_it(fake_disk, key_file, tmp_path):
    pw = tmp_path / "pw"
    pw.write_text("short1\n")
    pw.chmod(0o600)
    before = sha256(fake_disk)
    result = in_process(str(fake_disk), "--password-file", str(pw), "--ssh-key", str(key_file))
    assert result.returncode == 2, result.stderr
    assert "at least 8 characters" in result.stderr and "short1" not in result.stderr
    assert sha256(fake_disk) == before


HASH_LINE = "$6$rounds=5000$saltsalt$" + "h" * 86
NETBIRD_KEY = "0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0"


@pytest.mark.parametrize(
    ("flag", "content", "mode", "readers"),
    [
        ("--password-file", SECRET_PASSWORD, 0o644, "every user"),
        ("--password-file", SECRET_PASSWORD, 0o640, "its group"),
        ("--password-file", SECRET_PASSWORD, 0o604, "every user"),
        ("--netbird-setup-key-file", NETBIRD_KEY, 0o644, "every user"),
        ("--netbird-setup-key-file", NETBIRD_KEY, 0o640, "its group"),
        ("--password-hash-file", HASH_LINE, 0o644, "every user"),
    ],
    ids=["password-644", "password-640", "password-604", "netbird-644", "netbird-640", "hash-644"],
)
def test_a_secret_file_others_can_read_is_refused_with_the_chmod_to_run(
    fake_disk, key_file, tmp_path, flag, content, mode, readers
):
    secret = tmp_path / "my secret"  # a space: the chmod line must be quoted to be pasted as it is
    secret.write_text(content + "\n")
    secret.chmod(mode)
    before = sha256(fake_disk)
    extra = ["--no-password"] if flag == "--netbird-setup-key-file" else []
    result = in_process(str(fake_disk), flag, str(secret), *extra, "--ssh-key", str(key_file))
    assert result.returncode == 2, result.stderr
    assert readers in result.stderr
    assert f"chmod go-rwx '{secret}'" in result.stderr
    assert content not in result.stderr and content not in result.stdout
    assert sha256(fake_disk) == before


def test_a_batch_manifest_with_secrets_others_can_read_is_refused_with_the_chmod_to_run(tmp_path, key_file):
    base = tmp_path / "base.raw"
    base.write_bytes(b"\0" * (1 << 20))
    for column, value in (("password_hash", HASH_LINE), ("netbird_setup_key", NETBIRD_KEY)):
        for mode in (0o644, 0o640):
            manifest = tmp_path / f"{column}.csv"
            manifest.write_text(f"name,ssh_keys,{column}\nalice,{key_file.name},{value}\n")
            manifest.chmod(mode)
            out = tmp_path / "out"
            result = in_process("batch", str(manifest), "--base", str(base), "--out-dir", str(out))
            assert result.returncode == 2, (column, mode, result.stderr)
            assert f"chmod go-rwx {manifest}" in result.stderr, (column, mode, result.stderr)
            assert value not in result.stderr
            assert not out.exists()


def test_bad_hash_file_is_refused_without_echoing_it(fake_disk, key_file, tmp_path):
    bad = tmp_path / "hash"
    bad.write_text("$6$rounds=10$salt$" + "b" * 86 + "\n")
    bad.chmod(0o600)
    result = in_process(str(fake_disk), "--password-hash-file", str(bad), "--ssh-key", str(key_file))
    assert result.returncode == 2
    assert "b" * 86 not in result.stderr


def test_bad_netbird_key_and_url_are_refused(fake_disk, key_file, tmp_path):
    nb = tmp_path / "nb"
    nb.write_text("not-a-uuid-but-a-secret\n")
    nb.chmod(0o600)
    result = in_process(str(fake_disk), "--no-password", "--ssh-key", str(key_file),
                        "--netbird-setup-key-file", str(nb))
    assert result.returncode == 2
    assert "not-a-uuid-but-a-secret" not in result.stderr
    result = in_process(str(fake_disk), "--no-password", "--ssh-key", str(key_file),
                        "--netbird-management-url", "http://insecure.example")
    assert result.returncode == 2
    assert "https" in result.stderr


def test_a_netbird_key_in_lower_case_is_accepted(tmp_path, key_file):
    nb = tmp_path / "nb"
    nb.write_text("a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d\n")
    nb.chmod(0o600)
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("hello\n" * 1000)
    result = zvm(str(not_an_image), "--no-password", "--ssh-key", str(key_file), "--netbird-setup-key-file", str(nb))
    assert result.returncode == 3, result.stderr  # past the input checks: only the image is refused
    assert "disk image" in result.stderr


def test_missing_key_file_and_missing_image_are_clear(fake_disk, tmp_path):
    result = in_process(str(fake_disk), "--no-password", "--ssh-key", str(tmp_path / "nope.pub"))
    assert result.returncode == 2 and "no such file" in result.stderr
    key = tmp_path / "k.pub"
    key.write_text(public_line())
    result = in_process(str(tmp_path / "missing.qcow2"), "--no-password", "--ssh-key", str(key))
    assert result.returncode == 2 and "no such file" in result.stderr


@pytest.mark.parametrize("args", [
    ["IMAGE"],  # a scripted run that gives nothing: used to say "no terminal to ask on, and nothing to seed"
    ["IMAGE", "--no-password", "--ssh-key", "MISSING.pub"],  # a missing key file as well
    ["IMAGE", "--password-stdin", "--ssh-key", "gh:someone"],  # no password on stdin, and a key to fetch
    ["inspect", "IMAGE"],
    ["batch", "MISSING.csv", "--out-dir", "out", "--base", "IMAGE"],  # the manifest is missing as well
])
def test_a_missing_image_is_the_first_thing_reported_about_the_inputs(tmp_path, args):
    """Only the command line's own mistakes (a bad --accel, clashing flags, an --output that exists) come
    before it: they are found without reading anything."""
    image = str(tmp_path / "missing.qcow2")
    args = [a.replace("IMAGE", image).replace("MISSING", str(tmp_path / "missing")) for a in args]
    # a proxy that answers nothing: a fetch tried before the image check would fail here, differently
    result = in_process(*args, env={"HTTPS_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[0] == f"zvm-provision: error: {image}: no such file", result.stderr


def test_a_text_file_is_not_an_image(tmp_path, key_file):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 1000)
    result = zvm(str(text), "--no-password", "--ssh-key", str(key_file))
    assert result.returncode == 3
    assert "disk image" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_read_only_image_is_unusable_exit_3_as_the_appliance_says_it(fake_disk, key_file):
    """The same exit code whichever path notices it: here the check before the launch (the appliance's own
    refusal, image.Appliance.launch, raises ImageUnusableError too)."""
    fake_disk.chmod(0o444)
    before = sha256(fake_disk)
    result = zvm(str(fake_disk), "--no-password", "--ssh-key", str(key_file), env={"LIBGUESTFS_HV": "/nonexistent"})
    assert result.returncode == 3, result.stderr
    assert "read-only" in result.stderr and "--dry-run" in result.stderr
    assert sha256(fake_disk) == before


def test_bad_accel_is_a_usage_error(fake_disk, key_file):
    result = in_process(str(fake_disk), "--no-password", "--ssh-key", str(key_file), "--accel", "warp")
    assert result.returncode == 2


# -- one error handler for every command ---------------------------------------------------------------


def no_guestfs(tmp_path: Path) -> dict[str, str]:
    """An environment in which `import guestfs` fails as it does where python3-guestfs is not installed."""
    shim = tmp_path / "no-guestfs"
    shim.mkdir()
    (shim / "guestfs.py").write_text('raise ModuleNotFoundError("No module named \'guestfs\'", name="guestfs")\n')
    return {"PYTHONPATH": os.pathsep.join([str(shim), str(Path(__file__).resolve().parent.parent)])}


@pytest.mark.parametrize("command", ["seed", "inspect"])
def test_a_missing_libguestfs_binding_is_a_plain_message(fake_disk, key_file, tmp_path, command):
    args = [str(fake_disk), "--no-password", "--ssh-key", str(key_file)] if command == "seed" else [str(fake_disk)]
    result = zvm(command, *args, env=no_guestfs(tmp_path))
    assert result.returncode == 1, result.stderr
    assert "libguestfs" in result.stderr and "python3-guestfs" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_a_host_os_error_is_a_plain_message_naming_the_path(tmp_path, key_file):
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    manifest = tmp_path / "staff.csv"
    manifest.write_text(f"name,ssh_keys\nalice,{key_file.name}\n")
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder\n")
    result = zvm("batch", str(manifest), "--base", str(base), "--out-dir", str(a_file / "images"))
    assert result.returncode == 1, result.stderr
    assert str(a_file) in result.stderr and "Not a directory" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


def test_output_to_a_full_disk_is_a_plain_message():
    with open("/dev/full", "wb") as full:
        result = zvm("--help", stdout=full)
    assert result.returncode == 1, result.stderr
    assert "No space left on device" in result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (PermissionError(13, "Permission denied", "/srv/images/out"), ["/srv/images/out: Permission denied"]),
        (OSError(28, "No space left on device", "/srv/images/x.qcow2"), ["No space left on device", "free"]),
        (FileNotFoundError(2, "No such file or directory", "/nope/x"), ["/nope/x: No such file or directory"]),
        (OSError(5, "Input/output error"), ["Input/output error"]),
    ],
    ids=["permission", "full", "missing", "no-path"],
)
def test_every_host_os_error_gives_its_path_and_reason_and_exit_1(capsys, error, words):
    from provision.cli import report_error

    assert report_error(error, debug=False) == 1
    err = capsys.readouterr().err
    for word in words:
        assert word in err
    assert "internal error" not in err and "Traceback" not in err


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path, key_file):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n" * 1000)
    for env, flag in (({}, ["--debug"]), ({"ZVM_PROVISION_DEBUG": "1"}, [])):
        result = zvm(str(text), "--no-password", "--ssh-key", str(key_file), *flag, env=env)
        assert result.returncode == 3, result.stderr
        assert "Traceback" in result.stderr and "ImageUnusableError" in result.stderr
        assert "zvm-provision: error:" in result.stderr and "disk image" in result.stderr


# -- shell completion -----------------------------------------------------------------------------------


def complete(cwd: Path, *words: str) -> list[str]:
    """What bash's completion function gets from the command for the last word of `words`."""
    env = {"_ZVM_PROVISION_COMPLETE": "complete_bash", "COMP_WORDS": " ".join(["zvm-provision", *words]),
           "COMP_CWORD": str(len(words))}
    result = zvm(cwd=cwd, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    return sorted(result.stdout.split())


@pytest.fixture
def files(tmp_path: Path) -> Path:
    for name in ("disk.qcow2", "disk.raw", "data.img", "dump.txt", "id_ed25519.pub", "id_ed25519", "staff.csv",
                 ".hidden.qcow2"):
        (tmp_path / name).write_text("x")
    (tmp_path / "vms").mkdir()
    (tmp_path / "vms" / "alice.qcow2").write_text("x")
    (tmp_path / "vms" / "notes.md").write_text("x")
    return tmp_path


def test_image_arguments_complete_disk_image_files(files):
    assert complete(files, "d") == ["data.img", "disk.qcow2", "disk.raw"]
    # the first word: a command, or an image for the short form; no hidden file, no other kind of file
    assert complete(files, "") == ["batch", "batch-report", "data.img", "disk.qcow2", "disk.raw", "inspect", "keys", "sample-disk",
                                    "seed"]
    assert complete(files, "vms/") == ["vms/alice.qcow2"]
    assert complete(files, "inspect", "di") == ["disk.qcow2", "disk.raw"]
    assert complete(files, "seed", "--dry-run", "da") == ["data.img"]
    assert complete(files, "batch", "staff.csv", "--base", "d") == ["data.img", "disk.qcow2", "disk.raw"]
    # nothing of ours matches: nothing is offered, so the shell falls back to its own file completion
    assert complete(files, "v") == []


def test_ssh_key_completes_public_key_files(files):
    assert complete(files, "disk.qcow2", "--ssh-key", "") == ["id_ed25519.pub"]
    assert complete(files, "seed", "disk.qcow2", "--ssh-key", "id") == ["id_ed25519.pub"]


def test_completion_scripts_are_shown_and_installed_as_typer_does(tmp_path, files):
    # typer reads the shell NAME given only with shell detection off; with it on, it asks shellingham which
    # shell is this process's ancestor, which depends on how the suite was started (it failed under a
    # harness with no shell above pytest: "Shell  not supported.")
    no_detection = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    shown = zvm("--show-completion", "bash", env=no_detection)
    assert shown.returncode == 0, shown.stderr
    assert "_ZVM_PROVISION_COMPLETE=complete_bash" in shown.stdout and "complete -o default" in shown.stdout
    # the script, sourced in a real bash, completes IMAGE
    script = tmp_path / "completion.bash"
    script.write_text(shown.stdout)
    probe = (f"source {script}; COMP_WORDS=(zvm-provision di); COMP_CWORD=1; "
             "_zvm_provision_completion zvm-provision; printf '%s\\n' \"${COMPREPLY[@]}\"")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    bash = subprocess.run(["bash", "--norc", "-c", probe], cwd=files, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert sorted(bash.stdout.split()) == ["disk.qcow2", "disk.raw"], bash.stderr
    home = tmp_path / "home"
    home.mkdir()
    installed = zvm("--install-completion", "bash", env={"HOME": str(home), **no_detection})
    assert installed.returncode == 0, installed.stderr
    assert (home / ".bash_completions" / "zvm-provision.sh").read_text().strip() == shown.stdout.strip()
    assert "zvm-provision.sh" in (home / ".bashrc").read_text()


def test_a_key_file_cryptography_cannot_load_is_a_usage_error_not_an_internal_error(fake_disk, tmp_path):
    """An ECDSA key with a compressed point: cryptography raises NotImplementedError for it (found by the
    property tests); the command must say what is wrong with the key and exit 2."""
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.support.keylines import compressed_point_line

    key = tmp_path / "compressed.pub"
    key.write_text(compressed_point_line(ec.generate_private_key(ec.SECP256R1())) + "\n")
    result = in_process(str(fake_disk), "--no-password", "--ssh-key", str(key), "--dry-run")
    assert result.returncode == 2, result.stderr
    assert "not a valid ecdsa-sha2-nistp256 key" in result.stderr and "internal error" not in result.stderr


@pytest.mark.parametrize(("args", "words"), [
    (("--replace-keys", "--remove-key", "bob@desk"), "--replace-keys already takes out every key"),
    (("--remove-key", "SHA256:tooshort"), "not a SHA256 fingerprint"),
    (("--remove-key", "MD5:ab:cd"), "not a SHA256 fingerprint"),
    (("--remove-key", " "), "--remove-key needs a key's SHA256 fingerprint"),
])
def test_remove_key_mistakes_are_refused_before_the_image_is_opened(fake_disk, key_file, args, words):
    before = sha256(fake_disk)  # a fake disk: the appliance would refuse it, so exit 2 proves it never ran
    result = in_process(str(fake_disk), "--no-password", "--ssh-key", str(key_file), *args)
    assert result.returncode == 2, result.stderr
    assert words in result.stderr
    assert sha256(fake_disk) == before


@pytest.mark.parametrize("flags, words", [
    (["--hostname", "Alice_PC"], ["--hostname 'Alice_PC' is refused", "1 to 63 characters", "lower-case letters"]),
    (["--hostname", ""], ["--hostname '' is refused"]),
    (["--operator", "it\ndesk"], ["--operator must be one line"]),
    (["--operator", "x" * 129], ["longer than 128 characters"]),
])
def test_a_bad_hostname_or_operator_is_refused_before_the_image_is_opened(fake_disk, key_file, flags, words):
    before = sha256(fake_disk)
    result = in_process(str(fake_disk), "--no-password", "--ssh-key", str(key_file), *flags)
    assert result.returncode == 2, result.stderr
    for word in words:
        assert word in result.stderr
    assert sha256(fake_disk) == before


def test_help_teaches_the_hostname_the_operator_and_the_record():
    seed = " ".join(zvm("seed", "--help").stdout.split())  # help wraps lines anywhere
    for word in ("--hostname", "1-63 lower-case letters", "zvm-alice", "--operator", "history.jsonl", "last 50"):
        assert word in seed, word
    batch = " ".join(zvm("batch", "--help").stdout.split())
    assert "optionally hostname" in batch and "zvm-<name>" in batch and "--operator" in batch
    assert "seeding record" in " ".join(zvm("inspect", "--help").stdout.split())
