"""Text fitted to the terminal it is printed on: a line longer than the terminal is wrapped at word boundaries
(a terminal cuts it wherever the column ends: `the quest|ions`), continued with a deeper indent.

The width is the terminal's (COLUMNS first, as shutil reads it). A line meant to be copied whole (a key, a
known_hosts line, a command) is left as it is, so that a copy from the terminal takes it in one piece; so is
anything printed where no terminal reads it (a pipe, a file), for scripts that read it line by line.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from typing import TextIO

# An SSH public key's data (a key or known_hosts line), or a command to run as printed.
_COPY_WHOLE = re.compile(r"\b(?:ssh-[a-z0-9-]+|ecdsa-sha2-\S+|sk-\S+) AAAA|sha256sum -c|^\s*(?:connect with: )?ssh ")


def columns() -> int:
    return shutil.get_terminal_size(fallback=(80, 24)).columns


def fit(text: str, width: int | None = None) -> str:
    """`text` with every line longer than `width` (default: the terminal's) wrapped at spaces; a word longer
    than a line stays whole."""
    width = width or columns()
    lines: list[str] = []
    for line in text.split("\n"):
        if len(line) <= width or _COPY_WHOLE.search(line):
            lines.append(line)
            continue
        indent = len(line) - len(line.lstrip(" "))
        lines += textwrap.wrap(line, width, subsequent_indent=" " * min(indent + 2, width // 2),
                               break_long_words=False, break_on_hyphens=False) or [line]
    return "\n".join(lines)


def fit_for(stream: TextIO, text: str) -> str:
    """`text` fitted to `stream`'s terminal, or unchanged when `stream` is no terminal."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return fit(text) if tty else text
