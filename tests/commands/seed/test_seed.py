"""Seeding real sample disks through the real appliance, then reading them back with a fresh read-only handle.

Launches are shared: one module fixture seeds two disks (a first seeding and a re-seeding), and one read-only
appliance reads both back.
"""

from __future__ import annotations

import json

import pytest

from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.core.layout import load_layout
from tests.support import libxcrypt  # Python's crypt module is gone in 3.13
from tests.support.command import zvm
from tests.support.files import copy_disk, sha256
from tests.support.keyfactory import public_line
from tests.support.persist import ASKED_FOR_ROLES, read_back

pytestmark = pytest.mark.appliance

LAYOUT = load_layout()
PASSWORD = "Tr0ub4dor&3 zvm-test-password"
NETBIRD_KEY = "A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, sample_disk_template):
    work = tmp_path_factory.mktemp("seeded")
    first, reseeded = work / "first.qcow2", work / "reseeded.qcow2"
    for disk in (first, reseeded):
        copy_disk(sample_disk_template, disk)
    ed25519_with_options = 'restrict,from="10.0.0.0/8,192.168.1.0/24" ' + public_line(comment="alice@laptop")
    rsa = public_line("rsa", comment="alice@desktop", bits=3072)
    keys_file = work / "authorized_keys"
    keys_file.write_text(f"# alice's keys\n{ed25519_with_options}\n\n{rsa}\n")
    netbird_file = work / "netbird.key"
    netbird_file.write_text(f"  {NETBIRD_KEY.lower()}\n")  # as some tools print it; stored upper case
    netbird_file.chmod(0o600)

    seed_args = ["--password-stdin", "--ssh-key", str(keys_file), "--netbird-setup-key-file", str(netbird_file),
                 "--netbird-management-url", "https://netbird.example.org", "--hostname", "zvm-alice",
                 "--operator", "it@desk", "--json"]
    runs = {
        "first": zvm(str(first), *seed_args, stdin=PASSWORD.encode() + b"\n"),
        "reseed-1": zvm(str(reseeded), *seed_args, stdin=PASSWORD.encode() + b"\n"),
    }
    before_second = {"machine_id": json.loads(runs["reseed-1"].stdout)["machine_id"]}
    extra_key = work / "bob.pub"
    bob = public_line("ecdsa", comment="bob@phone")
    extra_key.write_text(bob + "\n")
    runs["reseed-2"] = zvm(str(reseeded), "--ssh-key", str(extra_key), "--new-machine-id", "--json")
    # A copy of a seeded image, as README advises: its own identity, the password and keys kept.
    copy = work / "copy.qcow2"
    copy_disk(first, copy)
    runs["copy"] = zvm(str(copy), "--new-machine-id", "--new-host-keys", "--json")
    back = read_back([first, reseeded, copy])
    return {
        "runs": runs, "first": back[0], "reseeded": back[1], "copy": back[2], "keys": [ed25519_with_options, rsa],
        "bob": bob,
        "before_second": before_second,
    }


def test_runs_succeed_without_leaking_secrets(seeded):
    for name, result in seeded["runs"].items():
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert "Starting the libguestfs appliance" not in result.stderr  # no live status off a terminal
        for secret in (PASSWORD, NETBIRD_KEY, NETBIRD_KEY.lower(), "PRIVATE KEY", "$6$"):
            assert secret not in result.stdout and secret not in result.stderr, (name, secret)


def test_every_contract_path_has_its_owner_and_mode(seeded):
    for disk in ("first", "reseeded"):
        stats = seeded[disk]["stats"]
        for entry in LAYOUT.entries:
            stat = stats[entry.path]
            if entry.role in ASKED_FOR_ROLES:  # not asked for here (tests/commands/seed/test_certificates.py)
                assert stat is None, (disk, entry.path)
                continue
            assert stat is not None, (disk, entry.path)
            assert (stat.kind, stat.uid, stat.gid, stat.mode) == (entry.kind, entry.uid, entry.gid, entry.mode), (
                disk, entry.path, stat,
            )


def test_a_copy_gets_its_own_host_key_and_machine_id_and_keeps_the_rest(seeded):
    first, copy = seeded["first"]["files"], seeded["copy"]["files"]
    assert seeded["runs"]["copy"].returncode == 0, seeded["runs"]["copy"].stderr
    for path in ("/etc/machine-id", "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_ed25519_key.pub"):
        assert copy[path] and copy[path] != first[path], path
    for path in ("/passwords/zvm", "/home/zvm/.ssh/authorized_keys", "/var/lib/netbird/setup-key"):
        assert copy[path] == first[path], path


def test_password_hash_verifies_with_libxcrypt(seeded):
    content = seeded["first"]["files"]["/passwords/zvm"].decode()
    assert content.endswith("\n") and content.count("\n") == 1
    hashed = content.strip()
    assert hashed.startswith("$6$rounds=656000$")
    assert libxcrypt.crypt(PASSWORD, hashed) == hashed
    assert libxcrypt.crypt(PASSWORD + "x", hashed) != hashed


