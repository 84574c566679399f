"""A persist tree with more unexpected entries than inspect lists on screen, and a symlink after them all."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

CROWD_FILES = 250  # more than inspect lists on screen (MAX_LISTED)


def crowd_tarball(path: Path) -> Path:
    """/etc/aaa/ with CROWD_FILES plain files (listed, not drift), then /etc/zzz/link, a symlink the
    breadth-first walk reaches only after all of them."""
    with tarfile.open(path, "w") as tar:
        def add(name: str, kind: bytes, mode: int, data: bytes = b"", target: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.uid, info.gid, info.uname, info.gname = kind, mode, 0, 0, "root", "root"
            info.size, info.linkname = len(data), target
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("aaa", tarfile.DIRTYPE, 0o755)
        for number in range(CROWD_FILES):
            add(f"aaa/f{number:04d}", tarfile.REGTYPE, 0o644, b"x")
        add("zzz", tarfile.DIRTYPE, 0o755)
        add("zzz/link", tarfile.SYMTYPE, 0o777, target="/etc/shadow")
    return path
