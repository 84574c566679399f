#!/usr/bin/env python3
"""scripts/test.sh's closing line: how many tests its pytest passes skipped, and why, grouped by reason.

Usage: skipline.py LOG. LOG holds one JSON object per pytest run ({reason: count}), written by
tests/support/skipsummary.py; a missing or empty LOG means no pass got as far as its summary.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.skipsummary import skip_line  # noqa: E402  (the same words as each run's own line)


def closing_line(text: str) -> str:
    counts: Counter[str] = Counter()
    runs = 0
    for line in text.splitlines():
        if line.strip():
            runs += 1
            counts.update(json.loads(line))
    if not runs:
        return "skipped: unknown (no test run reached its summary)"
    return skip_line(counts, f"over {runs} pytest run{'s' if runs != 1 else ''}")


def main(argv: list[str]) -> int:
    path = Path(argv[1])
    print(closing_line(path.read_text(encoding="utf-8") if path.exists() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
