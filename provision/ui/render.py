"""What the seed command prints, as text or JSON: the plan, the keys fetched, the hand-over summary, and what
the wizard says of an image's state (inspect's report is in render_inspect, batch's summaries in
render_batch). Never a secret; text read from an image is escaped before it gets here.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from provision.core.credentials.hostkeys import host_key_summary
from provision.core.credentials.identity import booted_name
from provision.core.credentials.sshkeys import key_summary, public_key_fingerprint
from provision.core.text import human_size
from provision.core.urls import display_url
from provision.ui.image_words import hostname_of, record_path, summary_lines

if TYPE_CHECKING:
    from provision.commands.seed.apply import SeedOutcome
    from provision.core.credentials.keysources import FetchedKeys
    from provision.core.credentials.passwords import PasswordInfo
    from provision.core.plan import Plan
    from provision.core.state import ImageState

# --------------------------------------------------------------------------------------------------
# seed: the plan and the hand-over summary


def render_seed(outcome: SeedOutcome, *, dry_run: bool, json_out: bool, plan_shown: bool = False) -> list[str]:
    """What the seed command prints, block by block: the plan (unless the wizard already showed it before the
    confirmation) and the hand-over summary; or the JSON."""
    if json_out:
        return [json.dumps(outcome_to_json(outcome, dry_run=dry_run), indent=2)]
    blocks = []
    if not plan_shown:
        blocks.append(render_plan(outcome, dry_run=dry_run))
    elif not dry_run:
        changed = sum(op.changes for op in outcome.plan.operations)
        blocks.append(f"Done: {outcome.info.path} seeded ({changed} paths written and read back).")
    if not dry_run:
        blocks.append(render_summary(outcome))
    if outcome.output is not None:
        blocks.append(render_output(outcome))
    return blocks


def render_output(outcome: SeedOutcome) -> str:
    """seed --output: the new file, and how its recipient checks a download of it."""
    record = outcome.output
    assert record is not None
    kind = f"compressed {record.format}" if record.compressed else str(record.format)
    return "\n".join([
        "",
        f"Written: {outcome.info.path} ({kind}, {human_size(record.size)}), made from {outcome.source}, "
        "which was not changed.",
        f"sha256: {record.sha256}",
        f"A recipient checks a download with: echo '{record.sha256}  {outcome.info.path.name}' | sha256sum -c",
    ])


def outcome_to_json(outcome: SeedOutcome, *, dry_run: bool) -> dict[str, Any]:
    plan = outcome.plan
    return {
        "image": str(outcome.info.path),
        "format": outcome.output.format.value if outcome.output else outcome.info.format,
        "source": str(outcome.source) if outcome.source else None,  # --output: the image left unchanged
        "output": outcome.output.to_json() if outcome.output else None,  # size and sha256 of the new image
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
        "authorized_keys": [{**key_summary(key), "source": plan.key_source(key)} for key in plan.authorized_keys],
        "removed_keys": [key_summary(key) for key in plan.removed_keys],
        "host_key": host_key_summary(plan.host_public_line, plan.hostname),
        "host_certificate": None if plan.host_certificate is None else {
            "certificate": plan.host_certificate, "cert_authority": plan.cert_authority,
        },
        "machine_id": plan.machine_id,
        "hostname": plan.hostname,
        "record": None if plan.record is None else {
            "path": record_path(),
            "entry": plan.record.entry.to_json(),
            "entries": plan.record.count,
            "warning": plan.record.warning,
        },
    }


def render_plan(outcome: SeedOutcome, *, dry_run: bool, every_directory: bool = True) -> str:
    """The plan, a row per path. Without `every_directory` (the wizard's screen before its confirmation) the
    directories it creates or fixes are one line: they are the contract's skeleton, the same on every image,
    and 20 rows of them pushed the answers off the screen."""
    plan = outcome.plan
    title = "Plan (dry run, nothing written)" if dry_run else "Changes"
    lines = [f"{title} for {outcome.info.path} (persist, mounted at /persist in the VM):"]
    shown = [op for op in plan.operations
             if (dry_run or op.changes) and (every_directory or op.entry.kind != "dir")]
    width = max((len(op.entry.path) for op in shown), default=0)
    for path in plan.stale_temps:
        lines.append(f"  {'remove':<8} file {path}  temporary file left by an interrupted run")
    for op in shown:
        owner = f"{op.entry.uid}:{op.entry.gid}"
        lines.append(
            f"  {op.action:<8} {op.entry.kind:<4} {op.entry.path:<{width}}  {owner:<8} {op.entry.mode:04o}"
            + (f"  {op.summary}" if op.summary else "")
        )
    for key in plan.removed_keys:
        lines.append(f"  {'remove':<8} key  {key.describe()}")
    for key in plan.authorized_keys:  # a forced command or a restriction is shown before it is written
        if key.options:
            lines.append(f"  {'options':<8} key  {key.describe()}")
    if not every_directory and (skeleton := skeleton_words(plan)):
        lines.append(f"  directory skeleton: {skeleton} (--dry-run lists each)")
    if not plan.changes:
        lines.append("  nothing to change: the image already holds all of this")
    if plan.fetched:
        lines += ["", *render_fetched(plan.fetched)]
    return "\n".join(lines)


def skeleton_words(plan: Plan) -> str:
    """'19 directories to create, 1 to fix', or '' when the plan leaves every directory as it is."""
    counts = Counter(op.action for op in plan.operations if op.entry.kind == "dir" and op.changes)
    parts: list[str] = []
    for action, count in counts.items():
        noun = "" if parts else "directory " if count == 1 else "directories "  # the first part names them
        parts.append(f"{count} {noun}to {action}")
    return ", ".join(parts)


def render_fetched(fetched: Sequence[FetchedKeys]) -> list[str]:
    """The keys fetched from gh:/gl:/https sources: each source, where the keys came from (after redirects),
    and each key as ssh-keygen -l shows it."""
    lines = []
    for served in fetched:
        lines.append(f"SSH keys fetched from {served.source.shown} ({display_url(served.final_url)}), "
                     "each checked like a key file's line:")
        lines += [f"  {key.describe()}" for key in served.keys]
    return lines


def render_keys(plan: Plan) -> list[str]:
    """The keys that let zvm in after the plan, each with its source, and those it takes out."""
    lines = ["Authorized SSH keys for zvm:"]
    for key in plan.authorized_keys:
        source = plan.key_source(key)
        lines.append(f"  {key.describe()}" + (f", from {source}" if source else ""))
    if not plan.authorized_keys:
        lines.append("  none: zvm logs in on the console only, with the password (SSH takes keys only)")
    if plan.removed_keys:
        lines += ["Removed:", *(f"  {key.describe()}" for key in plan.removed_keys)]
    return lines


def render_summary(outcome: SeedOutcome) -> str:
    """The hand-over: keys, the host key with a known_hosts line naming the VM, machine-id, name, Netbird, the
    record. Never a secret: Netbird's setup key is said to be there, never shown."""
    plan = outcome.plan
    lines = ["", *render_keys(plan)]
    name = booted_name(plan.hostname)  # as the known_hosts line names it
    host = host_key_summary(plan.host_public_line, plan.hostname)
    if host is not None:
        lines += [
            "",
            f"Host key: {host['fingerprint']} ({host['type']})",
            f"Add this to ~/.ssh/known_hosts (replace '{name}' with the VM's address):",
            f"  {host['known_hosts']}",
        ]
    if plan.cert_authority is not None:
        lines += [
            "Or, once for every VM this host CA signs (replaces the line above):",
            f"  {plan.cert_authority}",
        ]
    if plan.machine_id:
        lines += ["", f"machine-id: {plan.machine_id}"]
    lines += ["", *summary_lines(plan), netbird_words(plan)]
    return "\n".join(lines)


def authority_lines(certificates, more_in: object) -> list[str]:
    """The `@cert-authority` lines of the host certificates a fleet run signed (report dicts, None where none
    was), each once: one for the fleet with --host-domain, else one per hostname (the first five shown)."""
    found = list(dict.fromkeys(c["cert_authority"] for c in certificates if c))
    if not found:
        return []
    lines = ["Add to ~/.ssh/known_hosts once, to trust every VM the host CA signed:", *(f"  {a}" for a in found[:5])]
    if len(found) > 5:
        lines.append(f"  ... ({len(found) - 5} more in {more_in}; with --host-domain there is one line)")
    return lines


def netbird_words(plan: Plan) -> str:
    if not plan.netbird_setup_key:
        return "Netbird: not set up (no setup key)"
    server = f"management server {plan.netbird_management_url}" if plan.netbird_management_url else (
        "Netbird's own management server")
    return f"Netbird: joins on first boot with the setup key given (not shown), {server}"


# --------------------------------------------------------------------------------------------------
# the wizard: what persist holds now


def describe_state(state: ImageState) -> list[str]:
    """What persist holds now, in words; never a secret."""
    if state.is_blank:
        return ["persist: not seeded yet (no password, no SSH key, no host key)"]
    lines = ["persist: already seeded"]
    lines.append(f"  password:  {password_words(state.password) if state.password else 'none'}")
    lines.append(f"  SSH keys:  {len(state.authorized_keys)}")
    lines += [f"    {key.describe()}" for key in state.authorized_keys]
    if state.host_public_line:
        lines.append(f"  host key:  {public_key_fingerprint(state.host_public_line)}")
    else:
        lines.append("  host key:  none")
    lines.append(f"  machine-id: {'present' if state.machine_id else 'none'}")
    lines.append(f"  hostname:  {hostname_of(state.hostname)}")
    if state.netbird_setup_key_present:
        lines.append("  Netbird:   a setup key is waiting for first boot")
    return lines


def password_words(info: PasswordInfo) -> str:
    if info.state == "set":
        return f"set, {info.algorithm}"
    if info.state == "locked":
        return "locked: key-only login"
    return "unreadable (not a valid hash)"
