"""The run's skips, counted and grouped by reason: a skip must never hide in a green run.

A pytest plugin (tests/conftest.py loads it). At the end of every run it prints one line, `skipped: N (...)`,
naming each distinct reason with its count; with $ZVM_SKIP_LOG set it also appends the run's counts there as
one JSON line, which scripts/skipline.py turns into scripts/test.sh's closing line over all of its passes.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import pytest


def skip_reason(report: pytest.TestReport) -> str:
    """The reason a skipped report gives, without pytest's "Skipped: " prefix."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        reason = str(longrepr[2])
    else:
        reason = str(longrepr)
    return reason.removeprefix("Skipped: ").strip() or "no reason given"


def count_skips(reports: list[pytest.TestReport]) -> Counter[str]:
    # One test counts once, whether it was skipped in setup or in its call.
    seen: dict[str, str] = {}
    for report in reports:
        seen.setdefault(report.nodeid, skip_reason(report))
    return Counter(seen.values())


def skip_line(counts: Counter[str], where: str = "") -> str:
    """`skipped: N tests[ WHERE] (n because reason; ...)`, the most frequent reason first."""
    total = sum(counts.values())
    head = f"skipped: {total} test{'' if total == 1 else 's'}{' ' + where if where else ''}"
    if not total:
        return head
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return head + " (" + "; ".join(f"{n} because {reason}" for reason, n in ordered) + ")"


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller reports
        return
    counts = count_skips([r for r in terminalreporter.stats.get("skipped", []) if r.when in ("setup", "call")])
    terminalreporter.write_line(skip_line(counts))
    log = os.environ.get("ZVM_SKIP_LOG")
    if log:
        with open(log, "a", encoding="utf-8") as out:
            out.write(json.dumps(dict(counts)) + "\n")
