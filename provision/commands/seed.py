"""The one code path that seeds an image, shared by the scripted run, the wizard and batch.

An `ImageSession` starts the appliance in a background thread as soon as the image header has been checked,
so hashing a password or answering the wizard overlaps the launch (about 15 s under TCG). The persist
partition is first mounted read-only to read its state; it is mounted read-write only when the plan changes
something, so a refused or empty run leaves the image exactly as it was.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provision.core.apply import apply_and_verify
from provision.errors import StoppedWhileWriting
from provision.core.layout import load_layout
from provision.core.plan import FreshMaterial, Plan, build_plan
from provision.core.state import ImageState, read_state

if TYPE_CHECKING:
    from provision.guest.diskformat import ImageInfo
    from provision.guest.appliance import Appliance, Partition
    from provision.core.plan import Operation
    from provision.core.request import SeedRequest


class ImageSession:
    """One image in one appliance, launched in the background."""

    def __init__(
        self, info: ImageInfo, *, readonly: bool, accel: str, ctrl_c: CtrlCWhileWriting | None = None
    ) -> None:
        from provision.guest.appliance import Appliance

        self.info = info
        self.readonly = readonly
        # The command passes its own, kept until its summary is printed; otherwise the session's ends with it.
        self._own_ctrl_c = ctrl_c is None
        self.ctrl_c = ctrl_c if ctrl_c is not None else CtrlCWhileWriting()
        self.appliance: Appliance = Appliance([info], readonly=readonly, accel=accel)
        self._launch_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self._state: ImageState | None = None
        self.persist: Partition | None = None

    def start(self) -> ImageSession:
        self._thread = threading.Thread(target=self._launch, name="appliance-launch", daemon=True)
        self._thread.start()
        return self

    def _launch(self) -> None:
        try:
            self.appliance.launch()
        except BaseException as exc:  # handed to the main thread in wait()
            self._launch_error = exc

    def wait(self) -> None:
        """Block until the appliance is up; re-raise its launch error here, in the caller's thread."""
        if self._thread is None:
            self.start()
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.2)  # short joins keep Ctrl-C responsive
        if self._launch_error is not None:
            raise self._launch_error
        if self.persist is None:
            self.persist = self.appliance.find_persist(0)

    def read_state(self) -> ImageState:
        if self._state is None:
            self.wait()
            with self.appliance.mount_persist(0, writable=False) as fs:
                self._state = read_state(fs, load_layout())
        return self._state

    def apply(self, plan: Plan, progress: Callable[[Operation], None] | None = None) -> None:
        self.wait()
        self.ctrl_c.writes_begin()
        with self.appliance.mount_persist(0, writable=True) as fs:
            apply_and_verify(plan, fs, _held_after_first_write(progress))

    def close(self) -> None:
        """Shut the appliance down cleanly (its error is raised: the image may be incomplete)."""
        try:
            if self._thread is not None and self._thread.is_alive():
                # libguestfs cannot stop a launch half-way: let it end, then shut the appliance down
                print("zvm-provision: waiting for the appliance to finish starting, to shut it down cleanly…",
                      file=sys.stderr, flush=True)
                self._thread.join()
            self.appliance.close()
        finally:
            if self._own_ctrl_c:
                self.ctrl_c.end()

    def __enter__(self) -> ImageSession:
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        from provision.guest.appliance import close_keeping_the_cause

        close_keeping_the_cause(self.close, exc)


HOLD_WRITES_ENV = "ZVM_PROVISION_TEST_HOLD_WRITES"  # tests only, see _held_after_first_write


Progress = Callable[["Operation"], None]


def _held_after_first_write(progress: Progress | None) -> Progress | None:
    """For tests of Ctrl-C during the writes, and nothing else: when HOLD_WRITES_ENV names a folder, the run
    creates `writing` in it right after its first write, then waits (10 minutes at most) until `resume`
    appears there. Without the variable the writes run straight through."""
    folder = os.environ.get(HOLD_WRITES_ENV)
    if not folder:
        return progress
    held = False

    def progress_then_hold(op: Operation) -> None:
        nonlocal held
        if progress is not None:
            progress(op)
        if held:
            return
        held = True
        Path(folder, "writing").touch()
        deadline = time.monotonic() + 600
        while not Path(folder, "resume").exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # a Ctrl-C's handler runs here, as it would between two real writes

    return progress_then_hold


class CtrlCWhileWriting:
    """What Ctrl-C means once the writes have begun.

    Before `writes_begin()`, Ctrl-C keeps Python's meaning: the run stops at once, and nothing was written.
    From then until `end()` (the seed command ends it after printing its summary), a first Ctrl-C lets the
    writes finish (a second or so) and is only noted in `interrupted`: the image holds the old state or the
    whole new one, never half a seeding, and the command can say that the image was seeded, hand over its
    summary, and exit 130. A second Ctrl-C stops at once (StoppedWhileWriting): every file is still written
    under a temporary name and renamed, so none is ever half written. Only the main thread handles signals;
    elsewhere this does nothing.
    """

    def __init__(self) -> None:
        self.interrupted = False
        self._previous: Any = None
        self._active = False

    def writes_begin(self) -> None:
        if self._active or threading.current_thread() is not threading.main_thread():
            return
        self._previous = signal.signal(signal.SIGINT, self._on_sigint)
        self._active = True

    def end(self) -> None:
        if self._active:
            signal.signal(signal.SIGINT, self._previous)
            self._active = False

    def __enter__(self) -> CtrlCWhileWriting:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    def _on_sigint(self, _signum: int, _frame: object) -> None:
        if self.interrupted:
            raise StoppedWhileWriting(
                "stopped at once by a second Ctrl-C while writing: every file in the image is either as it was "
                "or whole (each is written under a temporary name, then renamed); "
                "run the same command again to finish seeding it"
            )
        self.interrupted = True
        print("\nzvm-provision: Ctrl-C: finishing the writes already begun (a second or so); "
              "Ctrl-C again to stop at once", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SeedOutcome:
    info: ImageInfo
    plan: Plan
    applied: bool  # False for a dry run or when nothing needed changing


def fresh_material() -> FreshMaterial:
    from provision.core.credentials import generate_host_key, new_machine_id

    return FreshMaterial(host_key=generate_host_key(), machine_id=new_machine_id())


def plan_seed(session: ImageSession, request: SeedRequest) -> Plan:
    return build_plan(request, session.read_state(), load_layout(), fresh_material())


def run_seed(
    session: ImageSession,
    request: SeedRequest,
    *,
    dry_run: bool,
    progress: Callable[[Operation], None] | None = None,
) -> SeedOutcome:
    return apply_planned(session, plan_seed(session, request), dry_run=dry_run, progress=progress)


def apply_planned(
    session: ImageSession,
    plan: Plan,
    *,
    dry_run: bool,
    progress: Callable[[Operation], None] | None = None,
) -> SeedOutcome:
    """Apply a plan already made (and shown: the wizard's summary), so its random host key is the one written."""
    applied = False
    if not dry_run and plan.changes:
        session.apply(plan, progress)
        applied = True
    return SeedOutcome(session.info, plan, applied)
