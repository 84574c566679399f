"""What the seed command prints: the plan and the hand-over summary, as text or JSON. Never a secret."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provision.core.credentials import AuthorizedKey
    from provision.commands.seed import SeedOutcome

KNOWN_HOSTS_NAME = "zvm"  # the VM's host name; the person replaces it with the address they connect to


def key_summary(key: AuthorizedKey) -> dict[str, Any]:
    return {
        "type": key.key_type,
        "bits": key.bits,
        "fingerprint": key.fingerprint,
        "comment": key.comment,
        "options": key.options,
    }


def host_key_summary(public_line: str | None) -> dict[str, str] | None:
    if public_line is None:
        return None
    from provision.core.credentials import known_hosts_line, public_key_fingerprint

    return {
        "type": public_line.split()[0],
        "fingerprint": public_key_fingerprint(public_line),
        "known_hosts": known_hosts_line(KNOWN_HOSTS_NAME, public_line),
    }


def outcome_to_json(outcome: SeedOutcome, *, dry_run: bool) -> dict[str, Any]:
    plan = outcome.plan
    return {
        "image": str(outcome.info.path),
        "format": outcome.info.format,
        "dry_run": dry_run,
        "changed": outcome.applied,
        "operations": [
            {
                "path": op.entry.path,
                "kind": op.entry.kind,
                "action": op.action,
                "owner": f"{op.entry.uid}:{op.entry.gid}",
                "mode": f"{op.entry.mode:04o}",
                "content": op.summary or None,
            }
            for op in plan.operations
        ],
        "stale_temporary_files": list(plan.stale_temps),
        "authorized_keys": [key_summary(key) for key in plan.authorized_keys],
        "host_key": host_key_summary(plan.host_public_line),
        "machine_id": plan.machine_id,
    }


def render_plan(outcome: SeedOutcome, *, dry_run: bool) -> str:
    plan = outcome.plan
    title = "Plan (dry run, nothing written)" if dry_run else "Changes"
    lines = [f"{title} for {outcome.info.path} (persist, mounted at /persist in the VM):"]
    width = max(len(op.entry.path) for op in plan.operations)
    for path in plan.stale_temps:
        lines.append(f"  {'remove':<8} file {path}  temporary file left by an interrupted run")
    for op in plan.operations:
        if not dry_run and not op.changes:
            continue
        owner = f"{op.entry.uid}:{op.entry.gid}"
        lines.append(
            f"  {op.action:<8} {op.entry.kind:<4} {op.entry.path:<{width}}  {owner:<8} {op.entry.mode:04o}"
            + (f"  {op.summary}" if op.summary else "")
        )
    if not plan.changes:
        lines.append("  nothing to change: the image already holds all of this")
    return "\n".join(lines)


def render_summary(outcome: SeedOutcome) -> str:
    plan = outcome.plan
    lines = ["", "Authorized SSH keys for zvm:"]
    lines += [f"  {key.describe()}" for key in plan.authorized_keys]
    host = host_key_summary(plan.host_public_line)
    if host is not None:
        lines += [
            "",
            f"Host key: {host['fingerprint']} ({host['type']})",
            "Add this to ~/.ssh/known_hosts (replace 'zvm' with the VM's address):",
            f"  {host['known_hosts']}",
        ]
    if plan.machine_id:
        lines += ["", f"machine-id: {plan.machine_id}"]
    return "\n".join(lines)
