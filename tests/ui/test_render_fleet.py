"""What `inspect IMAGE...` prints per image, from reports built on the in-memory filesystem (the appliance runs
are in tests/commands/fleet/test_keys.py)."""

from __future__ import annotations

from pathlib import Path

from provision.commands.fleet.audit import AuditRow
from provision.core.contractcheck import check_image_contract
from provision.core.fleetkeys import matching_keys
from provision.core.keyremoval import parse_selector
from provision.ui.render_fleet import audit_check, audit_found, audit_json, audit_rows, keys_summary
from tests.core.test_inspection import report_of, seeded_fs


def rows() -> list[AuditRow]:
    report = report_of(seeded_fs()[0])
    good = AuditRow(Path("images/alice.qcow2"), report, check_image_contract(report),
                    matching_keys(report.authorized_keys, [parse_selector("alice@laptop")]))
    bad_fs, _ = seeded_fs(hostname="zvm-bob", operator="helpdesk")
    bad_fs.nodes["/home/zvm/.ssh/authorized_keys"].mode = 0o666
    bad = report_of(bad_fs)
    drift = AuditRow(Path("images/bob.qcow2"), bad, check_image_contract(bad))
    failed = AuditRow(Path("images/carol.qcow2"), error="images/carol.qcow2 is in use by another process")
    return [good, drift, failed]


def test_one_row_per_image_names_host_keys_password_and_the_last_seeding():
    text = audit_rows(rows())
    alice, bob, carol, total = text.splitlines()
    assert alice.split() == ["ok", "alice.qcow2", "zvm-alice", "1", "key", "(alice@laptop)", "password", "set",
                             "last", "seeded:", "it@desk", "2026-11-29T14:02:11Z"]
    assert bob.split()[:3] == ["DRIFT", "bob.qcow2", "zvm-bob"] and "helpdesk" in bob
    assert carol.split()[:2] == ["FAILED", "carol.qcow2"] and "in use" in carol
    assert total == "3 images: 1 ok, 1 off the contract, 1 could not be opened"


def test_check_names_every_image_off_the_contract_with_its_problems():
    text = audit_check(rows())
    assert "alice" not in text
    assert "DRIFT images/bob.qcow2: 1 problem\n  /home/zvm/.ssh/authorized_keys: mode 0666" in text
    assert "FAILED images/carol.qcow2: images/carol.qcow2 is in use" in text
    assert text.endswith("1 of 3 images meet the contract")


def test_find_key_shows_which_key_each_image_holds():
    listed = rows()
    text = audit_found(listed)
    assert f"images/alice.qcow2  {listed[0].matched[0].fingerprint}  alice@laptop" in text
    assert "bob" not in text and text.endswith("1 of 3 images hold the key(s)")


def test_json_is_inspects_own_report_per_image_or_the_reason():
    alice, bob, carol = audit_json(rows())
    assert alice["schema_version"] == 1 and alice["contract_ok"] and alice["matched_keys"]
    assert "matched_keys" not in bob and not bob["contract_ok"]
    assert carol == {"image": {"path": "images/carol.qcow2"}, "error": "images/carol.qcow2 is in use by another process"}


def test_keys_summary_says_per_image_what_happened_and_what_a_dry_run_would_do():
    from provision.commands.fleet.keys import ImageResult, KeysOptions, KeysResult, Status
    from provision.core.fleetkeys import KeyChange

    key = report_of(seeded_fs()[0]).authorized_keys[0]
    results = [
        ImageResult(Path("a.qcow2"), Path("a.qcow2"), Status.CHANGED, removed=(key,),
                    operations=["/home/zvm/.ssh/authorized_keys: 0 keys, 1 key removed"]),
        ImageResult(Path("b.qcow2"), Path("b.qcow2"), Status.UNCHANGED, "does not hold the key(s)"),
        ImageResult(Path("c.qcow2"), Path("c.qcow2"), Status.REFUSED, "refused: ... no way in"),
    ]
    for dry in (False, True):
        options = KeysOptions((Path("a.qcow2"),), KeyChange(remove=(parse_selector("alice@laptop"),)), dry_run=dry)
        text = keys_summary(KeysResult(options, results, None))
        lines = text.splitlines()
        assert lines[0].split()[:3] == (["would", "change", "a.qcow2"] if dry else ["changed", "a.qcow2", "(removed"])
        assert ("/home/zvm/.ssh/authorized_keys: 0 keys, 1 key removed" in text) == dry
        assert "unchanged    b.qcow2  (does not hold the key(s))" in text
        assert lines[-1].startswith("3 images: 1 " + ("would change" if dry else "changed") + ", 1 unchanged, "
                                    "1 refused, 0 failed")
