"""`zvm-provision inspect` and `--check`.

The first half tests the pure report and check against an in-memory filesystem (no appliance). The second
half goes through the real libguestfs appliance, sharing launches: one launch seeds two copies of a blank
disk (one then damaged), one inspects the blank and the seeded copy together, and two run the command
itself in a subprocess.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from provision.core.apply import apply_plan, verify_plan
from provision.core.credentials import generate_host_key, parse_authorized_keys
from provision.guest.diskformat import ImageInfo
from provision.guest.appliance import Partition
from provision.commands.inspect import (
    SCHEMA_VERSION,
    build_report,
    check_image_contract,
    render_check,
    render_text,
    report_to_json,
    walk_persist,
)
from provision.core.layout import load_layout
from provision.core.plan import FreshMaterial, build_plan
from provision.core.request import PasswordChoice, SeedRequest
from provision.secret import Secret
from provision.core.state import read_state
from tests.support.crowd import CROWD_FILES, crowd_tarball
from tests.support.fakes import MemoryFS
from tests.support.keyfactory import public_line

LAYOUT = load_layout()
HASH = "$6$rounds=1000$saltsalt$" + "a" * 86
SETUP_KEY = "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"
INFO = ImageInfo(Path("disk.qcow2"), "qcow2", 1 << 30, 1 << 20, 3, None, False)
PARTITIONS = [Partition("/dev/sda3", "persist", "ext4", 1 << 29)]


class WalkableFS(MemoryFS):
    """MemoryFS plus the two reading calls the walk needs (listdir, readlink), with PersistFS's refusals."""

    def listdir(self, path: str) -> list[str]:
        node = self.nodes.get(path)
        if node is None or node.kind != "dir":
            from provision.errors import UnsafeEntryError

            raise UnsafeEntryError(f"{path} is not a directory")
        prefix = "/" if path == "/" else path + "/"
        return sorted(p[len(prefix):] for p in self.nodes if p.startswith(prefix) and p != path
                      and "/" not in p[len(prefix):])

    def readlink(self, path: str) -> str:
        return self.nodes[path].target


def seeded_fs(**overrides) -> tuple[WalkableFS, FreshMaterial]:
    fs = WalkableFS()
    fresh = FreshMaterial(host_key=generate_host_key(), machine_id="0123456789abcdef0123456789abcdef")
    values = dict(
        password=PasswordChoice.from_hash(Secret(HASH)),
        keys=tuple(parse_authorized_keys(public_line(comment="alice@laptop") + "\n", "test")),
        netbird_setup_key=Secret(SETUP_KEY),
        netbird_management_url="https://netbird.example.org",
    )
    values.update(overrides)
    plan = build_plan(SeedRequest(**values), read_state(fs, LAYOUT), LAYOUT, fresh)
    apply_plan(plan, fs)
    verify_plan(plan, fs)
    return fs, fresh


def report_of(fs: WalkableFS, **walk_limits):
    return build_report(INFO, PARTITIONS, read_state(fs, LAYOUT), walk_persist(fs, LAYOUT, **walk_limits), LAYOUT,
                        persist_device="/dev/sda3")


# ------------------------------------------------------------------------------------------------
# Pure: report and check


def test_a_seeded_image_meets_the_contract_and_shows_every_item():
    fs, fresh = seeded_fs()
    report = report_of(fs)
    assert check_image_contract(report) == []
    for item in report.paths:
        assert item.status == "ok", (item.entry.path, item.problems)
    assert (report.password.state, report.password.algorithm, report.password.rounds) == ("set", "sha512-crypt", 1000)
    assert [k.comment for k in report.authorized_keys] == ["alice@laptop"]
    assert report.host_key.state == "present"
    assert report.host_key.fingerprint == fresh.host_key.fingerprint
    assert report.host_key.known_hosts.startswith("zvm ssh-ed25519 AAAA")
    assert report.machine_id.value == "0123456789abcdef0123456789abcdef"
    assert report.netbird.setup_key == "present"
    assert report.netbird.management_url == "https://netbird.example.org"
    assert report.unexpected == ()


