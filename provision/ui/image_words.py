"""What inspect says of an image's name and of its seeding record, in words and in JSON. Never a secret (the
record holds none); what the record holds was read from the image, so every string of it is escaped."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provision.core.credentials.identity import BUILT_IN_HOSTNAME
from provision.core.layout import load_layout
from provision.core.text import plural, shown

if TYPE_CHECKING:
    from provision.core.inspection import InspectReport
    from provision.core.plan import Plan


def record_path() -> str:
    return load_layout().role("seed-record").path


def hostname_of(seeded: str | None) -> str:
    return seeded or f"{BUILT_IN_HOSTNAME} (built in; none seeded)"


def hostname_line(plan: Plan) -> str:
    return f"Hostname: {hostname_of(plan.hostname)}"


def summary_lines(plan: Plan) -> list[str]:
    """The seed summary's lines on the name and the record."""
    lines = [hostname_line(plan)]
    if plan.record is not None:
        lines.append(f"Seeding record: entry {plan.record.count} in {record_path()} (inspect shows it)")
        if plan.record.warning:
            lines.append(f"  note: {plan.record.warning}")
    return lines


def hostname_words(report: InspectReport) -> str:
    name = report.hostname
    if name.state == "seeded":
        return f"{name.value} (seeded)"
    if name.state == "absent":
        return hostname_of(None)
    return f"{name.state}: the VM ignores it and boots as {name.boots_as}"


def record_words(report: InspectReport) -> str:
    """'seeded 2026-11-29 14:02 UTC by it@desk with zvm-provision 0.2.0 (3 seedings recorded)'."""
    record = report.record
    if record.state == "absent":
        return "none (never seeded, seeded by hand, or by a zvm-provision that kept no record)"
    if record.state == "unreadable":
        return f"unreadable ({record.why}); the next seeding starts it again"
    count = len(record.entries)
    words = f"{record.last} ({plural(count, 'seeding')} recorded)" if record.last else "no readable entry"
    if record.unreadable_lines:
        words += f"; {plural(record.unreadable_lines, 'unreadable line')} (dropped at the next seeding)"
    return words


def escaped_json(value: Any) -> Any:
    """A JSON value read from an image, with every string in it escaped and capped as shown() does."""
    if isinstance(value, str):
        return shown(value, 1000)
    if isinstance(value, list):
        return [escaped_json(v) for v in value]
    if isinstance(value, dict):
        return {shown(str(k), 100): escaped_json(v) for k, v in value.items()}
    return value
