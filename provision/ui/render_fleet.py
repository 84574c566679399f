"""What the fleet commands print: `inspect IMAGE...` (one row per image, --check's verdicts, --find-key's
matches, --json's list of inspect's own reports) and `keys` (one line per image and the counts). Never a
secret; every string read from an image is escaped (the reports hold it escaped, shown() for the rest)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from provision.ui.render import authority_lines
from provision.core.text import plural, shown
from provision.ui.render_inspect import report_to_json

if TYPE_CHECKING:
    from provision.commands.fleet.audit import AuditRow
    from provision.commands.fleet.keys import KeysResult

MAX_COMMENTS = 3  # key comments shown in a row, then a count


def audit_json(rows: list[AuditRow]) -> list[dict[str, Any]]:
    """inspect's own report per image (schema unchanged), or {image, error} for one that could not be opened;
    with --find-key, each report gains `matched_keys`."""
    out = []
    for row in rows:
        if row.report is None:
            out.append({"image": {"path": str(row.path)}, "error": row.error})
            continue
        entry = report_to_json(row.report, row.problems)
        if row.matched:
            entry["matched_keys"] = [key.fingerprint for key in row.matched]
        out.append(entry)
    return out


def audit_rows(rows: list[AuditRow]) -> str:
    """One line per image: verdict, file, hostname, keys, password, last seeding (who, when)."""
    lines = []
    for row in rows:
        name = shown(row.path.name)
        report = row.report
        if report is None:
            lines.append(f"  FAILED  {name}  {row.error}")
            continue
        keys = report.authorized_keys
        comments = [shown(k.comment) or "(no comment)" for k in keys[:MAX_COMMENTS]]
        more = f", +{len(keys) - MAX_COMMENTS}" if len(keys) > MAX_COMMENTS else ""
        last = report.record.entries[-1] if report.record.entries else None
        seeded = (f"{shown(str(last.get('operator')), 40)} {shown(str(last.get('time')), 24)}" if last
                  else "never (no seeding record)")
        verdict = "ok" if not row.problems else "DRIFT"
        lines.append(f"  {verdict:<6}  {name}  {report.hostname.boots_as}  {plural(len(keys), 'key')}"
                     + (f" ({', '.join(comments)}{more})" if keys else "")
                     + f"  password {report.password.state}  last seeded: {seeded}")
    failed = sum(1 for r in rows if r.report is None)
    drift = sum(1 for r in rows if r.report is not None and r.problems)
    lines.append(f"{plural(len(rows), 'image')}: {len(rows) - failed - drift} ok, {drift} off the contract, "
                 f"{failed} could not be opened")
    return "\n".join(lines)


def audit_check(rows: list[AuditRow]) -> str:
    """--check: every image off the contract named, with its problems; every image that could not be read."""

    def drift(row: AuditRow) -> list[str]:
        if not row.problems:
            return []
        return [f"DRIFT {shown(str(row.path))}: {plural(len(row.problems), 'problem')}",
                *(f"  {problem}" for problem in row.problems)]

    ok = sum(1 for r in rows if r.report is not None and not r.problems)
    return _listing(rows, drift, f"{ok} of {plural(len(rows), 'image')} meet the contract")


def audit_found(rows: list[AuditRow]) -> str:
    """--find-key: the images holding a named key, and which key; images that could not be read, named."""

    def found(row: AuditRow) -> list[str]:
        return [f"  {shown(str(row.path))}  {key.fingerprint}  {shown(key.comment) or '(no comment)'}"
                for key in row.matched]

    holding = sum(1 for r in rows if r.matched)
    return _listing(rows, found, f"{holding} of {plural(len(rows), 'image')} hold the key(s)")


def _listing(rows: list[AuditRow], lines_of: Callable[[AuditRow], list[str]], footer: str) -> str:
    """The lines `lines_of` gives for each image read, a FAILED line for each image that could not be, a footer."""
    lines = []
    for row in rows:
        lines += [f"FAILED {shown(str(row.path))}: {row.error}"] if row.report is None else lines_of(row)
    return "\n".join([*lines, footer])


def keys_summary(result: KeysResult) -> str:
    from provision.commands.fleet.keys import Status

    dry = result.options.dry_run
    lines = []
    for r in result.results:
        word = "would change" if dry and r.status == Status.CHANGED else str(r.status)
        detail = r.reason or "; ".join(
            ([f"removed {', '.join(k.fingerprint for k in r.removed)}"] if r.removed else [])
            + ([f"added {', '.join(k.fingerprint for k in r.added)}"] if r.added else [])
            + ([f"host certificate serial {r.host_certificate['serial']}"] if r.host_certificate else []))
        target = "" if r.written in (None, r.image) else f" -> {shown(str(r.written))}"
        lines.append(f"  {word:<12} {shown(str(r.image))}{target}" + (f"  ({detail})" if detail else ""))
        if dry and r.operations:
            lines.extend(f"      {shown(op)}" for op in r.operations)
    counts = ", ".join(f"{result.count(s)} {'would change' if dry and s == Status.CHANGED else s}"
                       for s in (Status.CHANGED, Status.UNCHANGED, Status.REFUSED, Status.FAILED))
    lines.append(f"{plural(len(result.results), 'image')}: {counts}"
                 + (f". Report: {result.report_path}" if result.report_path else "")
                 + (" (dry run: nothing was written)" if dry else ""))
    if not dry:
        lines += authority_lines((r.host_certificate for r in result.results), result.report_path or "--json")
    return "\n".join(lines)
