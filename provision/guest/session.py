"""One image in one appliance, launched in the background: what the seed command, the wizard and inspect open.

The appliance starts in a thread as soon as the image header has been checked, so hashing a password or
answering the wizard overlaps the launch (about 15 s under TCG). The persist partition is first mounted
read-only to read its state; it is mounted read-write only when a plan changes something, so a refused or
empty run leaves the image exactly as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol

from provision.core.apply import apply_and_verify
from provision.core.disk import ImageInfo, Partition
from provision.core.layout import load_layout
from provision.core.plan import Operation, Plan
from provision.core.state import ImageState, read_state
from provision.guest.appliance import Appliance, close_keeping_the_cause
from provision.guest.launch import Accel, Notice


STOPPING_THE_LAUNCH = (
    "zvm-provision: the appliance was still starting and nothing was written: stopping it now, waiting a second "
    "or so for its qemu to end; another Ctrl-C changes nothing"
)


class WritesGuard(Protocol):
    """Told when the first write is about to happen (the seed command's Ctrl-C policy changes then)."""

    def writes_begin(self) -> None: ...


class ImageSession:
    """One image in one appliance, launched in the background."""

    def __init__(
        self, info: ImageInfo, *, readonly: bool, accel: Accel, writes_guard: WritesGuard | None = None,
        label: str | None = None, notice: Notice | None = None,
    ) -> None:
        self.info = info
        self.label = label or str(info.path)  # what a person is told is written (seed --output: the new file)
        self.readonly = readonly
        self.writes_guard = writes_guard
        self.notice = notice  # told that a launch is being stopped, and of a fallback to TCG
        self.appliance = Appliance([info], readonly=readonly, accel=accel, notice=notice)
        self._launch_error: BaseException | None = None
        self._thread: threading.Thread | None = None
        # Set when the launch thread has left libguestfs. Waited on instead of Thread.join: on CPython 3.11 a
        # join that Ctrl-C interrupts marks the thread stopped while it still runs (threading's bpo-45274
        # handling), and the process then left while the launch was inside libguestfs: "double free", exit 134.
        self._launch_ended = threading.Event()
        self._state: ImageState | None = None
        self.persist: Partition | None = None

    def start(self) -> ImageSession:
        # Not a daemon: the interpreter must never exit while this thread is inside libguestfs (libguestfs's
        # exit handler would free the handle under the launch). close() stops the launch and waits for it; this
        # is a backstop should a Ctrl-C land before close() runs.
        self._thread = threading.Thread(target=self._launch, name="appliance-launch")
        self._thread.start()
        return self

    def _launch(self) -> None:
        try:
            self.appliance.launch()
        except BaseException as exc:  # handed to the main thread in wait()
            self._launch_error = exc
        finally:
            self._launch_ended.set()

    def wait(self) -> None:
        """Block until the appliance is up; re-raise its launch error here, in the caller's thread."""
        if self._thread is None:
            self.start()
        while not self._launch_ended.wait(0.2):  # short waits keep Ctrl-C responsive
            pass
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
        if self.writes_guard is not None:
            self.writes_guard.writes_begin()
        with self.appliance.mount_persist(0, writable=True) as fs:
            apply_and_verify(plan, fs, progress)

    def close(self) -> None:
        """Shut the appliance down cleanly (its error is raised: the image may be incomplete).

        While it is still starting, nothing has been written (writes wait for the launch to end), so its qemu
        is killed rather than waited for (a launch takes 15-60 s under TCG). The launch thread is always
        joined before this returns, whatever Ctrl-C comes meanwhile: leaving while it is inside libguestfs
        would crash the process."""
        if self._thread is not None and not self._launch_ended.is_set():
            if self.notice is not None:
                self.notice(STOPPING_THE_LAUNCH)
            self.appliance.cancel_launch()
            _wait_through_ctrl_c(self._launch_ended)
        self.appliance.close()

    def __enter__(self) -> ImageSession:
        return self

    def __exit__(self, _type: object, exc: BaseException | None, _tb: object) -> None:
        close_keeping_the_cause(self.close, exc)


def _wait_through_ctrl_c(ended: threading.Event) -> None:
    """Wait for `ended`; a Ctrl-C meanwhile is absorbed (the stop it asks for is already under way)."""
    while True:
        try:
            if ended.wait(0.2):
                return
        except KeyboardInterrupt:
            continue
