"""Who may write what in an output folder: a run owns the images of its rows and its own report and passwords
files, for as long as it runs.

Shards of one roll-out share one folder (a Kubernetes PVC, an NFS mount) and run at the same time: their rows
never overlap, so they must not exclude each other, while two runs that would write the same image must. So
the lock is per file, not per folder: DIR/.zvm-provision-batch.lock is one file in which each owned file is a
one-byte POSIX record lock (fcntl, F_SETLK) at an offset derived from its name. One descriptor holds a
shard's whole slice, however many rows; record locks are what NFS (NLM, NFSv4) and CephFS carry between
machines; the kernel drops them when the process dies, so a killed run leaves nothing to clean.

Taken at the start and held to the end: the same shard twice, an unsharded run beside a sharded one, shards
of another count over the same rows, or batch-report while a shard still runs: the later one is refused
(exit 4) naming what is held. Record locks belong to a process: two runs inside one process do not exclude
each other (the command is one run per process), and closing ANY descriptor of the lock file drops all of the
process's bytes in it, so a process opens it once (batch-report merges the file lists of one folder).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
from collections.abc import Iterable
from pathlib import Path

from provision.commands.batch.model import LOCK_FILE
from provision.errors import ImageInUseError

SHOWN = 5  # held files named in the message, then a count
_OFFSET_BITS = 62  # under off_t's sign bit


def lock_offset(file_name: str) -> int:
    """The byte standing for DIR/<file_name> (case-folded: alice and Alice are one file on some systems)."""
    digest = hashlib.sha256(file_name.casefold().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - _OFFSET_BITS)


class OutputLock:
    """Hold DIR's lock bytes for `files` (names in DIR); ImageInUseError (exit 4) if another process holds any."""

    def __init__(self, out_dir: Path, files: Iterable[str], *, create: bool = True) -> None:
        self.out_dir = out_dir
        self.path = out_dir / LOCK_FILE
        self.files = list(dict.fromkeys(files))
        self.create = create  # False: a folder without a lock file was never a running batch's; hold nothing
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        flags = os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if self.create else 0)
        try:
            fd = os.open(self.path, flags, 0o600)
        except FileNotFoundError:
            if self.create:
                raise
            return self
        held = []
        try:
            for name in self.files:
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, lock_offset(name))
                except (BlockingIOError, PermissionError):  # EAGAIN or EACCES, as the system says it
                    held.append(name)
        except BaseException:
            os.close(fd)
            raise
        if held:
            os.close(fd)  # drops the bytes this run did get
            shown = ", ".join(held[:SHOWN]) + (f" and {len(held) - SHOWN} more" if len(held) > SHOWN else "")
            raise ImageInUseError(  # the lock does not say which command holds it: name every one that takes it
                f"another zvm-provision run (batch, keys or batch-report) is writing to {self.out_dir}: {shown}",
                hint="wait for it to finish, or give this run another --out-dir (shards of one roll-out never "
                "overlap: check that every shard was given the same N)",
            )
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
