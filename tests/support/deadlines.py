"""Deadline tests that hold on a busy machine.

A test of a fetch deadline needs the client to reach the server before its deadline, and on a loaded host a
1-second deadline can pass before the client has even connected: the test then proves nothing, or fails.
`first_cut` retries with longer deadlines until the server saw an attempt's connection and then saw it
cut, so a slow host costs time, never the verdict; what is asserted is what the code did (the deadline error, the connection cut),
never how long it took.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Attempt = TypeVar("Attempt")

DEADLINES = (1, 2, 4)  # seconds: a quiet host needs the first; the last is generous on the side that cannot miss
# A server that never answers has no trickle for a deadline to outlast: room for a host loaded far more (the full
# suite beside an appliance launch missed 1, 2 and 4 s in a row). A quiet host still needs only the first.
SILENT_DEADLINES = (1, 2, 4, 8, 16, 32)
CUT_WITHIN = 30.0  # seconds for the server to see a hang-up that has happened: returns at once when it did


def first_cut(attempt: Callable[[float], Attempt], cut: Callable[[Attempt], bool],
              deadlines: tuple[float, ...] = DEADLINES) -> Attempt:
    """Call `attempt(deadline)` for each deadline in turn (each sets up its own server state and asserts the
    deadline error) until `cut(result)`: the server saw that attempt's connection and then saw the client hang
    up. An attempt whose client never got to the server is retried; one that did and was not cut fails."""
    for deadline in deadlines:
        result = attempt(deadline)
        if cut(result):
            return result
    raise AssertionError(f"with deadlines of {deadlines} seconds, the server never saw a connection cut")
