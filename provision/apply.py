"""Execute a plan on a mounted persist filesystem, then read every change back."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from provision.errors import ProvisionError

if TYPE_CHECKING:
    from provision.image import Stat
    from provision.plan import Operation, Plan


class WritableFS(Protocol):
    def lstat(self, path: str) -> Stat | None: ...
    def read_file(self, path: str, limit: int = ...) -> bytes: ...
    def make_dir(self, path: str, uid: int, gid: int, mode: int) -> None: ...
    def set_owner_mode(self, path: str, uid: int, gid: int, mode: int) -> None: ...
    def write_file(self, path: str, data: bytes, uid: int, gid: int, mode: int) -> None: ...
    def remove(self, path: str) -> None: ...


class VerificationError(ProvisionError):
    """What was written did not read back as planned."""


def apply_plan(plan: Plan, fs: WritableFS, progress: Callable[[Operation], None] | None = None) -> None:
    for path in plan.stale_temps:
        fs.remove(path)
    for op in plan.operations:
        if not op.changes:
            continue
        entry = op.entry
        if op.remove_first:
            fs.remove(entry.path)
        if op.action == "fix":
            fs.set_owner_mode(entry.path, entry.uid, entry.gid, entry.mode)
        elif entry.kind == "dir":
            fs.make_dir(entry.path, entry.uid, entry.gid, entry.mode)
        else:
            fs.write_file(entry.path, op.content_bytes(), entry.uid, entry.gid, entry.mode)
        if progress is not None:
            progress(op)


def verify_plan(plan: Plan, fs: WritableFS) -> None:
    """Read back kind, owner, mode and (for written files) content of every path the plan touched."""
    for path in plan.stale_temps:
        if fs.lstat(path) is not None:
            raise VerificationError(f"after removing it, {path} is still there")
    for op in plan.operations:
        entry = op.entry
        if not op.changes:
            continue
        stat = fs.lstat(entry.path)
        if stat is None or stat.kind != entry.kind:
            raise VerificationError(f"after writing, {entry.path} is {'missing' if stat is None else 'a ' + stat.kind}")
        if (stat.uid, stat.gid, stat.mode) != (entry.uid, entry.gid, entry.mode):
            raise VerificationError(
                f"after writing, {entry.path} is {stat.uid}:{stat.gid} {stat.mode:04o}, "
                f"expected {entry.uid}:{entry.gid} {entry.mode:04o}"
            )
        if entry.kind == "file" and op.action != "fix" and fs.read_file(entry.path) != op.content_bytes():
            raise VerificationError(f"after writing, {entry.path} does not hold what was written")
