"""The walk over persist's whole tree (inspect): breadth-first, capped, never through a link. It reads through
core.fs.WalkableFS and gives plain data; inspection judges it against the contract."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from provision.core.fs import StatKind, WalkableFS
from provision.core.layout import Layout
from provision.core.text import shown
from provision.errors import ProvisionError

MAX_WALK_ENTRIES = 10_000
MAX_WALK_DEPTH = 32
# ext4's own directory (mkfs creates it, fsck fills it): expected, its content not examined.
FILESYSTEM_DIRS = ("/lost+found",)


@dataclass(frozen=True)
class WalkEntry:
    path: str
    kind: StatKind
    uid: int
    gid: int
    mode: int
    nlink: int
    size: int
    target: str | None = None  # a symlink's target (untrusted text)


@dataclass(frozen=True)
class Walk:
    entries: tuple[WalkEntry, ...]  # every entry below / that was visited, contract paths included
    not_examined: tuple[str, ...] = ()  # directories whose content the contract does not own (not descended)
    capped: str | None = None  # why the walk stopped early, or None
    errors: tuple[str, ...] = ()  # entries that could not be read


def _join(parent: str, name: str) -> str:
    return ("" if parent == "/" else parent) + "/" + name


def opaque_directories(layout: Layout) -> tuple[str, ...]:
    """Directories the walk does not descend into: the running system owns their content (journal, uid maps,
    Netbird's per-user state) and the contract names nothing inside them."""
    names = {e.path for e in layout.entries}
    opaque = [
        e.path for e in layout.directories
        if e.persist in ("directory", "user-directory") and not any(n.startswith(e.path + "/") for n in names)
    ]
    return tuple(opaque) + FILESYSTEM_DIRS


def walk_persist(
    fs: WalkableFS, layout: Layout, *, max_entries: int = MAX_WALK_ENTRIES, max_depth: int = MAX_WALK_DEPTH
) -> Walk:
    """Visit persist's tree breadth-first without following links; stop after `max_entries` entries or below
    `max_depth` levels, and say so."""
    opaque = set(opaque_directories(layout))
    entries: list[WalkEntry] = []
    not_examined: list[str] = []
    errors: list[str] = []
    capped: str | None = None
    too_deep: str | None = None
    queue: deque[tuple[str, int]] = deque([("/", 0)])
    while queue and capped is None:
        directory, depth = queue.popleft()
        try:
            names = fs.listdir(directory)
        except ProvisionError as exc:
            errors.append(f"{directory}: cannot list ({exc.message})")
            continue
        for name in names:
            if len(entries) >= max_entries:
                capped = f"stopped after {max_entries} entries"
                break
            path = _join(directory, name)
            try:
                stat = fs.lstat(path)
            except (ProvisionError, ValueError) as exc:
                errors.append(f"{shown(path)}: cannot stat ({getattr(exc, 'message', type(exc).__name__)})")
                continue
            if stat is None:  # vanished, or a name the appliance cannot address
                continue
            target = None
            if stat.kind == StatKind.SYMLINK:
                try:
                    target = fs.readlink(path)
                except ProvisionError:
                    target = None
            entries.append(WalkEntry(path, stat.kind, stat.uid, stat.gid, stat.mode, stat.nlink, stat.size, target))
            if stat.kind != StatKind.DIR:
                continue
            if path in opaque:
                not_examined.append(path)
            elif depth + 1 >= max_depth:
                too_deep = too_deep or f"did not descend below depth {max_depth} (first at {shown(path)})"
            else:
                queue.append((path, depth + 1))
    return Walk(tuple(entries), tuple(not_examined), capped or too_deep, tuple(errors))