def test_a_blank_image_lists_the_required_items_as_missing_and_optional_ones_as_absent():
    report = report_of(WalkableFS())
    problems = check_image_contract(report)
    for path in ("/passwords/zvm", "/home/zvm/.ssh/authorized_keys", "/etc/machine-id", "/passwords"):
        assert f"{path}: missing" in problems
    assert report.path("/var/log").status == "absent"
    assert report.path("/etc/ssh/ssh_host_ed25519_key").status == "absent"
    assert not any(p.startswith(("/var/log", "/etc/ssh/", "/var/lib/netbird")) for p in problems)
    assert report.password.state == "missing" and report.host_key.state == "missing"
    assert report.machine_id.state == "missing" and report.netbird.setup_key == "missing"


def test_world_writable_authorized_keys_is_drift():
    fs, _ = seeded_fs()
    fs.nodes["/home/zvm/.ssh/authorized_keys"].mode = 0o666
    problems = check_image_contract(report_of(fs))
    assert problems == ["/home/zvm/.ssh/authorized_keys: mode 0666 (world-writable), expected 0600"]


def test_wrong_owner_and_a_group_writable_directory_are_drift():
    fs, _ = seeded_fs()
    fs.nodes["/home/zvm/.ssh"].uid = 0
    fs.nodes["/home"].mode = 0o775
    problems = check_image_contract(report_of(fs))
    assert "/home/zvm/.ssh: owner 0:100, expected 1000:100" in problems
    assert "/home: mode 0775 (group-writable), expected 0755" in problems


def test_a_symlink_at_a_contract_path_is_drift_named_once_with_its_target():
    fs, _ = seeded_fs()
    fs.add_symlink("/passwords/zvm", "/etc/shadow")
    report = report_of(fs)
    problems = check_image_contract(report)
    assert problems == ["/passwords/zvm: is a symlink, not a file"]
    assert report.password.state == "unreadable"  # something is there, but not a file to read
    [entry] = report.unexpected
    assert (entry.path, entry.kind, entry.target) == ("/passwords/zvm", "symlink", "/etc/shadow")


def test_a_symlinked_directory_makes_what_is_below_it_unreachable():
    fs, _ = seeded_fs()
    for path in ("/home/zvm/.ssh/authorized_keys", "/home/zvm/.ssh"):
        del fs.nodes[path]
    fs.add_symlink("/home/zvm/.ssh", "/tmp")
    problems = check_image_contract(report_of(fs))
    assert "/home/zvm/.ssh: is a symlink, not a dir" in problems
    assert "/home/zvm/.ssh/authorized_keys: not reachable: /home/zvm/.ssh is not a real directory" in problems


def test_symlinks_and_special_files_anywhere_are_drift_but_plain_extra_files_are_not():
    fs, _ = seeded_fs()
    fs.add_symlink("/etc/ssh/sshd_config", "/run/evil")
    fs.nodes["/home/zvm/.ssh/pipe"] = type(fs.nodes["/"])("fifo", 1000, 100, 0o600)
    fs.add_file("/etc/motd", b"hello\n", mode=0o644)
    fs.add_file("/home/zvm/.ssh/known_hosts", b"", 1000, 100, 0o600)
    report = report_of(fs)
    problems = check_image_contract(report)
    assert problems == [
        "/etc/ssh/sshd_config: symlink (not named by the contract) -> /run/evil",
        "/home/zvm/.ssh/pipe: fifo (not named by the contract)",
    ]
    reasons = {u.path: u.reason for u in report.unexpected}
    assert reasons["/etc/motd"] == "not named by the contract"
    assert report.other_entries == 1 and report.other_examples == ("/home/zvm/.ssh/known_hosts",)


