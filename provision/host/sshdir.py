"""The person's ~/.ssh, for the wizard: the public keys it offers, the one ticked at first, and where a new
key pair may go without replacing one."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from provision.core.credentials.sshkeys import AuthorizedKey
from provision.errors import UsageError
from provision.host.reading import read_key_files


def find_local_public_keys(home: Path) -> list[tuple[Path, AuthorizedKey]]:
    """The keys in ~/.ssh/*.pub that parse; unreadable or odd files are skipped (a path can be given)."""
    found: list[tuple[Path, AuthorizedKey]] = []
    ssh_dir = home / ".ssh"
    if not ssh_dir.is_dir():
        return found
    for path in sorted(ssh_dir.glob("*.pub")):
        try:
            keys = read_key_files([path])
        except UsageError:
            continue
        if len(keys) == 1:  # a .pub holds one key; anything else is not what the checklist offers
            found.append((path, keys[0]))
    return found


def default_key(found: Sequence[tuple[Path, AuthorizedKey]]) -> Path | None:
    """The key ticked at first: ~/.ssh/id_ed25519.pub (ssh-keygen's default) if offered, else the newest .pub."""
    paths = [path for path, _ in found]
    for path in paths:
        if path.name == "id_ed25519.pub":
            return path
    newest = None
    for path in paths:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        if newest is None or mtime > newest[0]:
            newest = (mtime, path)
    return newest[1] if newest else None


def free_key_path(home: Path) -> Path:
    """Where a new key pair goes: ~/.ssh/zvm_ed25519, or _2, _3... when taken."""
    base = home / ".ssh" / "zvm_ed25519"
    candidate, n = base, 2
    while os.path.lexists(candidate) or os.path.lexists(f"{candidate}.pub"):
        candidate, n = base.with_name(f"{base.name}_{n}"), n + 1
    return candidate
