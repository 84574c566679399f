#!/usr/bin/env python3
"""The score of a mutmut run, per module: killed / (mutants checked), and every survivor named.

Reads `mutmut results --all True` (run from the repository root after scripts/mutation.sh's `mutmut run`).
A mutant that timed out or was caught otherwise counts as killed; one with no covering test counts as
survived (nothing would notice it); a mutant never checked is left out and counted apart.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

LINE = re.compile(r"^\s*(?P<name>\S+?): (?P<status>.+)$")
KILLED = {"killed", "timeout", "caught by type check", "segfault"}
UNCHECKED = {"not checked", "skipped", "check was interrupted by user"}


def module_of(name: str) -> str:
    """provision.core.shards.x_choose_shard__mutmut_3 -> provision.core.shards (methods: xǁClassǁmethod)."""
    return re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]


def scores(text: str) -> tuple[dict[str, list[int]], dict[str, list[str]], int]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # module -> [killed, checked]
    survivors: dict[str, list[str]] = defaultdict(list)
    unchecked = 0
    for line in text.splitlines():
        match = LINE.match(line)
        if match is None:
            continue
        name, status = match["name"], match["status"].strip()
        if status in UNCHECKED:
            unchecked += 1
            continue
        module = module_of(name)
        counts[module][1] += 1
        if status in KILLED:
            counts[module][0] += 1
        else:
            survivors[module].append(f"{name} ({status})")
    return dict(counts), dict(survivors), unchecked


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([str(root / ".venv" / "bin" / "mutmut"), "results", "--all", "True"], cwd=root,
                          capture_output=True, text=True, check=True)
    counts, survivors, unchecked = scores(done.stdout)
    for module, (killed, checked) in sorted(counts.items()):
        print(f"{module}: {killed}/{checked} killed ({100 * killed / checked:.0f}%)")
        for survivor in survivors.get(module, []):
            print(f"    survived: {survivor}")
    if unchecked:
        print(f"({unchecked} mutants not checked)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
