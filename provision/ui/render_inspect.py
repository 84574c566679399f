"""What inspect prints: the report as JSON (schema_version 1, documented in docs/inspect.md), as rich tables,
and the --check verdict. Never a secret; text read from the image is escaped before it gets here.

rich is imported inside the functions that draw tables, so `zvm-provision --help` stays fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from provision.core.certinspection import CertificatesReport, certificates_json
from provision.core.contractcheck import check_image_contract
from provision.core.inspection import MAX_LISTED, InspectReport, PathStatus, Severity, owner_text
from provision.core.text import human_size, plural, shown
from provision.core.walk import MAX_WALK_DEPTH, MAX_WALK_ENTRIES
from provision.ui.image_words import escaped_json, hostname_words, record_words

if TYPE_CHECKING:
    from rich.console import Console

SCHEMA_VERSION = 1
PIPE_WIDTH = 1000  # columns of the report in a pipe or a file: wide enough that no row wraps
_TABLE_EDGES = 7  # a two-column table's borders and padding
_KEYS_TABLE_REST = 40  # the keys table's borders, padding, bits and room for comment, type and options


def report_to_json(report: InspectReport, problems: list[str] | None = None) -> dict[str, Any]:
    problems = check_image_contract(report) if problems is None else problems
    return {
        "schema_version": SCHEMA_VERSION,
        "image": {
            "path": report.image, "format": report.format,
            "virtual_size": report.virtual_size, "file_size": report.file_size,
        },
        "partitions": [
            {
                "device": p.device, "label": _maybe_shown(p.label), "fs_type": _maybe_shown(p.fs_type),
                "size": p.size, "persist": p.device == report.persist_device,
            }
            for p in report.partitions
        ],
        "contract_ok": not problems,
        "problems": problems,
        "paths": [
            {
                "path": p.entry.path,
                "role": p.entry.role,
                "required": p.required,
                "expected": {
                    "kind": p.entry.kind, "owner": owner_text(p.entry.uid, p.entry.gid), "mode": f"{p.entry.mode:04o}",
                },
                "present": p.stat is not None,
                "actual": None if p.stat is None else {
                    "kind": p.stat.kind, "owner": owner_text(p.stat.uid, p.stat.gid), "mode": f"{p.stat.mode:04o}",
                    "nlink": p.stat.nlink,
                },
                "status": p.status,
                "problems": list(p.problems),
            }
            for p in report.paths
        ],
        "password": {
            "state": report.password.state, "algorithm": report.password.algorithm, "rounds": report.password.rounds,
        },
        "authorized_keys": {
            "keys": [
                {
                    "type": k.key_type, "label": k.type_label, "bits": k.bits, "fingerprint": k.fingerprint,
                    "comment": shown(k.comment), "options": _maybe_shown(k.options),
                }
                for k in report.authorized_keys
            ],
            "problems": list(report.authorized_keys_problems),
        },
        "host_key": {
            "state": report.host_key.state, "type": report.host_key.type,
            "fingerprint": report.host_key.fingerprint, "known_hosts": report.host_key.known_hosts,
        },
        "machine_id": {"state": report.machine_id.state, "value": report.machine_id.value},
        "netbird": {"setup_key": report.netbird.setup_key, "management_url": report.netbird.management_url},
        "hostname": {
            "state": report.hostname.state, "value": report.hostname.value, "boots_as": report.hostname.boots_as,
        },
        "updates": {
            "state": report.updates.state,
            "verified": report.updates.state == "verified",
            "words": report.updates.words,
            "signers": [{"principal": p, "fingerprint": f} for p, f in report.updates.signers],
            "problems": list(report.updates.problems),
        },
        "certificates": certificates_json(report.certificates),
        "record": {
            "state": report.record.state,
            "count": len(report.record.entries),
            "last": report.record.last,
            "entries": [escaped_json(entry) for entry in report.record.entries],
            "unreadable_lines": report.record.unreadable_lines,
            "why_unreadable": report.record.why,
        },
        "unexpected": [
            {
                "path": u.path, "kind": u.kind, "owner": u.owner, "mode": u.mode, "reason": u.reason,
                "target": u.target, "severity": u.severity,
            }
            for u in report.unexpected
        ],
        "other_entries": {"count": report.other_entries, "examples": list(report.other_examples)},
        "walk": {
            "entries": report.walk_entries,
            "capped": report.walk_capped,
            "limits": {"entries": MAX_WALK_ENTRIES, "depth": MAX_WALK_DEPTH},
            "not_examined": list(report.not_examined),
            "errors": list(report.walk_errors),
        },
    }


def _maybe_shown(text: str | None) -> str | None:
    return None if text is None else shown(text)


_STATUS_STYLE = {PathStatus.OK: "green", PathStatus.DRIFT: "bold red", PathStatus.MISSING: "bold red",
                 PathStatus.ABSENT: "dim"}


def print_report(report: InspectReport, console: Console | None = None, problems: list[str] | None = None) -> None:
    """The report as rich tables, on `console` (default: standard output)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # In a pipe or a file every row is one line, as wide as it is (a fingerprint copied from it is whole).
    console = console or Console(highlight=False, emoji=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)

    problems = check_image_contract(report) if problems is None else problems
    console.print(Text(f"Image {shown(report.image)} ({report.format}, {human_size(report.virtual_size)} virtual)",
                       style="bold"))
    console.print(Text(f"persist: {report.persist_device or 'not found'}, mounted read-only "
                       "(seen at /persist in the VM)"))

    table = Table(title="Persist contract (paths inside persist)", title_justify="left")
    for column in ("path", "status", "kind", "owner", "mode"):  # what is wrong: listed under the tables
        table.add_column(column, overflow="fold")
    for p in report.paths:
        stat = p.stat
        status = p.status
        table.add_row(
            Text(p.entry.path),
            Text(status, style=_STATUS_STYLE.get(p.status, "")),
            Text(stat.kind if stat else "-"),
            Text(owner_text(stat.uid, stat.gid) if stat else "-"),
            Text(f"{stat.mode:04o}" if stat else "-"),
        )
    console.print(table)

    # A fingerprint is never split over two lines, on a terminal of any width either: its column is at least as
    # wide as it, and where a table with such a column cannot fit, the rows are printed as lines instead.
    host = report.host_key
    pw = report.password
    pw_text = pw.state + (f", {pw.algorithm}" if pw.algorithm else "") + (f", {pw.rounds} rounds" if pw.rounds else "")
    host_text = host.state if host.state != "present" else ""
    if host.fingerprint:
        host_text = f"{host_text + ': ' if host_text else ''}{host.fingerprint} ({host.type})"
    rows = [("password", pw_text), ("machine-id", report.machine_id.value or report.machine_id.state),
            ("host key", host_text), ("netbird setup key", report.netbird.setup_key),
            ("netbird management", report.netbird.management_url or "not set (Netbird's default)"),
            ("hostname", hostname_words(report)), *certificate_rows(report.certificates),
            ("seeding record", record_words(report)), ("updates", report.updates.words)]
    rows += [("release signer", f"{fingerprint} {principal}") for principal, fingerprint in report.updates.signers]
    item_width = max(len(item) for item, _ in rows)
    fingerprint_width = max([len(host.fingerprint or "")] + [len(fp) for _, fp in report.updates.signers])
    if console.width >= item_width + fingerprint_width + _TABLE_EDGES:
        facts = Table(title="Identity and credentials", title_justify="left", show_header=False)
        facts.add_column("item", style="bold")
        facts.add_column("value", overflow="fold", min_width=fingerprint_width)
        for item, value in rows:
            facts.add_row(item, Text(value))
        console.print(facts)
    else:
        console.print(Text("Identity and credentials", style="italic"))
        for item, value in rows:
            console.print(Text.assemble((f"  {item}: ", "bold"), value))

    title = f"Authorized SSH keys ({len(report.authorized_keys)})"
    widest = max((len(key.fingerprint) for key in report.authorized_keys), default=0)
    described = [(key, Text(str(key.bits)), Text(key.fingerprint), Text(shown(key.comment) or "no comment"),
                  Text(key.type_label), Text(shown(key.options) if key.options else "-"))
                 for key in report.authorized_keys]
    if console.width >= widest + _KEYS_TABLE_REST:
        keys = Table(title=title, title_justify="left")
        for column in ("bits", "fingerprint", "comment", "type", "options"):
            keys.add_column(column, overflow="fold", min_width=widest if column == "fingerprint" else None)
        for _, *cells in described:
            keys.add_row(*cells)
        console.print(keys)
    else:
        console.print(Text(title, style="italic"))
        for _, bits, fingerprint, comment, type_label, options in described:
            console.print(Text.assemble("  ", fingerprint))
            console.print(Text.assemble("    ", bits, " bits, ", type_label, ", ", comment, ", options: ", options))
    for problem in report.authorized_keys_problems:
        console.print(Text(f"  authorized_keys {problem}", style="red"))

    if host.known_hosts:
        name = host.known_hosts.split()[0]  # the image's own hostname, or the built-in one
        console.print(Text(f"known_hosts line (replace '{name}' with the VM's address):"))
        console.print(Text(f"  {host.known_hosts}"), soft_wrap=True)

    if report.unexpected:
        extra = Table(title=f"Unexpected entries ({len(report.unexpected)})", title_justify="left")
        for column in ("path", "kind", "owner", "mode", "why"):
            extra.add_column(column, overflow="fold")
        # Unsafe ones first, so the screenful shows what matters; the verdict below names every one.
        listed = sorted(report.unexpected, key=lambda u: u.severity != Severity.UNSAFE)[:MAX_LISTED]
        for u in listed:
            why = u.reason + (f" -> {u.target}" if u.target is not None else "")
            style = "red" if u.severity == Severity.UNSAFE else "yellow"
            extra.add_row(Text(u.path), Text(u.kind), Text(u.owner), Text(u.mode), Text(why, style=style))
        console.print(extra)
        if len(report.unexpected) > len(listed):
            console.print(Text(f"... and {len(report.unexpected) - len(listed)} more (--json lists every one)",
                               style="dim"))
    else:
        console.print(Text("Unexpected entries: none"))
    walked = f"{report.walk_entries} entries examined"
    if report.other_entries:
        walked += f"; {report.other_entries} other entries (user or daemon data) not named by the contract"
    if report.not_examined:
        walked += f"; content not examined: {', '.join(report.not_examined)}"
    console.print(Text(walked, style="dim"))
    if report.walk_capped:
        console.print(Text(f"The walk {report.walk_capped}.", style="yellow"))

    if problems:
        console.print(Text(f"Drift from the contract ({len(problems)}):", style="bold red"))
        for problem in problems:
            console.print(Text(f"  {problem}"), soft_wrap=True)
    else:
        console.print(Text("The image meets the persist contract.", style="bold green"))