def test_keys_are_written_verbatim(seeded):
    assert seeded["first"]["files"]["/home/zvm/.ssh/authorized_keys"].decode() == "".join(
        line + "\n" for line in seeded["keys"]
    )


def test_reseeding_adds_keys_keeps_the_host_key_and_renews_the_machine_id(seeded):
    files = seeded["reseeded"]["files"]
    lines = files["/home/zvm/.ssh/authorized_keys"].decode().splitlines()
    assert lines == [*seeded["keys"], seeded["bob"]]
    first_run = json.loads(seeded["runs"]["reseed-1"].stdout)
    second_run = json.loads(seeded["runs"]["reseed-2"].stdout)
    assert second_run["host_key"] == first_run["host_key"]
    assert files["/etc/ssh/ssh_host_ed25519_key.pub"].decode().split()[:2] == first_run["host_key"]["known_hosts"].split()[1:3]
    new_id = files["/etc/machine-id"].decode().strip()
    assert new_id == second_run["machine_id"] != seeded["before_second"]["machine_id"]
    # The password from the first run is kept: no password source was given the second time.
    assert libxcrypt.crypt(PASSWORD, files["/passwords/zvm"].decode().strip()) == files["/passwords/zvm"].decode().strip()


def test_summary_reports_fingerprints_and_a_known_hosts_line(seeded):
    report = json.loads(seeded["runs"]["first"].stdout)
    expected = [k.fingerprint for k in parse_authorized_keys("\n".join(seeded["keys"]), "test")]
    assert [k["fingerprint"] for k in report["authorized_keys"]] == expected
    host_pub = seeded["first"]["files"]["/etc/ssh/ssh_host_ed25519_key.pub"].decode().strip()
    # named by the hostname given (--hostname zvm-alice), as the text summary names it
    assert report["host_key"]["known_hosts"] == "zvm-alice " + " ".join(host_pub.split()[:2])
    private = seeded["first"]["files"]["/etc/ssh/ssh_host_ed25519_key"].decode()
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")


def test_netbird_files(seeded):
    files = seeded["first"]["files"]
    assert files["/var/lib/netbird/setup-key"] == (NETBIRD_KEY + "\n").encode()
    assert files["/var/lib/netbird/management-url"] == b"https://netbird.example.org\n"


def test_dry_run_and_refused_runs_leave_the_image_byte_identical(sample_disk, tmp_path):
    key = tmp_path / "k.pub"
    key.write_text(public_line() + "\n")
    before = sha256(sample_disk)
    dry = zvm(str(sample_disk), "--no-password", "--ssh-key", str(key), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "create" in dry.stdout and "/home/zvm/.ssh/authorized_keys" in dry.stdout
    assert sha256(sample_disk) == before
    # A first seeding with no password source is refused once the image shows it has none.
    refused = zvm(str(sample_disk), "--ssh-key", str(key))
    assert refused.returncode == 2
    assert "--password-stdin" in refused.stderr
    assert sha256(sample_disk) == before


def test_the_hostname_is_written_as_the_vm_reads_it_and_kept_by_a_reseeding_without_the_flag(seeded):
    assert seeded["first"]["files"]["/etc/hostname"] == b"zvm-alice\n"
    assert seeded["reseeded"]["files"]["/etc/hostname"] == b"zvm-alice\n"  # reseed-2 gave no --hostname
    assert json.loads(seeded["runs"]["first"].stdout)["hostname"] == "zvm-alice"
    assert json.loads(seeded["runs"]["reseed-2"].stdout)["hostname"] == "zvm-alice"


def test_each_seeding_appends_a_record_entry_and_the_record_holds_no_secret(seeded):
    record = seeded["reseeded"]["files"]["/zvm-provision/history.jsonl"]
    first, second = (json.loads(line) for line in record.decode().splitlines())
    assert (first["operator"], first["password"], first["netbird_setup_key"]) == ("it@desk", "set", True)
    assert (second["password"], second["netbird_setup_key"], second["hostname"]) == ("kept", False, "zvm-alice")
    assert second["operator"] and second["operator"] != "it@desk"  # user@host of this machine
    runs = [json.loads(seeded["runs"][name].stdout) for name in ("reseed-1", "reseed-2")]
    assert [first, second] == [run["record"]["entry"] for run in runs]
    assert second["machine_id"] == runs[1]["machine_id"] != first["machine_id"]
    assert second["host_key"] == first["host_key"] == runs[0]["host_key"]["fingerprint"]
    assert second["authorized_key_count"] == 3 and len(second["authorized_keys"]) == 3
    for disk in ("first", "reseeded"):
        files = seeded[disk]["files"]
        written = files["/zvm-provision/history.jsonl"]
        private = files["/etc/ssh/ssh_host_ed25519_key"].decode()
        hashed = files["/passwords/zvm"].decode().strip()
        for secret in (PASSWORD, hashed, hashed.split("$")[-1], NETBIRD_KEY, NETBIRD_KEY.lower(), private,
                       *private.splitlines()[1:-1], "PRIVATE KEY"):
            assert secret.encode() not in written, (disk, secret[:12])
