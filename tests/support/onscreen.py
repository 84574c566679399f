"""What a terminal showed, read as a person reads it: the escape sequences gone and a wrapped line joined again.

The tool wraps its words to the terminal's width (ui/screen.py), so where a line breaks depends on that width and
on the paths in it (a test's temporary folder: longer under pytest-xdist's popen-gwN/, or a long TMPDIR); a suite
run under pytest-xdist saw three such sentences wrapped where a run without it did not. A test that looks for a
sentence must not care where it was wrapped."""

from __future__ import annotations

import re

ESCAPE = r"\x1b\[[0-9;?]*[A-Za-z]"
_GAP = rf"(?:\s|{ESCAPE})+"  # a space as the terminal may show it: wrapped, indented, with colour changes


def flat(text: str) -> str:
    """`text` without escape sequences, every run of whitespace (a wrap and its indent included) one space."""
    return " ".join(re.sub(ESCAPE, "", text).split())


def wrapped(sentence: str) -> str:
    """A regex for `sentence` (plain words) wherever the terminal wrapped it, for pexpect's expect."""
    return _GAP.join(re.escape(word) for word in sentence.split())
