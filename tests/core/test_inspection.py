"""The inspect report and the contract check, pure: against an in-memory filesystem that follows PersistFS's
rules (tests/support/fakes.py), no appliance. The report's two renderings (JSON, rich text) are checked here
too, on the same reports; tests/commands/test_inspect.py goes through the real appliance.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from dataclasses import replace
from pathlib import Path

import pytest

from provision.core.apply import apply_plan, verify_plan
from provision.core.credentials.hostkeys import generate_host_key
from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.core.disk import ImageInfo, Partition
from provision.core.contractcheck import check_image_contract
from provision.core.inspection import build_report
from provision.core.layout import load_layout
from provision.core.plan import FreshMaterial, build_plan
from provision.core.request import PasswordChoice, SeedRequest
from provision.core.state import read_state
from provision.core.walk import walk_persist
from provision.secret import Secret
from provision.ui.render_inspect import SCHEMA_VERSION, render_check, report_to_json
from tests.support.fakes import MemoryFS
from tests.support.keyfactory import public_line
from tests.support.rendering import render_text

LAYOUT = load_layout()
HASH = "$6$rounds=1000$saltsalt$" + "a" * 86
SETUP_KEY = "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"
INFO = ImageInfo(Path("disk.qcow2"), "qcow2", 1 << 30, 1 << 20, 3, None, False)
PARTITIONS = [Partition("/dev/sda3", "persist", "ext4", 1 << 29)]


WalkableFS = MemoryFS  # it lists directories and reads links as PersistFS does


def seeded_fs(**overrides) -> tuple[WalkableFS, FreshMaterial]:
    fs = WalkableFS()
    fresh = FreshMaterial(host_key=generate_host_key(), machine_id="0123456789abcdef0123456789abcdef",
                          now=datetime(2026, 11, 29, 14, 2, 11, tzinfo=UTC), tool_version="0.1.0")
    values = dict(
        password=PasswordChoice.from_hash(Secret(HASH)),
        keys=tuple(parse_authorized_keys(public_line(comment="alice@laptop") + "\n", "test")),
        netbird_setup_key=Secret(SETUP_KEY),
        netbird_management_url="https://netbird.example.org",
        hostname="zvm-alice",
        update_signers=tuple(parse_authorized_keys(public_line(comment="release@example.org") + "\n", "test")),
        operator="it@desk",
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
        if item.entry.role in ("host-certificate", "trusted-user-ca-keys", "authorized-principals"):
            assert item.status == "absent", "certificate files are written only when asked for"
            continue
        assert item.status == "ok", (item.entry.path, item.problems)
    assert (report.password.state, report.password.algorithm, report.password.rounds) == ("set", "sha512-crypt", 1000)
    assert [k.comment for k in report.authorized_keys] == ["alice@laptop"]
    assert report.host_key.state == "present"
    assert report.host_key.fingerprint == fresh.host_key.fingerprint
    assert report.host_key.known_hosts.startswith("zvm-alice ssh-ed25519 AAAA")  # the image's own hostname
    assert report.machine_id.value == "0123456789abcdef0123456789abcdef"
    assert report.netbird.setup_key == "present"
    assert report.netbird.management_url == "https://netbird.example.org"
    assert report.updates.state == "verified" and [p for p, _ in report.updates.signers] == ["release@example.org"]
    assert report.unexpected == ()
    text = render_text(report)
    assert any("release signer" in line and f"{report.updates.signers[0][1]} release@example.org" in line
               for line in text.splitlines())
    assert "only releases signed by 1 release signer(s)" in text and "not verified" not in text


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
    assert report.updates.state == "not-verified" and "updates are not verified" in report.updates.words


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
    from provision.core.inspection import MAX_LISTED

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
    from provision.core.inspection import Severity, UnexpectedEntry

    fs, _ = seeded_fs()
    fs.add_file("/etc/twin", b"x", mode=0o644, nlink=2)
    fs.add_file("/etc/motd", b"hello\n", mode=0o644)
    report = report_of(fs)
    severity = {u.path: u.severity for u in report.unexpected}
    assert severity["/etc/twin"] == Severity.UNSAFE and severity["/etc/motd"] != Severity.UNSAFE
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
    assert ("/home/zvm/.ssh/authorized_keys: no SSH key and the password file holds no hash NixOS would accept: "
            "nobody could log in (no way in)") in problems
    assert any(p.startswith("/home/zvm/.ssh/authorized_keys: line 1:") for p in problems)
    assert "hunter2" not in json.dumps(report_to_json(report_of(fs))) + render_text(report_of(fs))


def test_no_key_is_fine_with_a_set_password_and_no_way_in_without_one():
    fs, _ = seeded_fs()
    fs.nodes["/home/zvm/.ssh/authorized_keys"].data = b"# nobody by key\n"
    assert check_image_contract(report_of(fs)) == []  # password only: the console lets zvm in
    fs.nodes["/passwords/zvm"].data = b"!\n"
    assert check_image_contract(report_of(fs)) == [
        "/home/zvm/.ssh/authorized_keys: no SSH key and the password is locked: nobody could log in (no way in)"
    ]
    fs.nodes["/home/zvm/.ssh/authorized_keys"].data = (public_line(comment="bob") + "\n").encode()
    assert check_image_contract(report_of(fs)) == []  # key only, by hand: valid


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
        "authorized_keys", "host_key", "machine_id", "netbird", "hostname", "record", "unexpected", "other_entries",
        "walk", "updates", "certificates",
    }
    assert data["updates"]["state"] == "verified" and data["updates"]["verified"] is True
    assert [s["principal"] for s in data["updates"]["signers"]] == ["release@example.org"]
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
    assert data["hostname"] == {"state": "seeded", "value": "zvm-alice", "boots_as": "zvm-alice"}
    record = data["record"]
    assert (record["state"], record["count"], record["unreadable_lines"]) == ("present", 1, 0)
    assert record["last"] == "seeded 2026-11-29 14:02 UTC by it@desk with zvm-provision 0.1.0"
    [entry] = record["entries"]
    assert entry["host_key"] == fresh.host_key.fingerprint and entry["hostname"] == "zvm-alice"
    assert (entry["password"], entry["netbird_setup_key"], entry["operator"]) == ("set", True, "it@desk")
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
                     "known_hosts line (replace 'zvm-alice' with the VM's address):",
                     "zvm-alice ssh-ed25519 AAAA", "https://netbird.example.org", "meets the persist contract",
                     "zvm-alice (seeded)",
                     "seeded 2026-11-29 14:02 UTC by it@desk with zvm-provision 0.1.0 (1 seeding recorded)"):
        assert expected in text, expected
    assert render_check([]) == "OK: the image meets the persist contract"


def test_check_flags_a_hostname_the_vm_would_ignore_but_requires_neither_a_hostname_nor_a_record():
    fs, _ = seeded_fs()
    fs.nodes["/etc/hostname"].data = b"Not_A_Name\n"
    report = report_of(fs)
    assert report.hostname.state == "invalid" and report.hostname.boots_as == "zvm"
    assert report.host_key.known_hosts.startswith("zvm ssh-ed25519 ")  # named as the VM boots: the built-in name
    [problem] = check_image_contract(report)
    assert problem.startswith("/etc/hostname: not one line holding a valid hostname (a hostname is 1 to 63")
    assert problem.endswith("the VM ignores it and boots as zvm")
    assert "invalid: the VM ignores it and boots as zvm" in render_text(report)
    # an image seeded by hand: no hostname, no record, still meets the contract
    for path in ("/etc/hostname", "/zvm-provision/history.jsonl", "/zvm-provision"):
        del fs.nodes[path]
    report = report_of(fs)
    assert check_image_contract(report) == []
    assert (report.hostname.state, report.record.state) == ("absent", "absent")
    text = render_text(report)
    assert "zvm (built in; none seeded)" in text and "none (never seeded, seeded by hand" in text


def test_a_damaged_record_is_shown_but_is_not_drift():
    fs, _ = seeded_fs()
    fs.nodes["/zvm-provision/history.jsonl"].data += b"\x00garbage\n"
    report = report_of(fs)
    assert check_image_contract(report) == []
    assert report.record.unreadable_lines == 1 and len(report.record.entries) == 1
    assert "1 unreadable line (dropped at the next seeding)" in render_text(report, width=200)
    assert report_to_json(report)["record"]["unreadable_lines"] == 1


@pytest.mark.parametrize("width", [60, 80, 110])
def test_a_fingerprint_is_never_split_over_two_lines(width):
    """README's workflow copies a fingerprint from inspect into --remove-key: on a terminal of any width, the
    host key's and every authorized key's fingerprint stand whole on one line."""
    fs, _ = seeded_fs()
    report = report_of(fs)
    text = render_text(report, width=width)
    fingerprints = [key.fingerprint for key in report.authorized_keys] + [report.host_key.fingerprint]
    assert all(fingerprints) and len(fingerprints) >= 2
    for fingerprint in fingerprints:
        assert any(fingerprint in line for line in text.splitlines()), (fingerprint, text)
