"""`zvm-provision seed`, from its options to its summary: the --output decision, every input read before the
image is opened, whether to ask (a terminal, neither --yes nor --json), the read-only refusal, the wizard's
plan as the one applied, and Ctrl-C once the writes have begun. What is shown and asked goes through a
SeedScreen (ui provides it), as batch reports through BatchProgress: nothing here prints."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Protocol

from provision.commands.seed.apply import CtrlCWhileWriting, SeedOutcome, seed_image
from provision.commands.seed.options import SeedOptions, read_seed_flags
from provision.commands.flagwords import missing_flags_message
from provision.core.request import SeedFlags, missing_flags
from provision.errors import ImageUnusableError, SeededDespiteCtrlC, UsageError
from provision.guest.diskformat import probe_image, require_image_file

if TYPE_CHECKING:
    from provision.core.credentials.keysources import FetchedKeys
    from provision.core.plan import Plan
    from provision.guest.session import ImageSession


class SeedScreen(Protocol):
    """What the seed command shows and asks."""

    def note(self, text: str) -> None: ...  # said before anything is read
    def say(self, text: str) -> None: ...  # what a launch or the Ctrl-C policy tells, at once, as it is
    def fetched(self, fetched: Sequence[FetchedKeys], *, interactive: bool) -> None: ...  # before IMAGE opens
    def starting(self, since: float) -> AbstractContextManager[None]: ...  # while the appliance starts
    def ask(self, session: ImageSession, flags: SeedFlags, *, dry_run: bool,
            status: Callable[[], AbstractContextManager[None]]) -> Plan: ...  # the wizard's confirmed plan
    def outcome(self, outcome: SeedOutcome, *, dry_run: bool, interactive: bool) -> None: ...  # the summary


def run_seed_command(options: SeedOptions, screen: SeedScreen) -> SeedOutcome:
    image, output, dry_run = options.image, options.output, options.dry_run
    spec = None
    if output is not None:
        from provision.commands.seed.output import check_output, leftovers_note
        from provision.core.outputformat import output_spec_for_file

        spec = output_spec_for_file(output.name, options.format_name, options.compress)
        output = check_output(output)
        if note := leftovers_note(output):
            screen.note(note)
    elif options.compress or options.format_name is not None:
        raise UsageError("--compress and --format write a new image: give it a name with --output OUT")
    require_image_file(image)  # after the command line's own mistakes, before any input is read or fetched
    from provision.fetch.forgekeys import KeyFetcher

    # Every input is read, and every key source fetched, before the image is touched: bad input exits at once.
    flags = read_seed_flags(
        password_stdin=options.password_stdin, password_file=options.password_file,
        password_hash_file=options.password_hash_file, no_password=options.no_password,
        ssh_keys=options.ssh_keys, fetch_keys=KeyFetcher().fetch, replace_keys=options.replace_keys,
        remove_keys=options.remove_keys, netbird_setup_key_file=options.netbird_setup_key_file,
        netbird_management_url=options.netbird_management_url, no_host_keys=options.no_host_keys,
        new_host_keys=options.new_host_keys, new_machine_id=options.new_machine_id, hostname=options.hostname,
        update_signers=options.update_signers, operator_given=options.operator, certs=options.certs,
    )
    interactive = not options.yes and not options.json_out and sys.stdin.isatty() and sys.stdout.isatty()
    if flags.fetched:  # what came from the network, with fingerprints, before the image is opened
        screen.fetched(flags.fetched, interactive=interactive)
    info = probe_image(image)  # an unusable image is said before missing flags
    if not interactive and flags.asks_for_nothing:
        raise UsageError(missing_flags_message(missing_flags(flags, None), image_read=False))
    # exit 3, as when the appliance is the one to notice it (--output only reads IMAGE)
    if info.read_only_file and not dry_run and output is None:
        raise ImageUnusableError(
            f"{image} is read-only (no write permission); make it writable, "
            "or use --dry-run to look without writing"
        )

    launch_started = time.monotonic()

    def appliance_starting() -> AbstractContextManager[None]:
        return screen.starting(launch_started)

    ask = None
    if interactive:
        def ask(session: ImageSession) -> Plan:  # the plan shown before the confirmation is the one applied
            return screen.ask(session, flags, dry_run=dry_run, status=appliance_starting)

    # Ctrl-C once the writes have begun lets them finish; the summary is shown all the same (apply.py).
    with CtrlCWhileWriting(screen.say) as ctrl_c:
        if output is None or spec is None or dry_run:  # a dry run reads IMAGE and writes nothing
            outcome = seed_image(info, flags, dry_run=dry_run, accel=options.accel, ctrl_c=ctrl_c, ask=ask,
                                 waiting=appliance_starting, notice=screen.say)
        else:
            from provision.commands.seed.output import seed_to_output

            label = f"{output} (a new {spec.describe()} image; {image} stays as it is)"
            outcome = seed_to_output(info, output, spec, lambda work: seed_image(
                work, flags, dry_run=False, accel=options.accel, ctrl_c=ctrl_c, ask=ask,
                waiting=appliance_starting, label=label, notice=screen.say), ctrl_c)
        screen.outcome(outcome, dry_run=dry_run, interactive=interactive)
    if ctrl_c.interrupted:
        raise SeededDespiteCtrlC(
            f"stopped by user (Ctrl-C) once the writes had finished: {image} was seeded, "
            "as the summary above says"
        )
    return outcome
