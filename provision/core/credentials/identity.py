"""The machine's identity: /etc/machine-id, unique per copy of an image."""

from __future__ import annotations

import re
import secrets

_MACHINE_ID_RE = re.compile(r"[0-9a-f]{32}\n?", re.ASCII)


def new_machine_id() -> str:
    """32 lowercase hex, unique per image (systemd forbids all zeros)."""
    while True:
        mid = secrets.token_hex(16)
        if mid.strip("0"):
            return mid


def is_valid_machine_id(text: str) -> bool:
    return bool(_MACHINE_ID_RE.fullmatch(text)) and bool(text.rstrip("\n").strip("0"))
