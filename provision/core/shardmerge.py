"""A sharded roll-out put back together: the shards' reports (report-K-of-N.json) checked against each other
and merged into one report, and their generated passwords into one list. Pure: commands/batch/report.py reads
and writes the files.

The reports must agree on the manifest (its sha256) and the number of shards; then every row of the manifest
must appear exactly once across them. Anything else is a problem named by row, so that the person knows which
shard to run again. Entries are carried over as they are, whatever fields they hold.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provision.core.manifest import shard_slice
from provision.core.text import plural

DONE = ("seeded", "skipped")  # the statuses of a row whose image is complete
NAMES_SHOWN = 20


class BadReport(ValueError):
    """Not a shard's report as zvm-provision batch writes it; the message says what is wrong."""


@dataclass(frozen=True)
class ShardReport:
    source: str  # where it was read (for messages)
    index: int
    count: int
    manifest: Mapping[str, Any]  # path, sha256, rows
    users: tuple[Mapping[str, Any], ...]
    base: Any
    overlay: Any
    interrupted: bool

    @property
    def sha256(self) -> str:
        return str(self.manifest["sha256"])

    @property
    def rows(self) -> tuple[str, ...]:
        return tuple(self.manifest["rows"])


@dataclass
class Merged:
    report: dict[str, Any] | None  # None: the shards do not add up (problems says why)
    problems: list[str] = field(default_factory=list)
    unfinished: list[tuple[str, str, int]] = field(default_factory=list)  # (row, status, shard): not complete


def parse_shard_report(source: str, data: Any) -> ShardReport:
    """A shard report's fields, checked; BadReport otherwise."""
    if not isinstance(data, dict):
        raise BadReport("not a JSON object")
    shard, manifest, users = data.get("shard"), data.get("manifest"), data.get("users")
    if shard is None and isinstance(users, list):
        raise BadReport("a whole run's report (no shard), not a shard's")
    if not isinstance(shard, dict) or not _positive(shard.get("index")) or not _positive(shard.get("count")) \
            or shard["index"] > shard["count"]:
        raise BadReport("no valid 'shard' (index and count); was it written by zvm-provision batch --shard?")
    if not isinstance(manifest, dict) or not isinstance(manifest.get("sha256"), str) \
            or not isinstance(manifest.get("rows"), list) or not all(isinstance(r, str) for r in manifest["rows"]):
        raise BadReport("no 'manifest' with its sha256 and rows; was it written by this version of zvm-provision?")
    if not isinstance(users, list) or not all(isinstance(u, dict) and isinstance(u.get("name"), str) for u in users):
        raise BadReport("no 'users' list of entries with a name")
    return ShardReport(source, shard["index"], shard["count"], manifest, tuple(users), data.get("base"),
                       data.get("overlay"), bool(data.get("interrupted")))


