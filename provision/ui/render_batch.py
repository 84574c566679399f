"""What batch and batch-report print: one line per user, where the report and the passwords are, which shard
a run took and from what. Never a secret.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from provision.commands.batch.model import UserStatus
from provision.ui.render import authority_lines
from provision.core.text import plural

if TYPE_CHECKING:
    from provision.commands.batch.model import BatchResult
    from provision.commands.batch.report import BatchReportResult
    from provision.core.shards import ShardChoice


def render_batch(result: BatchResult) -> str:
    lines = []
    for r in result.results:
        detail = r.error if r.status == UserStatus.FAILED else (f"made again: {r.redone}" if r.redone else "")
        lines.append(f"  {r.status:<8} {r.user.name:<24} {r.image.name}" + (f"  ({detail})" if detail else ""))
    lines.append("")
    lines.append(
        f"{result.count(UserStatus.SEEDED)} seeded, {result.count(UserStatus.SKIPPED)} already complete, "
        f"{result.count(UserStatus.FAILED)} failed in {result.seconds:.0f} s. Report: {result.report_path}"
    )
    if result.passwords_path is not None:
        lines.append(
            f"Generated passwords are in {result.passwords_path} (mode 0600): hand them over, then delete the file."
        )
    if result.options.overlay:
        lines.append(
            f"The images are overlays backed by {result.options.base.absolute()}: copy the base along with "
            "them, to the same path, and never change it."
        )
    if result.options.output.converted:
        lines.append(f"The images are {result.options.output.describe()}; {result.report_path} gives each one's "
                     "size and sha256, to check a download with sha256sum -c.")
    if result.options.shard is not None:
        lines.append(f"When every shard is done: zvm-provision batch-report {result.report_path.parent}")
    lines += authority_lines((r.host_certificate for r in result.results), result.report_path)
    return "\n".join(lines)


SHARD_SOURCES = {"kubernetes": "the Kubernetes Indexed Job", "slurm": "the Slurm job array"}


def describe_shard(choice: ShardChoice) -> str:
    """`shard 3 of 8 from the Kubernetes Indexed Job (JOB_COMPLETION_INDEX=2)`: which slice, and from what."""
    evidence = ", ".join(f"{name}={value}" for name, value in choice.evidence)
    source = SHARD_SOURCES.get(choice.source, "--shard")
    return f"shard {choice.index} of {choice.count} from {source}" + (f" ({evidence})" if evidence else "")


def render_batch_report(result: BatchReportResult) -> str:
    lines = [f"{plural(result.rows, 'row')} from {plural(result.shards, 'shard')}, each row once. "
             f"Report: {result.report_path}"]
    if result.images_checked is None:
        lines.append("The images were not checked (--no-verify): the report carries the shards' sizes and sha256 "
                     "as they recorded them.")
    else:
        lines.append(f"{plural(result.images_checked, 'image')} checked against the shards' sizes and sha256.")
    if result.unfinished:
        lines.append(f"{plural(len(result.unfinished), 'image')} not complete (run their shards again):")
        lines += [f"  {status:<11} {name}  (shard {shard} of {result.shards})"
                  for name, status, shard in result.unfinished]
    if result.passwords_path is not None:
        lines.append(f"Generated passwords are in {result.passwords_path} (mode 0600): hand them over, then delete "
                     "it" + (" and the shards' files:" if result.shard_password_files else "."))
        lines += [f"  {path}" for path in result.shard_password_files]
    if result.lacking_passwords:
        lines.append("No generated password on file for: " + ", ".join(result.lacking_passwords))
    return "\n".join(lines)
