"""The one code path that seeds an image, shared by the scripted run, the wizard and batch.

An `ImageSession` starts the appliance in a background thread as soon as the image header has been checked,
so hashing a password or answering the wizard overlaps the launch (about 15 s under TCG). The persist
partition is first mounted read-only to read its state; it is mounted read-write only when the plan changes
something, so a refused or empty run leaves the image exactly as it was.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from provision.apply import apply_and_verify
from provision.layout import load_layout
from provision.plan import FreshMaterial, Plan, build_plan
from provision.state import ImageState, read_state

if TYPE_CHECKING:
    from collections.abc import Callable

    from provision.diskformat import ImageInfo
    from provision.image import Appliance, Partition
    from provision.plan import Operation
    from provision.request import SeedRequest


class ImageSession:
    """One image in one appliance, launched in the background."""

    def __init__(self, info: ImageInfo, *, readonly: bool, accel: str) -> None:
        from provision.image import Appliance

        self.info = info
        self.readonly = readonly
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
        with writes_finish_before_ctrl_c():
            with self.appliance.mount_persist(0, writable=True) as fs:
                apply_and_verify(plan, fs, progress)

    def close(self) -> None:
        """Shut the appliance down cleanly (its error is raised: the image may be incomplete)."""
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()
        self.appliance.close()

    def __enter__(self) -> ImageSession:
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        from provision.image import close_keeping_the_cause

        close_keeping_the_cause(self.close, exc)


@contextmanager
def writes_finish_before_ctrl_c() -> Iterator[None]:
    """A first Ctrl-C while the plan is being written lets the writes finish (a second or so), then stops:
    the image holds the old state or the whole new one, never half a seeding. A second Ctrl-C stops at once
    (every file is still written under a temporary name and renamed, so no file is ever half written)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    interrupted = False

    def on_sigint(_signum: int, _frame: object) -> None:
        nonlocal interrupted
        if interrupted:
            raise KeyboardInterrupt
        interrupted = True
        print("\nzvm-provision: finishing the writes already begun; Ctrl-C again to stop at once",
              file=sys.stderr, flush=True)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if interrupted:
        raise KeyboardInterrupt


@dataclass(frozen=True)
class SeedOutcome:
    info: ImageInfo
    plan: Plan
    applied: bool  # False for a dry run or when nothing needed changing


def fresh_material() -> FreshMaterial:
    from provision.credentials import generate_host_key, new_machine_id

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