def test_a_symlink_past_the_display_limit_is_still_drift():
    """The verdict looks at every entry the walk saw; only the listing on screen is cut."""
    from provision.commands.inspect import MAX_LISTED

    fs, _ = seeded_fs()
    fs.add_dir("/etc/aaa")
    for number in range(MAX_LISTED + 50):
        fs.add_file(f"/etc/aaa/f{number:04d}", b"", mode=0o644)  # listed, not drift
    fs.add_dir("/etc/zzz")
    fs.add_symlink("/etc/zzz/link", "/etc/shadow")  # walked after every file above
    report = report_of(fs)
    order = [u.path for u in report.unexpected]
    assert order.index("/etc/zzz/link") >= MAX_LISTED  # the case the issue describes
    assert check_image_contract(report) == ["/etc/zzz/link: symlink (not named by the contract) -> /etc/shadow"]
    text = render_text(report)
    assert "/etc/aaa/f0000" in text and f"/etc/aaa/f{MAX_LISTED + 49:04d}" not in text  # the table is cut...
    assert f"and {len(order) - MAX_LISTED} more" in text  # ...and says so
    assert "/etc/zzz/link: symlink" in text  # the verdict names it
    data = report_to_json(report)
    assert data["contract_ok"] is False and len(data["unexpected"]) == len(order)


def test_the_verdict_reads_each_entry_s_severity_not_its_wording():
    """A hard-linked file is drift because of what it is, not because its reason says "hard links"."""
    from provision.commands.inspect import UNSAFE, UnexpectedEntry

    fs, _ = seeded_fs()
    fs.add_file("/etc/twin", b"x", mode=0o644, nlink=2)
    fs.add_file("/etc/motd", b"hello\n", mode=0o644)
    report = report_of(fs)
    severity = {u.path: u.severity for u in report.unexpected}
    assert severity["/etc/twin"] == UNSAFE and severity["/etc/motd"] != UNSAFE
    assert check_image_contract(report) == ["/etc/twin: file with 2 hard links"]
    reworded = [UnexpectedEntry(u.path, u.kind, u.owner, u.mode, "reworded", u.target, u.severity)
                for u in report.unexpected]
    assert check_image_contract(replace(report, unexpected=tuple(reworded))) == ["/etc/twin: reworded"]


def test_a_hard_linked_contract_file_is_drift():
    fs, _ = seeded_fs()
    fs.nodes["/passwords/zvm"].nlink = 2
    problems = check_image_contract(report_of(fs))
    assert problems == ["/passwords/zvm: has 2 hard links (another name shares its content)"]


def test_bad_contents_are_drift_locked_password_is_not():
    fs, _ = seeded_fs(password=PasswordChoice.locked())
    assert check_image_contract(report_of(fs)) == []
    assert report_of(fs).password.state == "locked"
    fs.nodes["/passwords/zvm"].data = b"hunter2\n"
    fs.nodes["/etc/machine-id"].data = b"not-an-id\n"
    fs.nodes["/home/zvm/.ssh/authorized_keys"].data = b"ssh-ed25519 garbage\n"
    problems = check_image_contract(report_of(fs))
    assert "/passwords/zvm: neither a sha-512 ($6$) or yescrypt ($y$) hash nor a locked marker" in problems
    assert "/etc/machine-id: not 32 lowercase hexadecimal digits and a newline" in problems
    assert "/home/zvm/.ssh/authorized_keys: holds no SSH public key" in problems
    assert any(p.startswith("/home/zvm/.ssh/authorized_keys: line 1:") for p in problems)
    assert "hunter2" not in json.dumps(report_to_json(report_of(fs))) + render_text(report_of(fs))


def test_half_a_host_key_pair_is_drift():
    fs, _ = seeded_fs()
    del fs.nodes["/etc/ssh/ssh_host_ed25519_key.pub"]
    report = report_of(fs)
    assert report.host_key.state == "incomplete"
    assert check_image_contract(report) == [
        "/etc/ssh/ssh_host_ed25519_key.pub: missing, while /etc/ssh/ssh_host_ed25519_key is there "
        "(half a host key pair)"
    ]


