"""The zvm-provision command: typer only. Flags become a request; errors become messages and exit codes.

Heavy libraries (guestfs, cryptography, passlib, questionary) are imported inside the commands, so that
`zvm-provision --help` starts fast.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer.core import TyperGroup

from provision.errors import ExitCode, ProvisionError, UsageError

EXIT_CODES_HELP = """\b
Exit codes:
  0    done
  1    failure while working (appliance, I/O), or drift found by inspect --check
  2    bad usage or input; nothing was touched
  3    the image cannot be used (not a disk image, corrupt, encrypted, no persist partition, unsafe entries)
  4    the image is in use by another process (a running VM)
  130  interrupted (Ctrl-C); the image is left as it was, or fully seeded if writing had begun
"""

MAIN_HELP = f"""Seed a zvm disk image's persist partition before its first boot.

\b
  zvm-provision disk.qcow2                      ask for everything (on a terminal)
  zvm-provision disk.qcow2 --password-stdin --ssh-key ~/.ssh/id_ed25519.pub < pw.txt
  zvm-provision inspect disk.qcow2 --check      what the image carries; exit 1 on drift
  zvm-provision batch staff.csv --base zvm.qcow2 --out-dir images/
  zvm-provision sample-disk try.qcow2           a blank disk with the zvm layout, to try things on

`zvm-provision IMAGE ...` is short for `zvm-provision seed IMAGE ...`.
The image is opened offline with libguestfs; it must not be in use by a running VM.
Secrets are never taken as arguments: they come from a terminal prompt, standard input or a file.

{EXIT_CODES_HELP}"""


class DefaultToSeed(TyperGroup):
    """Route `zvm-provision IMAGE ...` to the seed command, keeping the documented short form."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["seed", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=DefaultToSeed,
    help=MAIN_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # a traceback could show a password held in a local variable
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn the tool's errors into one message on stderr and the documented exit code; no traceback
    unless --debug."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = kwargs.get("debug", False) or os.environ.get("ZVM_PROVISION_DEBUG") == "1"
        try:
            return command(*args, **kwargs)
        except ProvisionError as exc:
            if debug:
                raise
            print(f"zvm-provision: error: {exc.message}", file=sys.stderr)
            if exc.hint:
                print(f"hint: {exc.hint}", file=sys.stderr)
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            print("\nzvm-provision: stopped by user; nothing more was written", file=sys.stderr)
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # an unexpected bug: say so, without a traceback that could show secrets
            if debug:
                raise
            print(
                f"zvm-provision: internal error ({type(exc).__name__}); run again with --debug to see where",
                file=sys.stderr,
            )
            raise typer.Exit(int(ExitCode.FAILURE)) from None

    return wrapper  # type: ignore[return-value]


def version_callback(value: bool) -> None:
    if value:
        from provision import __version__

        print(f"zvm-provision {__version__}")
        raise typer.Exit()


