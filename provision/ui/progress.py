"""Progress on the terminal, on stderr, never with --json: the live line while the appliance starts (what is
happening, and for how many seconds), and a batch run's progress (plain lines for logs and CI, a live status
on a terminal). rich draws them and is imported only when one is drawn.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TextIO

STARTING = "Starting the libguestfs appliance"


def say(text: str) -> None:
    """`text` on stderr, at once, as it is: what a command or the appliance's launch tells while it works (their
    `notice`: they never print themselves)."""
    print(text, file=sys.stderr, flush=True)


def wanted(*, json_out: bool) -> bool:
    """The live line only on a terminal, never with --json."""
    return not json_out and sys.stderr.isatty()


def appliance_starting(*, since: float | None = None) -> AbstractContextManager[None]:
    """While the block runs, `Starting the libguestfs appliance… 12 s`, counted from `since` (monotonic)."""
    return working(STARTING, since=since)


@contextmanager
def working(doing: str, *, since: float | None = None) -> Iterator[None]:
    """While the block runs, `<doing>… 12 s`, counted from `since` (monotonic), on stderr."""
    from rich.console import Console  # lazily: --help stays fast

    started = time.monotonic() if since is None else since

    class Elapsed:
        def __rich__(self) -> str:  # drawn again on every refresh, so the seconds go on
            return f"{doing}… {time.monotonic() - started:.0f} s"

    with Console(stderr=True, highlight=False).status(Elapsed()):
        yield


class Progress:
    """A batch run's progress (a commands.batch.BatchProgress) as plain lines on stderr (logs, CI, --json);
    RichProgress draws a live status on a terminal."""

    def __init__(self, stream: TextIO | None = None, name: str = "batch") -> None:
        self._stream = stream or sys.stderr
        self.name = name  # the command whose lines these are
        self._lock = threading.Lock()
        self.total = 0
        self.done = 0

    def start(self, total: int) -> None:
        """`total` images are about to be made."""
        self.total = total

    def note(self, message: str) -> None:
        with self._lock:
            print(f"{self.name}: {message}", file=self._stream, flush=True)

    def say(self, text: str) -> None:
        """`text` as it is, not a line of the run's (a launch's notice; a failed image's traceback with --debug)."""
        with self._lock:
            print(text, file=self._stream, flush=True)

    def phase(self, launch: int | None, text: str) -> None:
        """What one appliance launch (or, with None, the run) is doing now: copying, starting, seeding..."""
        self.note(f"launch {launch}: {text}" if launch is not None else text)

    def phase_done(self, launch: int | None) -> None:
        pass

    def finished(self, name: str, ok: bool, detail: str = "") -> None:
        with self._lock:
            self.done += 1
            done = self.done
        self.note(f"[{done}/{self.total}] {name}: {'done' if ok else 'FAILED'}{': ' + detail if detail else ''}")

    def stop(self) -> None:
        pass


DONE_WORDS = {"batch": "images made", "inspect": "images read"}  # the bar's words per command; else "images done"


class RichProgress(Progress):
    """On a terminal: one live line per launch saying what it does and for how many seconds (copying, the
    appliance starting: the long waits), and a bar of the images done (made by batch, read by inspect:
    DONE_WORDS). Transient: the summary follows it."""

    def __init__(self, console: Any = None, get_time: Any = None, name: str = "batch") -> None:
        super().__init__(name=name)
        from rich.console import Console
        from rich.progress import BarColumn, ProgressColumn, SpinnerColumn, TextColumn
        from rich.progress import Progress as Live
        from rich.text import Text

        class Seconds(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(f"{int(task.elapsed or 0)} s")

        class Count(ProgressColumn):
            def render(self, task: Any) -> Text:
                return Text(f"{int(task.completed)}/{int(task.total)}" if task.total is not None else "")

        class Bar(BarColumn):
            def render(self, task: Any) -> Any:
                return super().render(task) if task.total is not None else Text("")

        self._live = Live(
            SpinnerColumn(), TextColumn("{task.description}"), Bar(), Count(), Seconds(),
            console=console or Console(stderr=True), transient=True, get_time=get_time,
        )
        self._started = False
        self._overall: Any = None
        self._phases: dict[int | None, Any] = {}
        self._done_words = DONE_WORDS.get(name, "images done")

    def _show(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self._live.start()

    def start(self, total: int) -> None:
        super().start(total)
        self._show()
        self._overall = self._live.add_task(self._done_words, total=total)

    def note(self, message: str) -> None:
        self._live.console.print(f"{self.name}: {message}", markup=False, highlight=False)

    def say(self, text: str) -> None:
        self._live.console.print(text, markup=False, highlight=False)

    def phase(self, launch: int | None, text: str) -> None:
        self._show()
        description = f"launch {launch}: {text}" if launch is not None else text
        task = self._phases.get(launch)
        if task is None:
            self._phases[launch] = self._live.add_task(description, total=None)
        else:  # a new step: its own clock
            self._live.reset(task, description=description, total=None)

    def phase_done(self, launch: int | None) -> None:
        task = self._phases.pop(launch, None)
        if task is not None:
            self._live.remove_task(task)

    def finished(self, name: str, ok: bool, detail: str = "") -> None:
        if not ok:
            self.note(f"{name}: FAILED{': ' + detail if detail else ''}")
        if self._overall is not None:
            self._live.update(self._overall, advance=1, description=f"{self._done_words} (last: {name})")

    def stop(self) -> None:
        if self._started:
            self._live.stop()


def default_progress(*, json_out: bool = False, name: str = "batch") -> Progress:
    """A live status on a terminal; plain lines (logs, CI) otherwise, and with --json. Both on stderr. `name`:
    the command the lines are of."""
    return RichProgress(name=name) if sys.stderr.isatty() and not json_out else Progress(name=name)
