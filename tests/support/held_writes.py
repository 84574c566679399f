"""The real zvm-provision command, held after its first write: for tests of Ctrl-C during the writes.

    python -m tests.support.held_writes ARGS...     (with ZVM_PROVISION_TEST_HOLD_WRITES=FOLDER)

Landing a signal inside the writes needs a slow point there. This runs the command as `python -m provision`
does, except that right after its first write it creates `writing` in FOLDER, then waits (10 minutes at most)
until `resume` appears there; a Ctrl-C's handler runs during that wait, as it would between two real writes.
The product itself carries no such hook: this wraps core.apply.apply_plan, the one way a plan is written.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from provision.core import apply
from provision.core.fs import WritableFS
from provision.core.plan import Operation, Plan

HOLD_WRITES_ENV = "ZVM_PROVISION_TEST_HOLD_WRITES"


def hold_after_first_write(folder: Path) -> None:
    original = apply.apply_plan

    def apply_plan(plan: Plan, fs: WritableFS, progress: Callable[[Operation], None] | None = None) -> None:
        held = False

        def progress_then_hold(op: Operation) -> None:
            nonlocal held
            if progress is not None:
                progress(op)
            if held:
                return
            held = True
            (folder / "writing").touch()
            deadline = time.monotonic() + 600
            while not (folder / "resume").exists() and time.monotonic() < deadline:
                time.sleep(0.05)

        original(plan, fs, progress_then_hold)

    apply.apply_plan = apply_plan


if __name__ == "__main__":
    hold_after_first_write(Path(os.environ[HOLD_WRITES_ENV]))
    from provision.cli import main

    sys.argv[0] = "zvm-provision"
    main(sys.argv[1:])
