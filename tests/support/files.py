"""Files on the host, as the tests compare and copy them."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def sha256(path: Path) -> str:
    """The file's sha256, read in chunks (disk images are too big to read at once)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def copy_disk(src: Path, dst: Path) -> Path:
    """An independent copy of a (sparse) disk image, cheap."""
    subprocess.run(["cp", "--sparse=always", str(src), str(dst)], check=True)
    return dst
