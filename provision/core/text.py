"""Small text helpers every layer shares: untrusted text made safe to show, sizes, one-line values, plurals."""

from __future__ import annotations

import re

from provision.errors import UsageError

# Everything str.splitlines() splits at: a value that must be one line holds none of them.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def shown(text: str, cap: int = 200) -> str:
    """Untrusted text (from an image, or qemu's output), safe for a terminal: control characters escaped,
    length capped."""
    text = text if len(text) <= cap else text[:cap] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def human_size(size: int) -> str:
    """1536 -> '1.5 KiB', 20 << 30 -> '20 GiB'."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" or value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_size(text: str) -> int:
    """'20G' -> bytes. Binary units K, M, G, T (an optional B or iB is allowed); a bare number is bytes."""
    match = _SIZE_RE.match(text or "")
    if not match:
        raise UsageError(f"not a size: {text!r} (use a number with K, M, G or T, e.g. 20G)")
    value = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if value <= 0:
        raise UsageError(f"the size must be more than zero, not {text!r}")
    return value


def one_line(text: str, what: str, *, breaks: str = LINE_BREAKS) -> str:
    """`text` without one trailing newline (\\n or \\r\\n, what NixOS's chomp removes); any other of `breaks`
    left in it is refused: `what` must be exactly one line."""
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if any(c in text for c in breaks):
        raise UsageError(f"{what} must be exactly one line")
    return text


def plural(count: int, word: str) -> str:
    """'1 key', '2 keys'."""
    return f"{count} {word}{'' if count == 1 else 's'}"
