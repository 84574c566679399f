"""What the seed command shows and asks (commands/seed/run.py's SeedScreen): notes and fetched keys before the
image is opened, the live line while the appliance starts, the wizard, and the summary (JSON with --json)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, TextIO

from provision.ui import progress, render

if TYPE_CHECKING:
    from provision.commands.seed.apply import SeedOutcome
    from provision.core.credentials.keysources import FetchedKeys
    from provision.core.plan import Plan
    from provision.core.request import SeedFlags
    from provision.guest.session import ImageSession


@dataclass(frozen=True)
class TerminalScreen:
    json_out: bool
    show: Callable[[str, TextIO | None], None]  # prints, fitted to the terminal (cli.show)

    def note(self, text: str) -> None:
        self.show(f"zvm-provision: note: {text}", sys.stderr)

    def say(self, text: str) -> None:
        progress.say(text)

    def fetched(self, fetched: Sequence[FetchedKeys], *, interactive: bool) -> None:
        self.show("\n".join(render.render_fetched(fetched)), sys.stdout if interactive else sys.stderr)

    def starting(self, since: float) -> AbstractContextManager[None]:  # a live line on a terminal, else nothing
        return progress.appliance_starting(since=since) if progress.wanted(json_out=self.json_out) else nullcontext()

    def ask(self, session: ImageSession, flags: SeedFlags, *, dry_run: bool,
            status: Callable[[], AbstractContextManager[None]]) -> Plan:
        from provision.ui.wizard import run_wizard

        return run_wizard(session, flags, dry_run=dry_run, status=status).plan

    def outcome(self, outcome: SeedOutcome, *, dry_run: bool, interactive: bool) -> None:
        for block in render.render_seed(outcome, dry_run=dry_run, json_out=self.json_out, plan_shown=interactive):
            if self.json_out:  # JSON as it is, even on a terminal
                print(block)
            else:
                self.show(block, None)
