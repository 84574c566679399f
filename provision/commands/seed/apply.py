"""`zvm-provision IMAGE`: the one code path that seeds an image, shared by the scripted run, the wizard and batch.

A request is planned against what the image holds now (read through a read-only mount), and the plan is
applied and read back only when it changes something. The wizard plans, shows the plan, confirms, and the
very plan shown is applied (`apply_planned`), so the host key fingerprint shown is the one that lands.
"""

from __future__ import annotations

import secrets
import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from provision.commands.flagwords import lockout_message, missing_flags_message
from provision.core.access import LockedOut
from provision.core.credentials.hostkeys import generate_host_key
from provision.core.credentials.identity import new_machine_id
from provision.core.disk import ImageInfo
from provision.core.outputformat import OutputRecord
from provision.core.layout import load_layout
from provision.core.plan import FreshMaterial, Operation, Plan, build_plan
from provision.core.request import SeedFlags, SeedRequest, missing_flags
from provision.core.state import ImageState
from provision.errors import StoppedWhileWriting, UsageError
from provision.guest.launch import Accel, Notice
from provision.guest.session import ImageSession

Progress = Callable[[Operation], None]

FINISHING_THE_WRITES = ("\nzvm-provision: Ctrl-C: finishing the writes already begun (a second or so); "
                        "Ctrl-C again to stop at once")


class SeedTarget(Protocol):
    """What seeding needs of an image: a guest.session.ImageSession, or one disk of batch's shared appliance."""

    info: ImageInfo

    def read_state(self) -> ImageState: ...
    def apply(self, plan: Plan, progress: Progress | None = None) -> None: ...


class CtrlCWhileWriting:
    """What Ctrl-C means once the writes have begun.

    Before `writes_begin()`, Ctrl-C keeps Python's meaning: the run stops at once, and nothing was written.
    From then until `end()` (the seed command ends it after printing its summary), a first Ctrl-C lets the
    writes finish (a second or so) and is only noted in `interrupted`: the image holds the old state or the
    whole new one, never half a seeding, and the command can say that the image was seeded, hand over its
    summary, and exit 130. A second Ctrl-C stops at once (StoppedWhileWriting): every file is still written
    under a temporary name and renamed, so none is ever half written. Only the main thread handles signals;
    elsewhere this does nothing. `notice` (ui's) says so at the first Ctrl-C, at once.
    """

    def __init__(self, notice: Notice | None = None) -> None:
        self.notice = notice
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

    def _on_sigint(self, _signum: int, _frame: FrameType | None) -> None:
        if self.interrupted:
            raise StoppedWhileWriting(
                "stopped at once by a second Ctrl-C while writing: every file in the image is either as it was "
                "or whole (each is written under a temporary name, then renamed); "
                "run the same command again to finish seeding it"
            )
        self.interrupted = True
        if self.notice is not None:
            self.notice(FINISHING_THE_WRITES)


@dataclass(frozen=True)
class SeedOutcome:
    info: ImageInfo
    plan: Plan
    applied: bool  # False for a dry run or when nothing needed changing
    source: Path | None = None  # --output: the image it was made from (left unchanged); `info` is the new one
    output: OutputRecord | None = None  # --output: what a recipient verifies the new image against


def fresh_material() -> FreshMaterial:
    from provision import __version__

    # a host certificate's serial: random 63 bits, so that no two certificates of a fleet share one
    return FreshMaterial(host_key=generate_host_key(), machine_id=new_machine_id(), now=datetime.now(UTC),
                         tool_version=__version__, cert_serial=secrets.randbits(63) or 1)


def plan_seed(target: SeedTarget, request: SeedRequest) -> Plan:
    state = target.read_state()
    try:
        return build_plan(request, state, load_layout(), fresh_material())
    except LockedOut as refusal:  # core says what is refused; the words name seed's flags
        raise UsageError(lockout_message(refusal)) from None


def run_seed(target: SeedTarget, request: SeedRequest, *, dry_run: bool, progress: Progress | None = None) -> SeedOutcome:
    return apply_planned(target, plan_seed(target, request), dry_run=dry_run, progress=progress)


def apply_planned(target: SeedTarget, plan: Plan, *, dry_run: bool, progress: Progress | None = None) -> SeedOutcome:
    """Apply a plan already made (and shown: the wizard's summary), so its random host key is the one written."""
    applied = False
    if not dry_run and plan.changes:
        target.apply(plan, progress)
        applied = True
    return SeedOutcome(target.info, plan, applied)


def seed_image(
    info: ImageInfo,
    flags: SeedFlags,
    *,
    dry_run: bool,
    accel: Accel,
    ctrl_c: CtrlCWhileWriting,
    ask: Callable[[ImageSession], Plan] | None = None,
    waiting: Callable[[], AbstractContextManager[Any]] = nullcontext,
    label: str | None = None,
    notice: Notice | None = None,
) -> SeedOutcome:
    """Seed one image (read-only with `dry_run`). `ask` (the wizard) asks what the flags left open, shows its
    plan and confirms; without it the flags must say enough, and `waiting` is shown while the appliance
    starts. `label` is how the wizard names the image it writes (--output: the new file, not the working
    overlay). `notice` (ui's) is told what the appliance's launch says as it happens. The appliance is shut down
    cleanly before this returns."""
    with ImageSession(info, readonly=dry_run, accel=accel, writes_guard=ctrl_c, label=label,
                      notice=notice).start() as session:
        if ask is not None:
            plan = ask(session)
        else:
            request = flags.to_request()  # hashing overlaps the appliance launch
            with waiting():
                session.wait()
            missing = missing_flags(flags, session.read_state())
            if missing:
                raise UsageError(missing_flags_message(missing, image_read=True))
            plan = plan_seed(session, request)
        return apply_planned(session, plan, dry_run=dry_run)
