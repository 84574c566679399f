"""A live line on the terminal while the appliance starts: what is happening, and for how many seconds.

rich draws it on stderr and erases it when the appliance is up. The caller decides whether to show it:
only on a terminal, never with --json (`wanted`).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

STARTING = "Starting the libguestfs appliance"


def wanted(*, json_out: bool) -> bool:
    return not json_out and sys.stderr.isatty()


@contextmanager
def appliance_starting(*, since: float | None = None) -> Iterator[None]:
    """While the block runs, `Starting the libguestfs appliance… 12 s`, counted from `since` (monotonic)."""
    from rich.console import Console  # lazily: --help stays fast

    started = time.monotonic() if since is None else since

    class Elapsed:
        def __rich__(self) -> str:  # drawn again on every refresh, so the seconds go on
            return f"{STARTING}… {time.monotonic() - started:.0f} s"

    with Console(stderr=True, highlight=False).status(Elapsed()):
        yield
