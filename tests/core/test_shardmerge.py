"""batch-report's checks and merge (core.shardmerge), on reports made here as batch --shard writes them."""

from __future__ import annotations

import pytest

from provision.core.manifest import shard_slice
from provision.core.shardmerge import BadReport, merge_passwords, merge_reports, parse_shard_report, shard_owners

ROWS = ["alice", "bob", "carol", "dave", "erin"]
SHA = "ab" * 32


def report(index: int, count: int, *, rows=ROWS, sha=SHA, users=None, status="seeded", **extra):
    """A shard's report as batch writes it: its slice of `rows`, unless `users` says otherwise."""
    names = list(shard_slice(rows, index, count)) if users is None else users
    data = {
        "base": "/srv/zvm/base.qcow2", "overlay": True, "interrupted": False,
        "manifest": {"path": "/srv/zvm/staff.csv", "sha256": sha, "rows": list(rows)},
        "shard": {"index": index, "count": count},
        "users": [{"name": n, "status": status, "password": "generated", "future_field": [n]} for n in names],
        **extra,
    }
    return parse_shard_report(f"report-{index}-of-{count}.json", data)


def test_shards_that_cover_the_manifest_merge_in_manifest_order_keeping_every_field():
    merged = merge_reports([report(3, 3), report(1, 3), report(2, 3)])
    assert merged.problems == [] and merged.unfinished == []
    data = merged.report
    assert [u["name"] for u in data["users"]] == ROWS
    assert data["users"][0]["future_field"] == ["alice"]  # entries carried over whole (new fields included)
    assert data["shard"] is None and [s["index"] for s in data["shards"]] == [1, 2, 3]
    assert data["manifest"]["sha256"] == SHA and data["base"] == "/srv/zvm/base.qcow2" and data["overlay"] is True


def test_a_missing_shard_is_named_with_its_rows():
    merged = merge_reports([report(1, 3), report(3, 3)])
    assert merged.report is None
    assert merged.problems == ["no report from shard 2 of 3 (its rows: bob, carol)"]


def test_rows_missing_duplicated_or_unknown_are_each_named():
    merged = merge_reports([
        report(1, 2, users=["alice", "bob"]),
        report(2, 2, users=["bob", "dave", "erin", "mallory"]),  # carol in none, bob twice, mallory unknown
    ])
    assert merged.report is None
    assert merged.problems == [
        "1 row of the manifest in no report: carol",
        "row 'bob' is in 2 reports: report-1-of-2.json, report-2-of-2.json",
        "1 report entry not in the manifest: mallory",
    ]


def test_the_same_shard_twice_is_named():
    twice = report(2, 2)
    other = parse_shard_report("elsewhere/report-2-of-2.json", {
        "manifest": {"sha256": SHA, "rows": ROWS}, "shard": {"index": 2, "count": 2},
        "users": [{"name": n, "status": "seeded"} for n in shard_slice(ROWS, 2, 2)]})
    problems = merge_reports([report(1, 2), twice, other]).problems
    assert "shard 2 of 2 has 2 reports: report-2-of-2.json, elsewhere/report-2-of-2.json" in problems
    assert "row 'carol' is in 2 reports: report-2-of-2.json, elsewhere/report-2-of-2.json" in problems


def test_mismatched_shard_counts_and_manifests_are_refused_before_rows_are_counted():
    problems = merge_reports([report(1, 2), report(2, 3)]).problems
    assert problems == ["the reports disagree on the number of shards: 2 (report-1-of-2.json); "
                        "3 (report-2-of-3.json)"]
    problems = merge_reports([report(1, 2), report(2, 2, sha="cd" * 32)]).problems
    assert problems == [f"the reports disagree on the manifest: sha256 {SHA[:12]} (report-1-of-2.json); "
                        f"sha256 {'cd' * 6} (report-2-of-2.json)"]


def test_images_not_complete_are_listed_but_the_report_is_merged():
    merged = merge_reports([report(1, 2), report(2, 2, status="failed")])
    assert merged.problems == [] and merged.report is not None
    assert merged.unfinished == [("carol", "failed", 2), ("dave", "failed", 2), ("erin", "failed", 2)]


def test_many_missing_rows_are_counted_past_twenty():
    rows = [f"u{n:02d}" for n in range(30)]
    merged = merge_reports([report(1, 1, rows=rows, users=[])])
    assert merged.problems == ["30 rows of the manifest in no report: " + ", ".join(rows[:20]) + " and 10 more"]


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([], "not a JSON object"),
        ({"users": [], "shard": None}, "a whole run's report"),
        ({"users": [], "shard": {"index": 3, "count": 2}, "manifest": {}}, "no valid 'shard'"),
        ({"users": [], "shard": {"index": True, "count": 2}}, "no valid 'shard'"),
        ({"users": [], "shard": {"index": 1, "count": 2}}, "no 'manifest'"),
        ({"shard": {"index": 1, "count": 2}, "manifest": {"sha256": SHA, "rows": ["a"]}, "users": [{}]},
         "no 'users'"),
    ],
)
def test_what_is_not_a_shard_report_is_refused(data, words):
    with pytest.raises(BadReport, match=words):
        parse_shard_report("x.json", data)


def test_owners_follow_batch_slicing():
    assert shard_owners(ROWS, 3) == {"alice": 1, "bob": 2, "carol": 2, "dave": 3, "erin": 3}


def test_passwords_merge_takes_each_row_from_its_own_shard_and_drops_stale_ones():
    merged = merge_reports([report(1, 2), report(2, 2)]).report
    entries = {u["name"]: u for u in merged["users"]}
    entries["bob"]["password"] = "given"  # bob now gives his own hash, and his image holds it
    entries["dave"]["status"] = "skipped"  # dave's image was complete: his password came from an earlier run
    earlier = [("dave", "dave-earlier"), ("alice", "alice-old"), ("zed", "not in this manifest")]
    shards = {
        1: [("alice", "alice-new"), ("bob", "bob-old")],
        2: [("carol", "carol-new"), ("alice", "shard 2 has no say on alice"), ("erin", "erin-new")],
    }
    rows, lacking = merge_passwords(earlier, shards, merged)
    assert rows == [("alice", "alice-new"), ("carol", "carol-new"), ("dave", "dave-earlier"), ("erin", "erin-new"),
                    ("zed", "not in this manifest")]
    assert lacking == []
    rows, lacking = merge_passwords([], {1: [("alice", "a")]}, merged)
    assert lacking == ["carol", "dave", "erin"]