def test_the_walk_is_capped_and_says_so_and_skips_system_owned_directories():
    fs, _ = seeded_fs()
    fs.add_file("/var/log/journal.log", b"x", mode=0o644)
    report = report_of(fs)
    assert "/var/log" in report.not_examined and "/var/lib/nixos" in report.not_examined
    assert report.walk_capped is None and report.other_entries == 0
    capped = report_of(fs, max_entries=5)
    assert capped.walk_capped == "stopped after 5 entries"
    assert "/: the walk over persist stopped after 5 entries; the rest was not examined" in check_image_contract(capped)
    deep = report_of(fs, max_depth=2)
    assert deep.walk_capped.startswith("did not descend below depth 2")


def test_untrusted_names_are_escaped_and_a_url_password_is_dropped():
    fs, _ = seeded_fs(netbird_management_url="https://admin:hunter2@netbird.example.org")
    fs.add_file("/etc/\x1b[31mred", b"", mode=0o644)
    report = report_of(fs)
    assert report.netbird.management_url == "https://***@netbird.example.org"
    assert any(u.path == "/etc/\\x1b[31mred" for u in report.unexpected)
    text = render_text(report)
    assert "\x1b" not in text and "hunter2" not in text


def test_json_schema_and_no_secret_in_any_output():
    fs, fresh = seeded_fs()
    report = report_of(fs)
    data = report_to_json(report)
    assert data["schema_version"] == SCHEMA_VERSION == 1
    assert set(data) == {
        "schema_version", "image", "partitions", "contract_ok", "problems", "paths", "password",
        "authorized_keys", "host_key", "machine_id", "netbird", "unexpected", "other_entries", "walk",
    }
    assert data["contract_ok"] is True and data["problems"] == []
    assert data["partitions"] == [
        {"device": "/dev/sda3", "label": "persist", "fs_type": "ext4", "size": 1 << 29, "persist": True}
    ]
    keys_path = next(p for p in data["paths"] if p["path"] == "/home/zvm/.ssh/authorized_keys")
    assert keys_path == {
        "path": "/home/zvm/.ssh/authorized_keys", "role": "authorized-keys", "required": True,
        "expected": {"kind": "file", "owner": "1000:100", "mode": "0600"}, "present": True,
        "actual": {"kind": "file", "owner": "1000:100", "mode": "0600", "nlink": 1}, "status": "ok", "problems": [],
    }
    assert data["password"] == {"state": "set", "algorithm": "sha512-crypt", "rounds": 1000}
    assert data["netbird"] == {"setup_key": "present", "management_url": "https://netbird.example.org"}
    [key] = data["authorized_keys"]["keys"]
    assert set(key) == {"type", "label", "bits", "fingerprint", "comment", "options"}
    assert key["fingerprint"].startswith("SHA256:") and key["bits"] == 256

    outputs = json.dumps(data) + render_text(report) + render_check(check_image_contract(report))
    private = fresh.host_key.private_openssh.reveal()
    for secret in (HASH, "saltsalt", SETUP_KEY, SETUP_KEY[:8], private, private.splitlines()[1]):
        assert secret not in outputs


def test_human_report_shows_the_items_of_the_issue():
    fs, fresh = seeded_fs()
    text = render_text(report_of(fs))
    for expected in ("/home/zvm/.ssh/authorized_keys", "ok", "1000:100", "0600", "set, sha512-crypt, 1000 rounds",
                     "alice@laptop", "ED25519", fresh.host_key.fingerprint, "0123456789abcdef0123456789abcdef",
                     "zvm ssh-ed25519 AAAA", "https://netbird.example.org", "meets the persist contract"):
        assert expected in text, expected
    assert render_check([]) == "OK: the image meets the persist contract"


# ------------------------------------------------------------------------------------------------
# The command line without the appliance: usage errors


