"""Execute a plan on a mounted persist filesystem, then read every change back."""

from __future__ import annotations

from collections.abc import Callable

from provision.core.fs import StatKind, WritableFS
from provision.core.plan import Action, Operation, Plan
from provision.errors import ProvisionError


class VerificationError(ProvisionError):
    """What was written did not read back as planned."""


def apply_plan(plan: Plan, fs: WritableFS, progress: Callable[[Operation], None] | None = None) -> None:
    """Directories first, in contract order; files are staged under temporary names, synced once, then
    renamed into place, so each final name holds either the old file or the whole new one."""
    for path in plan.stale_temps:
        fs.remove(path)
    staged: list[tuple[Operation, str]] = []
    try:
        for op in plan.operations:
            if not op.changes:
                continue
            entry = op.entry
            if op.action == Action.FIX:
                fs.set_owner_mode(entry.path, entry.uid, entry.gid, entry.mode)
            elif entry.kind == StatKind.DIR:
                if op.remove_first:
                    fs.remove(entry.path)  # a link or fifo where a directory belongs; its target is untouched
                fs.make_dir(entry.path, entry.uid, entry.gid, entry.mode)
            else:
                # rename replaces a link or fifo at the final name without following it: no remove needed
                staged.append((op, fs.stage_file(entry.path, op.content_bytes(), entry.uid, entry.gid, entry.mode)))
                continue
            if progress is not None:
                progress(op)
        if staged:
            fs.sync()
        while staged:
            op, tmp = staged[0]
            fs.commit_file(tmp, op.entry.path)
            staged.pop(0)
            if progress is not None:
                progress(op)
    finally:
        for _op, tmp in staged:  # not committed: leave no temporary file behind
            fs.discard(tmp)


def verify_plan(plan: Plan, fs: WritableFS) -> None:
    """Read back kind, owner, mode and (for written files) content of every path the plan touched."""
    changed = [op for op in plan.operations if op.changes]
    stats = fs.lstat_many([*plan.stale_temps, *(op.entry.path for op in changed)])
    for path in plan.stale_temps:
        if stats[path] is not None:
            raise VerificationError(f"after removing it, {path} is still there")
    for op in changed:
        entry = op.entry
        stat = stats[entry.path]
        if stat is None or stat.kind != entry.kind:
            raise VerificationError(f"after writing, {entry.path} is {'missing' if stat is None else 'a ' + stat.kind}")
        if (stat.uid, stat.gid, stat.mode) != (entry.uid, entry.gid, entry.mode):
            raise VerificationError(
                f"after writing, {entry.path} is {stat.uid}:{stat.gid} {stat.mode:04o}, "
                f"expected {entry.uid}:{entry.gid} {entry.mode:04o}"
            )
        if entry.kind == StatKind.FILE and op.action != Action.FIX and fs.read_file(entry.path) != op.content_bytes():
            raise VerificationError(f"after writing, {entry.path} does not hold what was written")


def apply_and_verify(plan: Plan, fs: WritableFS, progress: Callable[[Operation], None] | None = None) -> None:
    """Write the plan, then read every change back: the one way a plan reaches an image."""
    apply_plan(plan, fs, progress)
    verify_plan(plan, fs)
