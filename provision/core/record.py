"""The seeding record: /zvm-provision/history.jsonl on persist (the contract's role "seed-record"), one JSON
line per seeding that changed something, the last MAX_ENTRIES kept. Pure: the plan builds the new content,
inspect reads it back.

Who seeded, when, with which version of the tool, and what the image holds afterwards: authorized key and
host key fingerprints, machine-id, the hostname, whether a password and a Netbird setup key were given, and
the manifest row for batch. Never a secret: no password, hash, setup key or private key reaches an entry; an
entry is built only from the fields below.

The file comes from an image, which may be hostile or damaged: it is read with a size cap, each line on its
own; a line that is not a JSON object is dropped at the next seeding (and counted, and said), the others are
kept byte for byte.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from provision.core.text import shown
from provision.errors import UsageError

MAX_ENTRIES = 50
MAX_RECORD_BYTES = 1 << 20  # read cap: 50 entries of a few KiB each stay far below it
MAX_LISTED_KEYS = 64  # fingerprints listed per entry (the count is always there): bounds an entry's size
MAX_OPERATOR_CHARS = 128
TOOL = "zvm-provision"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
_TIME_RE = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2})(:\d{2})?(\.\d+)?Z", re.ASCII)


def validate_operator(text: str) -> str:
    """Who seeds (--operator TEXT, e.g. it@desk or a ticket number): one line of printable characters, at most
    MAX_OPERATOR_CHARS; surrounding spaces are dropped."""
    text = text.strip()
    if not text:
        raise UsageError("--operator is empty; give who seeds, e.g. it@desk")
    if not text.isprintable():
        raise UsageError("--operator must be one line of printable characters (no tab, newline or control)")
    if len(text) > MAX_OPERATOR_CHARS:
        raise UsageError(f"--operator is longer than {MAX_OPERATOR_CHARS} characters")
    return text


def operator_from(user: str, host: str) -> str:
    """The default operator, `user@host` from this machine, made safe to record (escaped, capped)."""
    text = shown(f"{user or 'unknown'}@{host or 'unknown'}", 4 * MAX_OPERATOR_CHARS)  # escaped first...
    return text if len(text) <= MAX_OPERATOR_CHARS else text[: MAX_OPERATOR_CHARS - 3] + "..."  # ...then capped


def utc_time(moment: datetime) -> str:
    """ISO 8601 in UTC, to the second, with a Z: 2026-11-29T14:02:11Z."""
    return moment.astimezone(UTC).strftime(_TIME_FORMAT)


@dataclass(frozen=True)
class RecordEntry:
    """One seeding, as the tool writes it."""

    version: str
    time: str  # utc_time()
    operator: str | None
    authorized_keys: tuple[str, ...]  # SHA256 fingerprints after the seeding
    host_key: str | None  # its SHA256 fingerprint
    machine_id: str | None
    password: str  # "set" (a hash was given), "locked" (key-only login), "kept" (the image's stays)
    netbird_setup_key: bool  # a setup key was given in this seeding
    hostname: str | None  # the seeded hostname after the seeding (None: none, the VM is zvm)
    batch_row: str | None = None  # the manifest row's name, for batch
    change: str | None = None  # what a fleet key change (`keys`) did: its keys removed and added, by fingerprint

    def to_json(self) -> dict[str, Any]:
        change = {"change": self.change} if self.change is not None else {}  # absent from other seedings' entries
        return {
            "tool": TOOL,
            "version": self.version,
            "time": self.time,
            "operator": self.operator,
            "authorized_keys": list(self.authorized_keys[:MAX_LISTED_KEYS]),
            "authorized_key_count": len(self.authorized_keys),
            "host_key": self.host_key,
            "machine_id": self.machine_id,
            "password": self.password,
            "netbird_setup_key": self.netbird_setup_key,
            "hostname": self.hostname,
            "batch_row": self.batch_row,
            **change,
        }

    def line(self) -> bytes:
        # ensure_ascii: every line break or control character an operator might hide is escaped
        return json.dumps(self.to_json(), ensure_ascii=True, separators=(",", ":")).encode("ascii")


@dataclass(frozen=True)
class SeedRecord:
    """What an image's record holds: the readable entries (oldest first), their lines as they are in the
    file, and how many lines could not be read."""

    entries: tuple[dict[str, Any], ...] = ()
    lines: tuple[bytes, ...] = ()
    unreadable_lines: int = 0
    unreadable: str | None = None  # why the whole file could not be read (too big, not a regular file...)

    @property
    def last(self) -> dict[str, Any] | None:
        return self.entries[-1] if self.entries else None


def parse_record(data: bytes) -> SeedRecord:
    """Every line that is a JSON object is an entry; blank lines are skipped; anything else is counted."""
    entries: list[dict[str, Any]] = []
    lines: list[bytes] = []
    bad = 0
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        try:
            value = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            bad += 1
            continue
        if not isinstance(value, dict):
            bad += 1
            continue
        entries.append(value)
        lines.append(raw)
    return SeedRecord(tuple(entries), tuple(lines), bad)


@dataclass(frozen=True)
class PlannedRecord:
    """The record after a seeding: its new content, the entry appended, and what was dropped on the way."""

    entry: RecordEntry
    content: bytes
    count: int  # entries in the file afterwards
    dropped_old: int  # oldest entries dropped to keep MAX_ENTRIES
    dropped_unreadable: int  # lines of the old file that were not entries
    previous_unreadable: str | None  # the old file could not be read at all: why (it is replaced)

    @property
    def summary(self) -> str:
        """For the plan: what happens to the record (safe to show)."""
        words = [f"entry {self.count} of {self.count}"]
        if self.dropped_old:
            words.append(f"{self.dropped_old} oldest dropped (keeps {MAX_ENTRIES})")
        if self.dropped_unreadable:
            words.append(f"{self.dropped_unreadable} unreadable line(s) dropped")
        if self.previous_unreadable:
            words.append(f"the old record could not be read ({self.previous_unreadable}) and is replaced")
        return "; ".join(words)

    @property
    def warning(self) -> str | None:
        """What a person should hear about the old record, or None."""
        if self.previous_unreadable:
            return (f"the seeding record could not be read ({self.previous_unreadable}); "
                    "it is started again with this seeding")
        if self.dropped_unreadable:
            return (f"the seeding record held {self.dropped_unreadable} unreadable line(s); "
                    "they are dropped, the readable entries are kept")
        return None


def append_entry(record: SeedRecord, entry: RecordEntry) -> PlannedRecord:
    """The record with `entry` appended, at most MAX_ENTRIES kept (the oldest go)."""
    lines = [*record.lines, entry.line()]
    dropped = max(0, len(lines) - MAX_ENTRIES)
    lines = lines[dropped:]
    return PlannedRecord(
        entry=entry,
        content=b"".join(line + b"\n" for line in lines),
        count=len(lines),
        dropped_old=dropped,
        dropped_unreadable=record.unreadable_lines,
        previous_unreadable=record.unreadable,
    )


def describe_entry(entry: dict[str, Any]) -> str:
    """'seeded 2026-11-29 14:02 UTC by it@desk with zvm-provision 0.2.0': untrusted fields escaped and capped."""
    time = entry.get("time")
    match = _TIME_RE.fullmatch(time) if isinstance(time, str) else None
    when = f"{match.group(1)} {match.group(2)} UTC" if match else f"at an unknown time ({_text(time)})"
    operator = entry.get("operator")
    by = f" by {_text(operator)}" if isinstance(operator, str) and operator else " by an unknown operator"
    tool, version = entry.get("tool"), entry.get("version")
    tool_text = _text(tool) if isinstance(tool, str) else "an unknown tool"
    with_ = f" with {tool_text}" + (f" {_text(version)}" if isinstance(version, str) else "")
    row = entry.get("batch_row")
    batch = f" (batch row {_text(row)})" if isinstance(row, str) and row else ""
    return f"seeded {when}{by}{with_}{batch}"


def _text(value: Any) -> str:
    return shown(value if isinstance(value, str) else json.dumps(value), 80)


@dataclass(frozen=True)
class RecordReport:
    """The seeding record as inspect shows it: every readable entry (oldest first; JSON objects from the
    image, untrusted), the newest described, and what could not be read."""

    state: Literal["present", "absent", "unreadable"]
    entries: tuple[dict[str, Any], ...] = ()
    last: str | None = None  # describe_entry() of the newest entry, escaped
    unreadable_lines: int = 0
    why: str | None = None  # why the file could not be read at all


def record_report(record: SeedRecord | None) -> RecordReport:
    if record is None:
        return RecordReport("absent")
    if record.unreadable is not None:
        return RecordReport("unreadable", why=shown(record.unreadable))
    last = record.last
    return RecordReport("present", record.entries, describe_entry(last) if last is not None else None,
                        record.unreadable_lines)
