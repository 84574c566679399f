"""An in-memory stand-in for guest.persistfs.PersistFS, for planning, applying and walking without the appliance.

It follows the real one's rules wherever a plan or a report depends on them:
- lstat (and lstat_many) never follows the final component, but looks through a symbolic link on the way, as
  the appliance's kernel does (an absolute target is read from persist's root);
- every other call checks each ancestor first: a missing one, a link or a file on the way is refused;
- make_dir keeps an existing real directory (and gives it the owner and mode); remove of an absent entry does
  nothing; files are staged under a temporary name (fs.TEMP_PREFIX) and renamed into place.
Every capability tested with it is also tested through the real appliance (tests/commands, tests/guest).
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from provision.core.fs import TEMP_PREFIX, Stat, StatKind
from provision.errors import UnsafeEntryError

_MAX_LINKS = 40  # as Linux's MAXSYMLINKS


@dataclass
class Node:
    kind: StatKind
    uid: int = 0
    gid: int = 0
    mode: int = 0o755
    data: bytes = b""
    target: str = ""
    nlink: int = 1


def _parent_and_name(path: str) -> tuple[str, str]:
    parent, name = posixpath.split(path)
    return parent or "/", name


@dataclass
class MemoryFS:
    nodes: dict[str, Node] = field(default_factory=lambda: {"/": Node(StatKind.DIR)})
    writes: list[str] = field(default_factory=list)
    _staged: int = 0

    # --- set-up helpers for tests

    def add_dir(self, path: str, uid: int = 0, gid: int = 0, mode: int = 0o755) -> None:
        self.nodes[path] = Node(StatKind.DIR, uid, gid, mode)

    def add_file(self, path: str, data: bytes, uid: int = 0, gid: int = 0, mode: int = 0o600, nlink: int = 1) -> None:
        self.nodes[path] = Node(StatKind.FILE, uid, gid, mode, data, nlink=nlink)

    def add_symlink(self, path: str, target: str) -> None:
        self.nodes[path] = Node(StatKind.SYMLINK, mode=0o777, target=target)

    # --- path resolution

    def _real_directory(self, path: str, hops: int = 0) -> str | None:
        """Where `path` leads when every component is followed (a symlinked directory included), or None when
        it is missing or not a directory on the way."""
        current = "/"
        for part in [p for p in path.split("/") if p]:
            candidate = posixpath.join(current, part)
            node = self.nodes.get(candidate)
            if node is not None and node.kind == StatKind.SYMLINK:
                if hops >= _MAX_LINKS:
                    return None
                target = node.target if node.target.startswith("/") else posixpath.join(current, node.target)
                resolved = self._real_directory(posixpath.normpath(target), hops + 1)
                if resolved is None:
                    return None
                candidate, node = resolved, self.nodes.get(resolved)
            if node is None or node.kind != StatKind.DIR:
                return None
            current = candidate
        return current

    def _checked(self, path: str) -> Node | None:
        """PersistFS's check before every call but lstat: each ancestor a real directory, no link on the way."""
        current = ""
        for part in [p for p in path.split("/") if p][:-1]:
            current += "/" + part
            node = self.nodes.get(current)
            if node is None:
                raise UnsafeEntryError(f"persist:{current} does not exist (needed for persist:{path})")
            if node.kind == StatKind.SYMLINK:
                raise UnsafeEntryError(f"persist:{current} is a symbolic link; refusing to follow it")
            if node.kind != StatKind.DIR:
                raise UnsafeEntryError(f"persist:{current} is a {node.kind} where a directory is expected")
        return self.nodes.get(path)

    # --- reading (ReadableFS, WalkableFS)

    def lstat(self, path: str) -> Stat | None:
        if path == "/":
            node = self.nodes["/"]
        else:
            parent, name = _parent_and_name(path)
            real_parent = self._real_directory(parent)
            node = None if real_parent is None else self.nodes.get(posixpath.join(real_parent, name))
        if node is None:
            return None
        return Stat(node.kind, node.uid, node.gid, node.mode, node.nlink, len(node.data))

    def lstat_many(self, paths: Sequence[str]) -> dict[str, Stat | None]:
        return {path: self.lstat(path) for path in paths}

    def read_file(self, path: str, limit: int = 1 << 20) -> bytes:
        node = self._checked(path)
        if node is None or node.kind != StatKind.FILE:
            raise UnsafeEntryError(f"persist:{path} is not a regular file")
        if len(node.data) > limit:
            raise UnsafeEntryError(f"persist:{path} is {len(node.data)} bytes, more than the {limit} expected")
        return node.data

    def readlink(self, path: str) -> str:
        node = self._checked(path)
        if node is None or node.kind != StatKind.SYMLINK:
            raise UnsafeEntryError(f"persist:{path} is not a symbolic link")
        return node.target

    def listdir(self, path: str) -> list[str]:
        node = self._checked(path)
        if node is None or node.kind != StatKind.DIR:
            raise UnsafeEntryError(f"persist:{path} is not a directory")
        prefix = "/" if path == "/" else path + "/"
        return sorted(p[len(prefix):] for p in self.nodes if p.startswith(prefix) and p != path
                      and "/" not in p[len(prefix):])

    # --- writing (WritableFS)

    def make_dir(self, path: str, uid: int, gid: int, mode: int) -> None:
        node = self._checked(path)
        if node is not None and node.kind != StatKind.DIR:
            raise UnsafeEntryError(f"persist:{path} is a {node.kind} where a directory is expected")
        if node is None:
            node = self.nodes[path] = Node(StatKind.DIR, mode=0o700)
        node.uid, node.gid, node.mode = uid, gid, mode
        self.writes.append(path)

    def set_owner_mode(self, path: str, uid: int, gid: int, mode: int) -> None:
        node = self._checked(path)
        if node is None:
            raise UnsafeEntryError(f"persist:{path} does not exist")
        if node.kind == StatKind.SYMLINK:
            raise UnsafeEntryError(f"persist:{path} is a symbolic link; refusing to follow it")
        node.uid, node.gid, node.mode = uid, gid, mode
        self.writes.append(path)

    def _check_file_target(self, path: str) -> None:
        node = self._checked(path)
        if node is not None and node.kind == StatKind.DIR:
            raise UnsafeEntryError(f"persist:{path} is a directory where a file is expected")

    def stage_file(self, path: str, data: bytes, uid: int, gid: int, mode: int) -> str:
        self._check_file_target(path)
        self._staged += 1
        tmp = f"{_parent_and_name(path)[0].rstrip('/')}/{TEMP_PREFIX}staged{self._staged}"
        self.nodes[tmp] = Node(StatKind.FILE, uid, gid, mode, data)
        return tmp

    def commit_file(self, tmp: str, path: str) -> None:
        self._check_file_target(path)
        self.nodes[path] = self.nodes.pop(tmp)  # rename(2): whatever is at `path` (not a directory) is replaced
        self.writes.append(path)

    def write_file(self, path: str, data: bytes, uid: int, gid: int, mode: int) -> None:
        self.commit_file(self.stage_file(path, data, uid, gid, mode), path)

    def discard(self, tmp: str) -> None:
        self.nodes.pop(tmp, None)

    def sync(self) -> None:
        self.writes.append("<sync>")

    def remove(self, path: str) -> None:
        node = self._checked(path)
        if node is None:
            return
        if node.kind == StatKind.DIR:
            raise UnsafeEntryError(f"persist:{path} is a directory; remove_tree removes directories")
        del self.nodes[path]
        self.writes.append(path)