def _positive(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def merge_reports(reports: Sequence[ShardReport]) -> Merged:
    """One report from the shards' (users in manifest order), or the problems that prevent it."""
    if not reports:
        return Merged(None, ["no shard reports to merge"])
    problems = _disagreements(reports, "number of shards", lambda r: str(r.count))
    problems += _disagreements(reports, "manifest", lambda r: r.sha256, lambda sha: f"sha256 {sha[:12]}")
    if problems:
        return Merged(None, problems)

    count, rows = reports[0].count, reports[0].rows
    seen_shards = Counter(r.index for r in reports)
    for index in range(1, count + 1):
        if seen_shards[index] == 0:
            missing_rows = shard_slice(rows, index, count)
            problems.append(f"no report from shard {index} of {count}"
                            + (f" (its rows: {names(missing_rows)})" if missing_rows else " (it has no rows)"))
        elif seen_shards[index] > 1:
            twice = [r.source for r in reports if r.index == index]
            problems.append(f"shard {index} of {count} has {len(twice)} reports: {', '.join(twice)}")

    where: dict[str, list[str]] = {}
    entries: dict[str, Mapping[str, Any]] = {}
    for report in reports:
        for entry in report.users:
            where.setdefault(entry["name"], []).append(report.source)
            entries[entry["name"]] = entry
    expected = set(rows)
    owner = shard_owners(rows, count)
    missing = [row for row in rows if row not in where
               and seen_shards[owner[row]]]  # a missing shard's rows are named above
    duplicated = [name for name, sources in where.items() if len(sources) > 1]
    unknown = [name for name in where if name not in expected]
    if missing:
        problems.append(f"{plural(len(missing), 'row')} of the manifest in no report: {names(missing)}")
    for name in duplicated[:NAMES_SHOWN]:
        problems.append(f"row {name!r} is in {len(where[name])} reports: {', '.join(where[name])}")
    if len(duplicated) > NAMES_SHOWN:
        problems.append(f"and {len(duplicated) - NAMES_SHOWN} more rows in more than one report")
    if unknown:
        problems.append(f"{len(unknown)} report entr{'y' if len(unknown) == 1 else 'ies'} not in the manifest: "
                        f"{names(unknown)}")
    if problems:
        return Merged(None, problems)

    ordered = [entries[row] for row in rows]
    merged = {
        "base": _common(r.base for r in reports),
        "overlay": _common(r.overlay for r in reports),
        "interrupted": any(r.interrupted for r in reports),
        "manifest": dict(reports[0].manifest),
        "shard": None,
        "shards": [{"index": r.index, "count": r.count, "report": r.source, "base": r.base,
                    "overlay": r.overlay, "interrupted": r.interrupted}
                   for r in sorted(reports, key=lambda r: r.index)],
        "users": ordered,
    }
    unfinished = [(str(e["name"]), str(e.get("status")), owner[str(e["name"])])
                  for e in ordered if e.get("status") not in DONE]
    return Merged(merged, [], unfinished)


def merge_passwords(
    earlier: Sequence[tuple[str, str]], shards: Mapping[int, Sequence[tuple[str, str]]], report: Mapping[str, Any],
) -> tuple[list[tuple[str, str]], list[str]]:
    """The merged name,password rows, and the rows whose generated password is on no file.

    A shard's rows count for the rows that shard reported (its slice); the earlier merged file fills in the
    rest (a password generated by an earlier run, whose image this one found complete). A row that now gives
    its own hash and whose image holds it leaves the list, as in a whole run; names the manifest does not know
    are kept (never lose a password)."""
    owner = shard_owners(report["manifest"]["rows"], report["shards"][0]["count"])
    rows = dict(earlier)
    for index, given in shards.items():
        rows.update((name, password) for name, password in given if owner.get(name) == index)
    entries = {e["name"]: e for e in report["users"]}
    stale = {n for n, e in entries.items() if e.get("password") == "given" and e.get("status") in DONE}
    order = [*report["manifest"]["rows"], *(n for n in rows if n not in entries)]
    merged = [(name, rows[name]) for name in order if name in rows and name not in stale]
    lacking = [n for n, e in entries.items() if e.get("password") == "generated" and n not in rows]
    return merged, lacking


def names(items: Sequence[str]) -> str:
    shown = ", ".join(items[:NAMES_SHOWN])
    return shown + (f" and {len(items) - NAMES_SHOWN} more" if len(items) > NAMES_SHOWN else "")


def shard_owners(rows: Sequence[str], count: int) -> dict[str, int]:
    """Which shard (1-based) of `count` takes each row: batch --shard's slicing."""
    return {name: index for index in range(1, count + 1) for name in shard_slice(rows, index, count)}


def _disagreements(
    reports: Sequence[ShardReport], what: str, key: Callable[[ShardReport], str],
    label: Callable[[str], str] = str,
) -> list[str]:
    groups: dict[str, list[str]] = {}
    for report in reports:
        groups.setdefault(key(report), []).append(report.source)
    if len(groups) < 2:
        return []
    parts = [f"{label(value)} ({', '.join(sources)})" for value, sources in groups.items()]
    return [f"the reports disagree on the {what}: " + "; ".join(parts)]


def _common(values: Any) -> Any:
    """The value every shard gave, or None when they differ (each shard's own is in "shards")."""
    distinct: list[Any] = []
    for value in values:
        if value not in distinct:
            distinct.append(value)
    return distinct[0] if len(distinct) == 1 else None