def test_usage_errors_exit_2_before_the_image_is_opened(tmp_path, capsys):
    from provision.cli import main  # the command's entry point: its one error handler gives the exit code

    def exit_code(*args: str) -> int:
        with pytest.raises(SystemExit) as stopped:
            main(list(args))
        return stopped.value.code

    assert exit_code("inspect") == 2
    assert exit_code("inspect", "--accel", "bogus", str(tmp_path / "x.qcow2")) == 2
    assert exit_code("inspect", str(tmp_path / "absent.qcow2")) == 2
    assert exit_code("inspect", "--help") == 0


# ------------------------------------------------------------------------------------------------
# Through the real appliance (launches: sample disk 1, seeding 1, subprocess 2, shared inspection 1)

SECRET_PASSWORD = "correct horse battery staple 7Q!"
ACCEL = os.environ.get("ZVM_PROVISION_ACCEL", "tcg")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ZVM_PROVISION_ACCEL": ACCEL, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run([sys.executable, "-m", "provision", *args], capture_output=True, text=True, env=env,
                          timeout=600, check=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A blank sample disk and two copies of it, both seeded (each with its own identity); the second then
    damaged: authorized_keys made world-writable, the password file removed, a symlink planted."""
    from provision.core.credentials import hash_password
    from provision.guest.diskformat import probe_image
    from provision.guest.appliance import Appliance
    from provision.guest.sampledisk import create_sample_disk
    from provision.commands.seed import fresh_material

    folder = tmp_path_factory.mktemp("inspect")
    blank, seeded, damaged = folder / "blank.qcow2", folder / "seeded.qcow2", folder / "damaged.qcow2"
    crowded = folder / "crowded.qcow2"
    create_sample_disk(blank, "128M", accel=ACCEL)
    for copy in (seeded, damaged, crowded):
        shutil.copyfile(blank, copy)
    crowd = crowd_tarball(folder / "crowd.tar")

    password_hash = hash_password(SECRET_PASSWORD, rounds=5000)
    keys = tuple(parse_authorized_keys(public_line(comment="alice@laptop") + "\n", "test"))
    secrets = [SECRET_PASSWORD, password_hash.reveal(), SETUP_KEY]
    disks = [probe_image(seeded), probe_image(damaged), probe_image(crowded)]
    with Appliance(disks, readonly=False, accel=ACCEL) as appliance:
        appliance.launch()
        for index in (0, 1, 2):
            fresh = fresh_material()
            private = fresh.host_key.private_openssh.reveal()
            secrets += [private, *private.splitlines()[1:-1]]
            request = SeedRequest(
                password=PasswordChoice.from_hash(password_hash), keys=keys, netbird_setup_key=Secret(SETUP_KEY),
                netbird_management_url="https://netbird.example.org",
            )
            with appliance.mount_persist(index) as fs:
                plan = build_plan(request, read_state(fs, LAYOUT), LAYOUT, fresh)
                apply_plan(plan, fs)
                verify_plan(plan, fs)
                if index == 1:
                    fs.set_owner_mode("/home/zvm/.ssh/authorized_keys", 1000, 100, 0o666)
                    fs.remove("/passwords/zvm")
                    appliance.handle.ln_s("/etc/shadow", "/home/zvm/.ssh/rc")  # PersistFS makes no links
                if index == 2:
                    appliance.handle.tar_in(str(crowd), "/etc")  # one round trip for the whole crowd
        appliance.close()
    return {"blank": blank, "seeded": seeded, "damaged": damaged, "crowded": crowded, "secrets": secrets}


def assert_no_secret(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text
    assert SETUP_KEY[:8] not in text


@pytest.mark.appliance
def test_cli_json_of_a_seeded_image_changes_not_one_byte_and_shows_no_secret(images):
    image = images["seeded"]
    before = sha256(image)
    result = run_cli("inspect", "--json", str(image))
    assert result.returncode == 0, result.stderr
    assert sha256(image) == before
    assert_no_secret(result.stdout + result.stderr, images["secrets"])
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1 and data["contract_ok"] is True, data["problems"]
    assert data["image"]["format"] == "qcow2"
    assert [p["label"] for p in data["partitions"] if p["persist"]] == ["persist"]
    assert all(p["status"] == "ok" for p in data["paths"]), data["paths"]
    assert data["password"] == {"state": "set", "algorithm": "sha512-crypt", "rounds": 5000}
    assert [k["comment"] for k in data["authorized_keys"]["keys"]] == ["alice@laptop"]
    assert data["host_key"]["state"] == "present" and data["host_key"]["known_hosts"].startswith("zvm ssh-ed25519 ")
    assert data["machine_id"]["state"] == "valid"
    assert data["netbird"] == {"setup_key": "present", "management_url": "https://netbird.example.org"}
    assert data["unexpected"] == [] and "/var/log" in data["walk"]["not_examined"]


@pytest.mark.appliance
@pytest.mark.parametrize("name, expected", [
    ("damaged", [
        "DRIFT: 3 problems",
        "  /passwords/zvm: missing",
        "  /home/zvm/.ssh/authorized_keys: mode 0666 (world-writable), expected 0600",
        "  /home/zvm/.ssh/rc: symlink (not named by the contract) -> /etc/shadow",
    ]),
    # the symlink comes after more unexpected entries than the screen lists: it is judged all the same
    ("crowded", [
        "DRIFT: 1 problem",
        "  /etc/zzz/link: symlink (not named by the contract) -> /etc/shadow",
    ]),
])
def test_cli_check_names_each_drift_and_exits_1(images, name, expected):
    image = images[name]
    before = sha256(image)
    result = run_cli("inspect", "--check", str(image))
    assert sha256(image) == before
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == expected
    assert_no_secret(result.stdout + result.stderr, images["secrets"])


@pytest.mark.appliance
def test_inspect_blank_and_seeded_copies_in_one_read_only_launch(images):
    from provision.guest.diskformat import probe_image
    from provision.guest.appliance import Appliance
    from provision.commands.inspect import inspect_disk

    names = ("blank", "seeded", "damaged", "crowded")
    hashes = {name: sha256(images[name]) for name in names}
    infos = [probe_image(images[name]) for name in names]
    with Appliance(infos, readonly=True, accel=ACCEL) as appliance:
        appliance.launch()
        reports = dict(zip(names, (inspect_disk(appliance, i, info) for i, info in enumerate(infos)), strict=True))
        appliance.close()
    assert {name: sha256(images[name]) for name in names} == hashes

    blank = reports["blank"]
    problems = check_image_contract(blank)
    assert {"/passwords/zvm: missing", "/home/zvm/.ssh/authorized_keys: missing", "/etc/machine-id: missing"} <= set(
        problems)
    text = render_text(blank)
    assert "missing" in text and "Drift from the contract" in text
    data = report_to_json(blank)
    assert data["contract_ok"] is False and data["password"]["state"] == "missing"
    assert data["host_key"]["state"] == "missing" and data["netbird"]["setup_key"] == "missing"
    assert data["unexpected"] == []  # lost+found is ext4's own

    seeded_text = render_text(reports["seeded"])
    assert "meets the persist contract" in seeded_text and "set, sha512-crypt, 5000 rounds" in seeded_text
    assert_no_secret(seeded_text + json.dumps(report_to_json(reports["seeded"])), images["secrets"])

    # Identity of copies: two copies of one base, each seeded, differ in machine-id and host key.
    seeded, damaged = reports["seeded"], reports["damaged"]
    assert seeded.machine_id.value and damaged.machine_id.value
    assert seeded.machine_id.value != damaged.machine_id.value
    assert seeded.host_key.fingerprint != damaged.host_key.fingerprint

    # The crowded copy: its symlink comes after more unexpected entries than the screen lists.
    from provision.commands.inspect import MAX_LISTED

    crowded = reports["crowded"]
    order = [u.path for u in crowded.unexpected]
    assert len(order) == CROWD_FILES + 3 and order.index("/etc/zzz/link") >= MAX_LISTED
    assert check_image_contract(crowded) == ["/etc/zzz/link: symlink (not named by the contract) -> /etc/shadow"]
