"""An in-memory stand-in for image.PersistFS, for planning and apply logic without the appliance.

It follows the same rules as the real one where the logic depends on them: lstat never follows the final
component, and writes refuse a symlink anywhere on the way. Every capability tested here is also tested
through the real appliance (test_seed.py, test_image.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from provision.errors import UnsafeEntryError
from provision.guest.appliance import Stat


@dataclass
class Node:
    kind: str
    uid: int = 0
    gid: int = 0
    mode: int = 0o755
    data: bytes = b""
    target: str = ""
    nlink: int = 1


@dataclass
class MemoryFS:
    nodes: dict[str, Node] = field(default_factory=lambda: {"/": Node("dir")})
    writes: list[str] = field(default_factory=list)

    # --- set-up helpers for tests
    def add_dir(self, path: str, uid: int = 0, gid: int = 0, mode: int = 0o755) -> None:
        self.nodes[path] = Node("dir", uid, gid, mode)

    def add_file(self, path: str, data: bytes, uid: int = 0, gid: int = 0, mode: int = 0o600, nlink: int = 1) -> None:
        self.nodes[path] = Node("file", uid, gid, mode, data, nlink=nlink)

    def add_symlink(self, path: str, target: str) -> None:
        self.nodes[path] = Node("symlink", mode=0o777, target=target)

    # --- the PersistFS surface
    def _check_parents(self, path: str) -> None:
        parts = path.strip("/").split("/")[:-1]
        current = ""
        for part in parts:
            current += "/" + part
            node = self.nodes.get(current)
            if node is None or node.kind != "dir":
                raise UnsafeEntryError(f"{current} is not a directory")

    def lstat(self, path: str) -> Stat | None:
        node = self.nodes.get(path)
        if node is None:
            return None
        return Stat(node.kind, node.uid, node.gid, node.mode, node.nlink, len(node.data))

    def lstat_many(self, paths: list[str]) -> dict[str, Stat | None]:
        return {path: self.lstat(path) for path in paths}

    def read_file(self, path: str, limit: int = 1 << 20) -> bytes:
        self._check_parents(path)
        node = self.nodes.get(path)
        if node is None or node.kind != "file":
            raise UnsafeEntryError(f"{path} is not a regular file")
        return node.data[: limit + 1]

    def make_dir(self, path: str, uid: int, gid: int, mode: int) -> None:
        self._check_parents(path)
        if path in self.nodes:
            raise UnsafeEntryError(f"{path} exists")
        self.nodes[path] = Node("dir", uid, gid, mode)
        self.writes.append(path)

    def set_owner_mode(self, path: str, uid: int, gid: int, mode: int) -> None:
        self._check_parents(path)
        node = self.nodes[path]
        if node.kind == "symlink":
            raise UnsafeEntryError(f"{path} is a symlink")
        node.uid, node.gid, node.mode = uid, gid, mode
        self.writes.append(path)

    def write_file(self, path: str, data: bytes, uid: int, gid: int, mode: int) -> None:
        self._check_parents(path)
        existing = self.nodes.get(path)
        if existing is not None and existing.kind == "dir":
            raise UnsafeEntryError(f"{path} is a directory")
        self.nodes[path] = Node("file", uid, gid, mode, data)
        self.writes.append(path)

    def listdir(self, path: str) -> list[str]:
        prefix = path.rstrip("/") + "/"
        return sorted(p[len(prefix):] for p in self.nodes if p.startswith(prefix) and "/" not in p[len(prefix):])

    def stage_file(self, path: str, data: bytes, uid: int, gid: int, mode: int) -> str:
        tmp = f"{path.rsplit('/', 1)[0]}/.zvm-provision.staged{len(self.nodes)}"
        self.write_file(tmp, data, uid, gid, mode)
        return tmp

    def commit_file(self, tmp: str, path: str) -> None:
        existing = self.nodes.get(path)
        if existing is not None and existing.kind == "dir":
            raise UnsafeEntryError(f"{path} is a directory")
        self.nodes[path] = self.nodes.pop(tmp)
        self.writes.append(path)

    def discard(self, tmp: str) -> None:
        self.nodes.pop(tmp, None)

    def sync(self) -> None:
        self.writes.append("<sync>")

    def remove(self, path: str) -> None:
        del self.nodes[path]
        self.writes.append(path)
