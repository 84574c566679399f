"""The seeding record and the hostname rule, pure: what an entry holds (and never), appending, the bound of 50,
a damaged record, and the plan that writes both. The appliance tests are in tests/commands/seed/test_hostname_and_record.py."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from provision.core.apply import apply_plan, verify_plan
from provision.core.credentials.hostkeys import generate_host_key
from provision.core.credentials.identity import (
    hostname_from_name,
    is_valid_hostname,
    parse_hostname_file,
    validate_hostname,
)
from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.core.layout import load_layout
from provision.core.plan import FreshMaterial, build_plan
from provision.core.record import (
    MAX_ENTRIES,
    RecordEntry,
    SeedRecord,
    append_entry,
    describe_entry,
    operator_from,
    parse_record,
    utc_time,
    validate_operator,
)
from provision.core.request import PasswordChoice, SeedRequest
from provision.core.state import read_state
from provision.errors import UsageError
from provision.secret import Secret
from tests.support.fakes import MemoryFS
from tests.support.keyfactory import public_line

LAYOUT = load_layout()
RECORD = LAYOUT.role("seed-record").path
HOSTNAME = LAYOUT.role("hostname").path
HASH = "$6$rounds=1000$saltsalt$" + "b" * 86
SETUP_KEY = "0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0"
NOW = datetime(2026, 11, 29, 14, 2, 11, tzinfo=UTC)
KEYS = tuple(parse_authorized_keys(public_line(comment="alice@laptop") + "\n", "t"))


def fresh(now: datetime = NOW) -> FreshMaterial:
    return FreshMaterial(host_key=generate_host_key(), machine_id="0123456789abcdef0123456789abcdef", now=now,
                         tool_version="0.1.0")


def seed(fs: MemoryFS, request: SeedRequest, material: FreshMaterial | None = None):
    plan = build_plan(request, read_state(fs, LAYOUT), LAYOUT, material or fresh())
    apply_plan(plan, fs)
    verify_plan(plan, fs)
    return plan


def request(**overrides) -> SeedRequest:
    values = dict(password=PasswordChoice.from_hash(Secret(HASH)),
                  keys=KEYS, operator="it@desk")
    values.update(overrides)
    return SeedRequest(**values)


def entries(fs: MemoryFS) -> list[dict]:
    return [json.loads(line) for line in fs.nodes[RECORD].data.decode().splitlines()]


# -- the hostname rule ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["zvm", "a", "0", "zvm-alice", "a1-b2", "x" * 63, "9-9"])
def test_valid_hostnames(name):
    assert is_valid_hostname(name) and validate_hostname(name) == name
    assert parse_hostname_file(name.encode() + b"\n") == name


@pytest.mark.parametrize("name", ["", "-a", "a-", "Zvm", "zvm_1", "zvm.example", "x" * 64, "zvm alice", "zvé",
                                  "a\n", "ａ"])
def test_invalid_hostnames_are_refused_with_the_rule(name):
    assert not is_valid_hostname(name)
    with pytest.raises(UsageError) as caught:
        validate_hostname(name, "--hostname")
    assert "1 to 63 characters: lower-case letters a-z, digits and hyphens" in caught.value.message
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("data", [b"zvm", b"zvm\n\n", b"Zvm\n", b"zvm\r\n", b"", b"\n", b"x" * 64 + b"\n",
                                  b"zv\x00m\n", b"zvm\nother\n"])
def test_a_hostname_file_the_vm_would_ignore_reads_as_none(data):
    assert parse_hostname_file(data) is None


def test_default_hostnames_from_manifest_names():
    assert hostname_from_name("alice") == "zvm-alice"
    assert hostname_from_name("Alice.Smith_2") == "zvm-alice-smith-2"
    assert hostname_from_name("x" * 128) == "zvm-" + "x" * 59
    assert hostname_from_name("a" * 58 + "-.b") == "zvm-" + "a" * 58  # cut at 63, then the trailing "-" trimmed
    assert hostname_from_name("---", prefix="") is None  # nothing valid left: the manifest makes it a row error


# -- the operator ---------------------------------------------------------------------------------


def test_operator_is_one_bounded_printable_line():
    assert validate_operator("  it@desk ") == "it@desk"
    for bad in ("", "   ", "a\nb", "a\tb", "x\x1b[2J", "y" * 129):
        with pytest.raises(UsageError):
            validate_operator(bad)
    assert validate_operator("y" * 128) == "y" * 128
    # the default from this machine is made safe, whatever the user or host name holds
    assert operator_from("it", "desk") == "it@desk"
    assert "\n" not in operator_from("a\nb", "h" * 500) and len(operator_from("a", "h" * 500)) == 128
    assert len(operator_from("\x1b" * 100, "desk")) == 128 and validate_operator(operator_from("\x1b", "d"))


# -- entries, appending, the bound --------------------------------------------------------------------


def test_utc_time_is_iso_8601_with_z_whatever_the_zone():
    assert utc_time(NOW) == "2026-11-29T14:02:11Z"
    assert utc_time(datetime(2026, 11, 29, 15, 2, 11, tzinfo=timezone(timedelta(hours=1)))) == "2026-11-29T14:02:11Z"


def test_append_keeps_the_last_50_and_the_old_lines_byte_for_byte():
    old = b'{"time":"2026-01-01T00:00:00Z", "odd spacing": true}\n'
    record = parse_record(old)
    entry = RecordEntry("0.1.0", utc_time(NOW), "it@desk", ("SHA256:x",), None, None, "kept", False, None)
    planned = append_entry(record, entry)
    assert planned.content == old + entry.line() + b"\n" and planned.count == 2
    many = parse_record(b"".join(b'{"n":%d}\n' % i for i in range(60)))
    planned = append_entry(many, entry)
    kept = [json.loads(line) for line in planned.content.splitlines()]
    assert len(kept) == MAX_ENTRIES and planned.count == MAX_ENTRIES
    assert kept[0] == {"n": 11} and kept[-1]["time"] == "2026-11-29T14:02:11Z"
    assert planned.dropped_old == 11 and "11 oldest dropped" in planned.summary


def test_a_damaged_record_keeps_its_readable_lines_and_says_so():
    data = (b'{"time":"2026-01-01T00:00:00Z","operator":"a"}\n'
            b"not json at all\n"
            b'["a list, not an object"]\n'
            b"\xff\xfe binary\n"
            b"\n"
            b'{"time":"2026-01-02T00:00:00Z","operator":"b"}\n'
            b'{"truncated": ')  # a write cut short: no newline, not JSON
    record = parse_record(data)
    assert [e["operator"] for e in record.entries] == ["a", "b"] and record.unreadable_lines == 4
    entry = RecordEntry("0.1.0", utc_time(NOW), "it@desk", (), None, None, "set", False, None)
    planned = append_entry(record, entry)
    assert [json.loads(line).get("operator") for line in planned.content.splitlines()] == ["a", "b", "it@desk"]
    assert planned.warning and "4 unreadable line(s)" in planned.warning and "kept" in planned.warning
    # a file that cannot be read at all (too big, a link...) is started again, and that is said too
    gone = append_entry(SeedRecord(unreadable="more than 1048576 bytes"), entry)
    assert gone.count == 1 and "could not be read" in gone.warning and "more than 1048576 bytes" in gone.summary


def test_describe_entry_reads_what_inspect_shows_and_escapes_what_the_image_holds():
    entry = {"tool": "zvm-provision", "version": "0.2.0", "time": "2026-11-29T14:02:11Z", "operator": "it@desk"}
    assert describe_entry(entry) == "seeded 2026-11-29 14:02 UTC by it@desk with zvm-provision 0.2.0"
    assert describe_entry(dict(entry, batch_row="alice")).endswith("(batch row alice)")
    hostile = describe_entry({"time": "yesterday\x1b[2J", "operator": "x\ny", "tool": 5})
    assert "\x1b" not in hostile and "\n" not in hostile and "unknown time" in hostile


# -- through the plan ------------------------------------------------------------------------------


def test_a_seeding_appends_one_entry_with_what_the_image_holds_and_no_secret():
    fs = MemoryFS()
    material = fresh()
    plan = seed(fs, request(hostname="zvm-alice", netbird_setup_key=Secret(SETUP_KEY), batch_row="alice"), material)
    [entry] = entries(fs)
    assert entry == {
        "tool": "zvm-provision", "version": "0.1.0", "time": "2026-11-29T14:02:11Z", "operator": "it@desk",
        "authorized_keys": [plan.authorized_keys[0].fingerprint], "authorized_key_count": 1,
        "host_key": material.host_key.fingerprint, "machine_id": "0123456789abcdef0123456789abcdef",
        "password": "set", "netbird_setup_key": True, "hostname": "zvm-alice", "batch_row": "alice",
    }
    assert fs.nodes[HOSTNAME].data == b"zvm-alice\n"
    node = fs.nodes[RECORD]
    assert (node.uid, node.gid, node.mode) == (0, 0, 0o600)
    assert (fs.nodes["/zvm-provision"].uid, fs.nodes["/zvm-provision"].mode) == (0, 0o700)
    written = node.data
    private = material.host_key.private_openssh.reveal()
    for secret in (HASH, "saltsalt", SETUP_KEY, SETUP_KEY.lower(), private, private.splitlines()[1]):
        assert secret.encode() not in written


def test_reseeding_appends_and_a_run_with_nothing_to_do_writes_nothing():
    fs = MemoryFS()
    seed(fs, request())
    second = seed(fs, request(password=PasswordChoice.keep(), hostname="zvm-b"), fresh(NOW + timedelta(hours=1)))
    first, latest = entries(fs)
    assert (first["hostname"], latest["hostname"]) == (None, "zvm-b")
    assert latest["password"] == "kept" and latest["time"] == "2026-11-29T15:02:11Z"
    assert first["machine_id"] == latest["machine_id"]  # kept, and recorded as kept
    assert second.record is not None and second.record.count == 2
    # the same request again: nothing changes, so nothing is recorded
    before = {path: node.data for path, node in fs.nodes.items()}
    again = build_plan(request(password=PasswordChoice.keep(), hostname="zvm-b"), read_state(fs, LAYOUT), LAYOUT,
                       fresh())
    assert not again.changes and again.record is None
    apply_plan(again, fs)
    assert {path: node.data for path, node in fs.nodes.items()} == before


def test_an_image_seeded_before_the_record_gets_no_record_dir_for_a_run_that_changes_nothing():
    fs = MemoryFS()
    seed(fs, request())
    del fs.nodes[RECORD], fs.nodes["/zvm-provision"]  # as an older zvm-provision left it
    plan = build_plan(request(password=PasswordChoice.keep()), read_state(fs, LAYOUT), LAYOUT, fresh())
    assert not plan.changes
    assert plan.operation("/zvm-provision").action == "keep" and plan.operation(RECORD).action == "keep"


def test_a_hostname_without_the_flag_is_kept_and_the_same_name_is_not_rewritten():
    fs = MemoryFS()
    seed(fs, request(hostname="zvm-alice"))
    plan = seed(fs, request(password=PasswordChoice.keep(), new_machine_id=True))
    assert plan.operation(HOSTNAME).action == "keep" and fs.nodes[HOSTNAME].data == b"zvm-alice\n"
    assert plan.hostname == "zvm-alice" and entries(fs)[-1]["hostname"] == "zvm-alice"
    same = build_plan(request(password=PasswordChoice.keep(), hostname="zvm-alice"), read_state(fs, LAYOUT),
                      LAYOUT, fresh())
    assert not same.changes
    # a file the VM would ignore is replaced when a name is given
    fs.nodes[HOSTNAME].data = b"Not Valid\n"
    fixed = seed(fs, request(password=PasswordChoice.keep(), hostname="zvm-alice"))
    assert fixed.operation(HOSTNAME).action == "replace" and fs.nodes[HOSTNAME].data == b"zvm-alice\n"


def test_a_damaged_record_in_the_image_is_not_fatal_and_the_plan_says_so():
    fs = MemoryFS()
    seed(fs, request())
    fs.nodes[RECORD].data += b"garbage line\n"
    plan = seed(fs, request(password=PasswordChoice.keep(), hostname="zvm-x"))
    assert "1 unreadable line(s) dropped" in plan.operation(RECORD).summary
    assert len(entries(fs)) == 2
    # a record too big to read is replaced, with a warning, rather than stopping the seeding
    fs.nodes[RECORD].data = b"x" * ((1 << 20) + 1)
    plan = seed(fs, request(password=PasswordChoice.keep(), hostname="zvm-y"))
    assert plan.record is not None and "could not be read" in (plan.record.warning or "")
    assert [e["hostname"] for e in entries(fs)] == ["zvm-y"]


def test_a_record_that_is_a_symlink_is_replaced_by_a_real_file_not_followed():
    fs = MemoryFS()
    seed(fs, request())
    fs.add_file("/passwords/elsewhere", b"untouched\n")
    fs.add_symlink(RECORD, "/passwords/elsewhere")
    plan = seed(fs, request(password=PasswordChoice.keep(), hostname="zvm-z"))
    assert plan.operation(RECORD).remove_first or plan.operation(RECORD).action == "replace"
    assert fs.nodes["/passwords/elsewhere"].data == b"untouched\n"
    assert fs.nodes[RECORD].kind == "file" and len(entries(fs)) == 1


def test_the_record_entry_lists_at_most_64_fingerprints_and_counts_them_all():
    many = tuple(k for i in range(70) for k in parse_authorized_keys(public_line(comment=f"k{i}") + "\n", "t"))
    fs = MemoryFS()
    seed(fs, request(keys=many))
    [entry] = entries(fs)
    assert len(entry["authorized_keys"]) == 64 and entry["authorized_key_count"] == 70


def test_the_plan_record_field_is_set_only_when_the_plan_changes_something():
    state = read_state(MemoryFS(), LAYOUT)
    plan = build_plan(request(), state, LAYOUT, fresh())
    assert plan.record is not None and plan.record.entry.operator == "it@desk"
    assert replace(plan.record.entry, operator=None).to_json()["operator"] is None