def render_check(problems: list[str], warnings: tuple[str, ...] | list[str] = ()) -> str:
    said = [f"WARNING: {warning}" for warning in warnings]
    if not problems:
        return "\n".join(["OK: the image meets the persist contract", *said])
    lines = [f"DRIFT: {plural(len(problems), 'problem')}"]
    lines += [f"  {problem}" for problem in problems]
    return "\n".join([*lines, *said])


def certificate_rows(certs: CertificatesReport) -> list[tuple[str, str]]:
    """The certificate rows of inspect's table: the host certificate, the trusted user CAs, the principals."""
    cert = certs.cert
    if cert is None:
        host = certs.host_certificate
    else:
        until = f"{cert.valid_before:%Y-%m-%d %H:%M} UTC" if cert.valid_before else "forever"
        host = (f"signed by {cert.ca_fingerprint}, serial {cert.serial}, for {', '.join(map(shown, cert.principals))}, "
                f"valid {cert.valid_after:%Y-%m-%d %H:%M} UTC to {until}")
    host += "".join(f"; {problem}" for problem in (*certs.failures, *certs.warnings))
    cas = "; ".join(f"{ca.fingerprint} {shown(ca.comment) or '(no comment)'}" for ca in certs.user_cas) or "none"
    return [("host certificate", host), ("trusted user CAs", cas),
            ("user principals", ", ".join(certs.principals) or "none")]