@app.callback()
def main_callback(
    version: Annotated[
        bool, typer.Option("--version", callback=version_callback, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    pass


Accel = Annotated[
    str,
    typer.Option(
        "--accel",
        envvar="ZVM_PROVISION_ACCEL",
        help="How the libguestfs appliance runs: kvm, tcg (software emulation) or auto (KVM, falling back to "
        "TCG when KVM hangs, remembered per host).",
        show_default=True,
    ),
]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks (never shows secrets' values).")]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


def check_accel(accel: str) -> str:
    if accel not in ("auto", "kvm", "tcg"):
        raise UsageError(f"--accel must be auto, kvm or tcg, not {accel!r}")
    return accel


@app.command(
    "seed",
    help="Seed IMAGE's persist partition: password hash, SSH keys, host key, machine-id, Netbird.\n\n"
    "On a terminal it asks for whatever the flags did not give; otherwise a missing answer is an error "
    "(exit 2). Running it again on a seeded image keeps what is there and adds what you give.\n\n"
    + EXIT_CODES_HELP,
)
@reports_errors
def seed_command(
    image: Annotated[Path, typer.Argument(help="The zvm disk image (qcow2 or raw).", show_default=False, metavar="IMAGE")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password (one line) from standard input.")
    ] = False,
    password_file: Annotated[
        Path | None, typer.Option("--password-file", help="Read the password (one line) from a file.", metavar="F")
    ] = None,
    password_hash_file: Annotated[
        Path | None,
        typer.Option("--password-hash-file", help="A ready sha-512 ($6$) or yescrypt ($y$) hash, one line.", metavar="F"),
    ] = None,
    no_password: Annotated[
        bool, typer.Option("--no-password", help="Lock the password: key-only login over SSH.")
    ] = False,
    ssh_key: Annotated[
        list[Path] | None,
        typer.Option(
            "--ssh-key", help="A .pub or authorized_keys file; repeat for more. Added to the keys already there.",
            metavar="F",
        ),
    ] = None,
    replace_keys: Annotated[
        bool, typer.Option("--replace-keys", help="Replace the image's authorized keys instead of adding.")
    ] = False,
    netbird_setup_key_file: Annotated[
        Path | None,
        typer.Option("--netbird-setup-key-file", help="A Netbird setup key (uppercase UUID) to enrol on first boot.",
                     metavar="F"),
    ] = None,
    netbird_management_url: Annotated[
        str | None,
        typer.Option("--netbird-management-url", help="A self-hosted Netbird management server (https URL).",
                     metavar="URL"),
    ] = None,
    no_host_keys: Annotated[
        bool, typer.Option("--no-host-keys", help="Do not create an SSH host key (the VM makes one at first boot).")
    ] = False,
    new_host_keys: Annotated[
        bool, typer.Option("--new-host-keys", help="Replace an existing host key (do this on every copy of a base).")
    ] = False,
    new_machine_id: Annotated[
        bool, typer.Option("--new-machine-id", help="Replace an existing machine-id (do this on every copy of a base).")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; open the image read-only and change nothing.")
    ] = False,
    json_out: JsonOut = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Ask nothing: use the flags and defaults, skip the confirmation.")
    ] = False,
    accel: Accel = "auto",
    debug: Debug = False,
) -> None:
    from provision import sources
    from provision.diskformat import probe_image
    from provision.request import PasswordChoice, SeedFlags
    from provision.secret import Secret
    from provision.seed import ImageSession, run_seed

    check_accel(accel)
    chosen = [name for name, given in (
        ("--password-stdin", password_stdin), ("--password-file", password_file is not None),
        ("--password-hash-file", password_hash_file is not None), ("--no-password", no_password),
    ) if given]
    if len(chosen) > 1:
        raise UsageError(f"choose one password source, not {' and '.join(chosen)}")
    if no_host_keys and new_host_keys:
        raise UsageError("--no-host-keys and --new-host-keys contradict each other")

    # Validate every input before the image is touched: bad input exits at once.
    plain = None
    password = None
    if password_stdin:
        plain = Secret(sources.read_password_stdin())
    elif password_file is not None:
        plain = Secret(sources.read_password_file(password_file))
    elif password_hash_file is not None:
        password = PasswordChoice.from_hash(sources.read_password_hash_file(password_hash_file))
    elif no_password:
        password = PasswordChoice.locked()
    keys = tuple(sources.read_key_files(ssh_key)) if ssh_key else None
    setup_key = sources.read_netbird_setup_key_file(netbird_setup_key_file) if netbird_setup_key_file else None
    url = None
    if netbird_management_url is not None:
        from provision.credentials import validate_management_url

        url = validate_management_url(netbird_management_url)
    flags = SeedFlags(
        password_plain=plain, password=password, keys=keys, replace_keys=replace_keys,
        host_keys=not no_host_keys, new_host_keys=new_host_keys, new_machine_id=new_machine_id,
        netbird_setup_key=setup_key, netbird_management_url=url,
    )

    interactive = not yes and not json_out and sys.stdin.isatty() and sys.stdout.isatty()
    if not interactive and not flags.has_password_source and flags.keys is None:
        from provision.wizard import missing_flags, missing_flags_message

        raise UsageError(missing_flags_message(missing_flags(flags, None), image_read=False))

    info = probe_image(image)
    if info.read_only_file and not dry_run:
        raise UsageError(f"{image} is read-only (no write permission); use --dry-run to look, or fix its permissions")

    with ImageSession(info, readonly=dry_run, accel=accel).start() as session:
        if interactive:
            from provision.seed import apply_planned
            from provision.wizard import run_wizard

            # the plan shown before the confirmation is the one applied (same host key fingerprint)
            outcome = apply_planned(session, run_wizard(session, flags, dry_run=dry_run).plan, dry_run=dry_run)
        else:
            from provision.wizard import missing_flags, missing_flags_message

            request = flags.to_request()  # hashing overlaps the appliance launch
            missing = missing_flags(flags, session.read_state())
            if missing:
                raise UsageError(missing_flags_message(missing, image_read=True))
            outcome = run_seed(session, request, dry_run=dry_run)
    print_outcome(outcome, dry_run=dry_run, json_out=json_out, plan_shown=interactive)


def print_outcome(outcome: Any, *, dry_run: bool, json_out: bool, plan_shown: bool = False) -> None:
    """The plan (unless the wizard already showed it before the confirmation) and the hand-over summary."""
    from provision import report

    if json_out:
        print(json.dumps(report.outcome_to_json(outcome, dry_run=dry_run), indent=2))
        return
    if plan_shown:
        if not dry_run:
            changed = sum(op.changes for op in outcome.plan.operations)
            print(f"Done: {outcome.info.path} seeded ({changed} paths written and read back).")
    else:
        print(report.render_plan(outcome, dry_run=dry_run))
    if not dry_run:
        print(report.render_summary(outcome))


@app.command(
    "inspect",
    help="Show what IMAGE's persist partition carries: every contract path (kind, owner, mode), the password "
    "(set or locked, never the hash), SSH keys, host key, machine-id, Netbird, and anything unexpected.\n\n"
    "The image is opened read-only: not one byte of the file changes. With --check, print only the verdict "
    "and exit 1 if the image departs from the persist contract.\n\n" + EXIT_CODES_HELP,
)
@reports_errors
def inspect_command(
    image: Annotated[Path, typer.Argument(help="The zvm disk image (qcow2 or raw).", show_default=False, metavar="IMAGE")],
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the image departs from the contract, naming each problem.")
    ] = False,
    json_out: JsonOut = False,
    accel: Accel = "auto",
    debug: Debug = False,
) -> None:
    from provision.diskformat import probe_image
    from provision.inspect import check_image_contract, inspect_image, print_report, render_check, report_to_json

    check_accel(accel)
    report = inspect_image(probe_image(image), accel=accel)
    problems = check_image_contract(report)
    if json_out:
        print(json.dumps(report_to_json(report, problems), indent=2))
    elif check:
        print(render_check(problems))
    else:
        from rich.console import Console

        print_report(report, Console(highlight=False, emoji=False), problems)
    if check and problems:
        raise typer.Exit(int(ExitCode.FAILURE))


@app.command("sample-disk", help="Create a blank qcow2 disk OUT with the zvm layout (GPT: ESP, ext4 nix, ext4 persist),"
             " to try the tool on and for tests.")
@reports_errors
def sample_disk_command(
    out: Annotated[Path, typer.Argument(help="Where to create the disk (must not exist).", show_default=False)],
    size: Annotated[str, typer.Option("--size", help="Virtual size, e.g. 20G or 512M.")] = "20G",
    accel: Accel = "auto",
    debug: Debug = False,
) -> None:
    from provision.sampledisk import create_sample_disk

    check_accel(accel)
    create_sample_disk(out, size, accel=accel)
    print(f"created {out} ({size}, GPT: ESP, nix, persist)")


@app.command(
    "batch",
    help="Make one seeded image per user of MANIFEST: DIR/<name>.qcow2, plus DIR/report.json.\n\n"
    "MANIFEST is a CSV file with the header name,ssh_keys,password_hash,netbird_setup_key,netbird_management_url "
    "(or TOML [[user]] tables with those fields). ssh_keys lists key files separated by ';', relative to the "
    "manifest's folder; an empty password_hash generates a password, written to DIR/initial-passwords.csv "
    "(mode 0600). Every row is checked first: any bad row means exit 2 and nothing created.\n\n"
    "Running it again resumes: complete images are kept unless --force. With --overlay the images are small "
    "qcow2 overlays backed by the base: the base must travel with them, at the same absolute path, unchanged.\n\n"
    + EXIT_CODES_HELP,
)
@reports_errors
def batch_command(
    manifest: Annotated[Path, typer.Argument(help="The manifest (.csv, or .toml).", show_default=False, metavar="MANIFEST")],
    base: Annotated[Path, typer.Option("--base", help="The zvm base image every copy starts from.", metavar="IMAGE")],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where the images and reports go.", metavar="DIR")],
    overlay: Annotated[
        bool, typer.Option("--overlay", help="Make qcow2 overlays backed by the base instead of full copies.")
    ] = False,
    jobs: Annotated[
        int, typer.Option("--jobs", help="Appliances running at once (0: one per core, each with several disks).",
                          min=0, max=64, metavar="N")
    ] = 0,
    shard: Annotated[
        str | None, typer.Option("--shard", help="Only the K-th of N slices of the manifest, e.g. 2/4.", metavar="K/N")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Make every image again, even complete ones.")] = False,
    json_out: JsonOut = False,
    accel: Accel = "auto",
    debug: Debug = False,
) -> None:
    from provision import batch
    from provision.manifest import parse_shard

    check_accel(accel)
    options = batch.BatchOptions(
        manifest=manifest, base=base, out_dir=out_dir, overlay=overlay, jobs=jobs,
        shard=parse_shard(shard) if shard is not None else None, force=force, accel=accel,
    )
    result = batch.run_batch(options, batch.default_progress(json_out=json_out))
    if json_out:
        print(result.report_path.read_text(encoding="utf-8"), end="")
    else:
        print(batch.render_result(result))
    if result.failed:
        raise typer.Exit(int(ExitCode.FAILURE))


def main() -> None:
    app(prog_name="zvm-provision")
