"""What the core needs from a filesystem, without knowing the appliance: the kind of entry, its stat, and the
calls reading the state, walking the tree and applying a plan make. guest.persistfs.PersistFS is the one
real implementation; tests also use an in-memory one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

TEMP_PREFIX = ".zvm-provision."  # the name a file is written under before it is renamed into place


class StatKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    FIFO = "fifo"
    SOCKET = "socket"
    CHAR = "char"
    BLOCK = "block"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Stat:
    kind: StatKind
    uid: int
    gid: int
    mode: int  # permission bits & 0o7777
    nlink: int
    size: int


class ReadableFS(Protocol):
    """Enough to read the state: every path absolute inside persist; nothing is followed through a link."""

    def lstat(self, path: str) -> Stat | None: ...
    def lstat_many(self, paths: Sequence[str]) -> dict[str, Stat | None]: ...
    def read_file(self, path: str, limit: int = ...) -> bytes: ...
    def listdir(self, path: str) -> list[str]: ...


class WalkableFS(ReadableFS, Protocol):
    """Enough to walk the whole tree (inspect): a symbolic link's target is read, never followed."""

    def readlink(self, path: str) -> str: ...


class WritableFS(Protocol):
    """Enough to apply a plan and read it back: directories one level at a time, files staged under a
    temporary name, synced once, then renamed into place."""

    def lstat(self, path: str) -> Stat | None: ...
    def lstat_many(self, paths: Sequence[str]) -> dict[str, Stat | None]: ...
    def read_file(self, path: str, limit: int = ...) -> bytes: ...
    def make_dir(self, path: str, uid: int, gid: int, mode: int) -> None: ...
    def set_owner_mode(self, path: str, uid: int, gid: int, mode: int) -> None: ...
    def stage_file(self, path: str, data: bytes, uid: int, gid: int, mode: int) -> str: ...
    def commit_file(self, tmp: str, path: str) -> None: ...
    def discard(self, tmp: str) -> None: ...
    def sync(self) -> None: ...
    def remove(self, path: str) -> None: ...
