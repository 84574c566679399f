"""The zvm-provision command: typer only. Flags become request and option objects, then a command runs and ui
renders its result; main() holds the one error handler that turns every failure into a message and an exit
code.

Every module of ours, and with them guestfs, cryptography, passlib, questionary and rich, is imported inside
the commands, so that `zvm-provision --help` starts fast.

Why this module is long (about 760 lines): every option is declared here with the help text it shows, and the
help is part of the product, as are the few typer/click classes that make it read as a person expects (typer
may be imported here only); what the commands do lives in commands/, host/ and ui/.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer
from typer.core import TyperCommand, TyperGroup

from provision.errors import (
    SEED_STOPPED_BEFORE_WRITING,
    Declined,
    ExitCode,
    UsageError,
)
from provision.guest.qemuimg import QEMU_IMG

HELP_WIDTH = 76  # a --help line's width inside click's two-space indent: every --help fits 80 columns


def exit_codes_help(command: str | None = None) -> str:
    """The `Exit codes:` block of a --help, from errors.py's one table: a command's own codes and meanings, or
    (for the top level) each code in short. Wrapped here, since click leaves a \\b block as it is."""
    import textwrap

    from provision.errors import EXIT_SUMMARY, exit_codes_of

    codes = exit_codes_of(command) if command is not None else EXIT_SUMMARY
    lines = ["\b", "Exit codes:"]
    for code, words in codes.items():
        lines += textwrap.wrap(words, HELP_WIDTH, initial_indent=f"  {int(code):<5}", subsequent_indent=" " * 7,
                               break_on_hyphens=False)
    return "\n".join(lines) + "\n"


MAIN_HELP = f"""Seed a zvm disk image's persist partition before its first boot.

\b
  zvm-provision disk.qcow2                ask for everything (on a terminal)
  zvm-provision disk.qcow2 --password-stdin --ssh-key id.pub < pw.txt
  zvm-provision disk.qcow2 --no-password --ssh-key gh:alice
                                          keys from GitHub (gl:USER, https:)
  zvm-provision inspect disk.qcow2 --check
                                          what the image carries; 1 on drift
  zvm-provision batch staff.csv --base zvm.qcow2 --out-dir images/
  zvm-provision inspect images/ --find-key bob@old-laptop
                                          which images trust a key
  zvm-provision keys images/ --remove-key bob@old-laptop
                                          revoke a key wherever it is
  zvm-provision sample-disk try.qcow2     a blank zvm disk, to try things on

`zvm-provision IMAGE ...` is short for `zvm-provision seed IMAGE ...`.
The image is opened offline with libguestfs; it must not be in use (a running VM, another run).
Secrets are never taken as arguments: they come from a terminal prompt, standard input or a file.

{exit_codes_help()}
Each command's --help lists the codes it returns and what they mean there.
"""


_HYPHEN = "\u2011"  # a hyphen textwrap does not break at, while click wraps the help; written back as '-'


class UnbrokenHelpFormatter(typer.Context.formatter_class):  # type: ignore[name-defined,misc]
    """click's help formatter, but a hyphenated word (machine-id, --out-dir) is never broken at its hyphen."""

    def write_text(self, text: str) -> None:
        super().write_text(text.replace("-", _HYPHEN))

    def write_dl(self, rows: Any, *args: Any, **kwargs: Any) -> None:
        super().write_dl([(term, words.replace("-", _HYPHEN)) for term, words in rows], *args, **kwargs)

    def write(self, string: str) -> None:
        super().write(string.replace(_HYPHEN, "-"))


class HelpContext(typer.Context):
    formatter_class = UnbrokenHelpFormatter


class DefaultToSeed(TyperGroup):
    """Route `zvm-provision IMAGE ...` to the seed command, keeping the documented short form."""

    context_class = HelpContext

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        own_options = {opt for param in self.get_params(ctx) for opt in (*param.opts, *param.secondary_opts)}
        if args and args[0] not in self.commands and args[0].split("=")[0] not in own_options:
            if not ctx.resilient_parsing:  # shell completion parses what is typed so far: never an error there
                check_not_a_mistyped_command(args[0], list(self.commands))
            args = ["seed", *args]
        return super().parse_args(ctx, args)

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        """The first word is a command or, in the short form, the seed command's IMAGE: offer both."""
        image = next(param for param in self.commands["seed"].params if param.name == "image")
        return [*super().shell_complete(ctx, incomplete), *image.shell_complete(ctx, incomplete)]

    def invoke(self, ctx: Any) -> Any:
        # typer turns a KeyboardInterrupt into a silent exit 130; carry it to main()'s handler instead,
        # which says what the interrupted command left behind.
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise Interrupted(ctx.invoked_subcommand) from exc


def check_not_a_mistyped_command(word: str, commands: list[str]) -> None:
    """`insepct a.qcow2` would seed a file called insepct: when no such file exists and the word is close to a
    command's name, name the command meant instead (exit 2)."""
    import difflib

    if word.startswith("-") or os.path.lexists(word):
        return
    close = difflib.get_close_matches(word, commands, n=1, cutoff=0.6)
    if close:
        raise UsageError(f"{word}: no such file; did you mean `{close[0]}`?")


class Interrupted(Exception):
    """A Ctrl-C in `command`, on its way to report_error (the KeyboardInterrupt is its __cause__)."""

    def __init__(self, command: str | None) -> None:
        super().__init__(command)
        self.command = command


class ReadableCommand(TyperCommand):
    """A command whose usage line and Arguments section name arguments as a person reads them: `IMAGE`,
    `[OUT]`, `DIR...`, not typer's `{IMAGE}` or `DIR <list[Path]>`."""

    context_class = HelpContext

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = _argument_name(param)
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_argument_name(param), param.help or ""))  # its help, without typer's type
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def _argument_name(param: Any) -> str:
    name = param.metavar or param.name.upper()
    return f"{name}..." if param.nargs != 1 else name


app = typer.Typer(
    cls=DefaultToSeed,
    help=MAIN_HELP,
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion
    pretty_exceptions_enable=False,  # a traceback could show a password held in a local variable
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)

_debug_requested = False


def _request_debug(value: bool) -> bool:
    """--debug, noted while the flags are parsed, so that main()'s handler knows it whatever fails later."""
    global _debug_requested
    _debug_requested = _debug_requested or value
    return value


def debug_enabled() -> bool:
    return _debug_requested or os.environ.get("ZVM_PROVISION_DEBUG") == "1"


# What each command leaves behind when Ctrl-C stops it (a second Ctrl-C while writing brings its own words).
INTERRUPTED_MESSAGES = {
    "seed": SEED_STOPPED_BEFORE_WRITING,
    "inspect": "stopped by user (Ctrl-C); inspect changes nothing",
    "sample-disk": "stopped by user (Ctrl-C); no disk was created",
    "keys": "stopped by user (Ctrl-C): each image is as it was or fully changed; run the same command again",
    "batch": "stopped by user (Ctrl-C): finished images are kept, unfinished copies removed; "
             "run the same command again to resume",
    "batch-report": "stopped by user (Ctrl-C): report.json and initial-passwords.csv are each the old file or "
                    "the whole new one; run it again",
}


def report_error(exc: BaseException, *, debug: bool) -> int:
    """The one error handler: every failure becomes a message on stderr (never a secret) and its exit code.

    With --debug (or ZVM_PROVISION_DEBUG=1) the traceback comes first and the exit code stays the documented
    one. A traceback shows source lines and exception messages, never local variables, and the tool's
    messages never hold a secret.
    """
    if isinstance(exc, typer.TyperException) and hasattr(exc, "show"):  # typer's own usage errors: exit 2
        return show_usage_error(exc)
    from provision.describe import describe

    description = describe(exc, debug)
    if description.traceback:
        sys.stderr.write(description.traceback)
    hint = None
    if isinstance(exc, Interrupted):
        words = getattr(exc.__cause__, "message", None)  # a second Ctrl-C while writing says what it stopped
        message = words or INTERRUPTED_MESSAGES.get(exc.command or "", "stopped by user (Ctrl-C)")
        code = ExitCode.INTERRUPTED
    elif isinstance(exc, typer.Abort):  # typer's word for standard input closed while a question waited
        message, code = "stopped: standard input was closed", ExitCode.FAILURE
    else:  # the tool's own errors, host errors, a missing libguestfs binding, a bug: the same words as batch's
        message, hint, code = description.message, description.hint, description.exit_code
    stopped = code == ExitCode.INTERRUPTED or isinstance(exc, Declined)  # a stop or an answer, not a failure
    label = "" if stopped else "error: "
    show(f"zvm-provision: {label}{message}", sys.stderr)
    if hint:
        show(f"hint: {hint}", sys.stderr)
    return int(code)


def _say_failure(failure: Any) -> None:
    """A failure found once the results are shown (a key no image holds): its message and hint on stderr, as the
    error handler says them, without a traceback under --debug (nothing went wrong inside the tool)."""
    show(f"zvm-provision: error: {failure.message}", sys.stderr)
    if failure.hint:
        show(f"hint: {failure.hint}", sys.stderr)


def show_usage_error(exc: Any) -> int:
    """click's usage error as every other error: one line, and a hint naming the command's --help (click
    prints the usage, a 'Try' line, a blank line and 'Error: ...'). No arguments at all still show the help."""
    ctx = getattr(exc, "ctx", None)
    if ctx is not None and exc.format_message() == ctx.get_help():  # no_args_is_help: the help is the answer
        exc.show()
        return int(exc.exit_code)
    message = exc.format_message().rstrip(".")
    show(f"zvm-provision: error: {message[:1].lower()}{message[1:]}", sys.stderr)
    if ctx is not None:
        show(f"hint: `{ctx.command_path} --help` shows how to use it", sys.stderr)
    return int(exc.exit_code)


def show(text: str, stream: TextIO | None = None) -> None:
    """Print `text`; on a terminal, wrapped at word boundaries to its width (ui.screen), never inside a word."""
    from provision.ui.screen import fit_for

    stream = stream or sys.stdout
    print(fit_for(stream, text), file=stream)


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


IMAGE_SUFFIXES = (".qcow2", ".raw", ".img")


def _files_ending(suffixes: tuple[str, ...]) -> Callable[[str], list[str]]:
    """A completer offering the files whose name ends with one of `suffixes`, below the folder typed so far.
    When none matches it offers nothing, and the shell falls back to its own completion (folders, any file,
    a block device)."""

    def complete(incomplete: str) -> list[str]:
        folder_typed, _, prefix = incomplete.rpartition("/")
        folder_typed = folder_typed + "/" if "/" in incomplete else ""
        folder = Path(os.path.expanduser(folder_typed or "."))
        try:
            names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file())
        except OSError:
            return []
        shown = [name for name in names if prefix.startswith(".") or not name.startswith(".")]
        return [folder_typed + name for name in shown if name.startswith(prefix) and name.endswith(suffixes)]

    return complete


complete_images = _files_ending(IMAGE_SUFFIXES)
complete_public_keys = _files_ending((".pub",))

ImageArgument = Annotated[
    Path,
    typer.Argument(help="The zvm disk image (qcow2 or raw).", show_default=False, metavar="IMAGE",
                   autocompletion=complete_images),
]
Accel = Annotated[
    str,
    typer.Option(
        "--accel",
        envvar="ZVM_PROVISION_ACCEL",
        metavar="auto|kvm|tcg",
        help="How the libguestfs appliance runs: kvm, tcg (software emulation) or auto (KVM, falling back to "
        "TCG when KVM hangs, remembered per host).",
        show_default=True,
    ),
]
Debug = Annotated[
    bool,
    typer.Option("--debug", callback=_request_debug,
                 help="Show the traceback of an error (never a secret's value)."),
]
JsonOut = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]
Compress = Annotated[
    bool,
    typer.Option("--compress", help="Write compressed qcow2 (the smallest to send; qemu reads it as it is)."),
]
Format = Annotated[
    str | None,
    typer.Option("--format", metavar="F",
                 help="qcow2, raw, vmdk (VMware) or vdi (VirtualBox): the seeding happens on a qcow2, the "
                 f"conversion ({QEMU_IMG} convert) last."),
]
Jobs = Annotated[
    int, typer.Option("--jobs", help="Appliances running at once, each with several disks (0: one per core).",
                      min=0, max=64, metavar="N"),
]
HostCA = Annotated[
    Path | None,
    typer.Option("--host-ca", metavar="F",
                 help="Sign the VM's host key with this host CA: an OpenSSH private key file (unencrypted, "
                 "readable by its owner only; never copied into the image). The certificate goes beside the host "
                 "key, and the hand-over gives an @cert-authority line that trusts every VM the CA signs."),
]
HostDomain = Annotated[
    str | None,
    typer.Option("--host-domain", metavar="DOMAIN",
                 help="The host certificate names HOSTNAME and HOSTNAME.DOMAIN; the @cert-authority line is for "
                 "*.DOMAIN."),
]
HostCertValidity = Annotated[
    str | None,
    typer.Option("--host-cert-validity", metavar="N[h|d|w]",
                 help="How long the host certificate is valid (default 52w; 'forever' only if you mean it)."),
]
UserCA = Annotated[
    list[Path] | None,
    typer.Option("--user-ca", metavar="F.pub",
                 help="Trust user certificates this CA signs (its public key); repeat for more. The image's "
                 "trusted user CAs become exactly these. A certificate naming a principal of --user-principal "
                 "logs in as zvm with no authorized_keys entry."),
]
UserPrincipal = Annotated[
    list[str] | None,
    typer.Option("--user-principal", metavar="NAME",
                 help="A principal a user certificate may name to log in as zvm (default: zvm); repeat for more."),
]


def cert_options(host_ca: Path | None, host_domain: str | None, host_cert_validity: str | None,
                 user_ca: list[Path] | None, user_principal: list[str] | None):
    from provision.commands.certoptions import CertOptions

    return CertOptions(host_ca, host_domain, host_cert_validity, tuple(user_ca or ()), tuple(user_principal or ()))


OperatorOption = typer.Option(
    "--operator", metavar="TEXT",
    help="Who seeds, for the seeding record in the image (inspect shows it): one line, at most 128 "
    "characters, e.g. it@desk or a ticket number. Default: your user@host.",
)

UpdateSignerOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--update-signer", metavar="KEY.pub",
        help="A release signer: the image's hourly update then switches only to a release tag (or commit) "
        "signed with this SSH key (git tag -s with gpg.format=ssh), pinned to its revision. Repeatable; the "
        "keys given replace the image's list (/etc/zvm/update-signers on persist, git's allowed_signers "
        "format). Without it the image keeps its list; an image with none follows its flake unverified.",
    ),
]


def check_accel(accel: str) -> str:
    from provision.guest.launch import ACCEL_CHOICES

    if accel not in ACCEL_CHOICES:
        raise UsageError(f"--accel must be auto, kvm or tcg, not {accel!r}")
    return accel


@app.command(
    "seed",
    cls=ReadableCommand,
    short_help="Seed IMAGE's persist partition (the default command).",
    help="Seed IMAGE's persist partition: password hash, SSH keys, host key, machine-id, Netbird.\n\n"
    "On a terminal it asks for whatever the flags did not give; otherwise a missing answer is an error "
    "(exit 2). Running it again on a seeded image keeps what is there and adds what you give.\n\n"
    "It never locks everyone out: a run that would leave no SSH key and no password (locked or missing) "
    "is refused (exit 2, nothing written). A key, or a password for the console, is enough.\n\n"
    "Each seeding that changes something appends an entry (who, when, which keys, host key, machine-id, "
    "hostname; never a secret) to the image's seeding record, /zvm-provision/history.jsonl on persist "
    "(the last 50 are kept); `zvm-provision inspect` shows it.\n\n"
    + exit_codes_help("seed"),
)
def seed_command(
    image: ImageArgument,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read the password (one line, at least 8 characters) from standard input."),
    ] = False,
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", metavar="F",
                     help="Read the password (one line, at least 8 characters) from a file readable by its owner only."),
    ] = None,
    password_hash_file: Annotated[
        Path | None,
        typer.Option("--password-hash-file", help="A ready sha-512 ($6$) or yescrypt ($y$) hash, one line.", metavar="F"),
    ] = None,
    no_password: Annotated[
        bool, typer.Option("--no-password",
                           help="Lock the password: key-only login over SSH (refused if no key would be left).")
    ] = False,
    ssh_key: Annotated[
        list[str] | None,
        typer.Option(
            "--ssh-key",
            help="A .pub or authorized_keys file, or keys fetched over HTTPS: gh:USER (GitHub), gl:USER "
            "(gitlab.com), or an https:// URL serving authorized_keys text (a self-hosted GitLab, Gitea or "
            "Forgejo: https://HOST/USER.keys). Repeat for more. Added to the keys already there. Fetched keys "
            "are checked like a file's and listed with their fingerprints before the image is opened. Behind a "
            "proxy: https_proxy / no_proxy, as curl reads them.",
            autocompletion=complete_public_keys,
            metavar="KEY",
        ),
    ] = None,
    replace_keys: Annotated[
        bool, typer.Option("--replace-keys", help="Replace the image's authorized keys instead of adding.")
    ] = False,
    remove_key: Annotated[
        list[str] | None,
        typer.Option(
            "--remove-key", metavar="FINGERPRINT|COMMENT",
            help="Take a key out of the image; repeat for more. Name it by its SHA256 fingerprint as "
            "`ssh-keygen -l` or `zvm-provision inspect` print it (SHA256:..., without SHA256:, or that whole "
            "line), by its public key line (any comment), or by its exact comment. A key that is not there is an error that lists the keys that are; a comment that several "
            "keys share is refused, since removing them all could take out a key you meant to keep: give their "
            "fingerprints. Other lines of authorized_keys stay as they are. Never the last way in: with no key "
            "left, the password must be set.",
        ),
    ] = None,
    netbird_setup_key_file: Annotated[
        Path | None,
        typer.Option("--netbird-setup-key-file", metavar="F",
                     help="A Netbird setup key (a UUID, any letter case) to enrol on first boot."),
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
    hostname: Annotated[
        str | None,
        typer.Option("--hostname", metavar="NAME",
                     help="The VM's name at boot and in Netbird: 1-63 lower-case letters, digits and hyphens, "
                     "no hyphen first or last, not localhost (e.g. zvm-alice). Without it the image keeps its name "
                     "(none seeded: zvm)."),
    ] = None,
    update_signer: UpdateSignerOption = None,
    operator: Annotated[str | None, OperatorOption] = None,
    host_ca: HostCA = None,
    host_domain: HostDomain = None,
    host_cert_validity: HostCertValidity = None,
    user_ca: UserCA = None,
    user_principal: UserPrincipal = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; open the image read-only and change nothing.")
    ] = False,
    json_out: JsonOut = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Ask nothing: use the flags and defaults, skip the confirmation.")
    ] = False,
    accel: Accel = "auto",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="OUT",
                     help="Seed a new image OUT instead, to hand over: IMAGE stays byte-identical. OUT must not "
                     "exist; its format is --format's, or its suffix's (.qcow2, .raw, .img, .vmdk, .vdi).",
                     autocompletion=complete_images),
    ] = None,
    compress: Compress = False,
    format_name: Format = None,
    debug: Debug = False,
) -> None:
    from provision.commands.seed.options import SeedOptions
    from provision.commands.seed.run import run_seed_command
    from provision.ui.seed_screen import TerminalScreen

    check_accel(accel)
    options = SeedOptions(
        image=image, password_stdin=password_stdin, password_file=password_file,
        password_hash_file=password_hash_file, no_password=no_password, ssh_keys=tuple(ssh_key or ()),
        replace_keys=replace_keys, remove_keys=tuple(remove_key or ()),
        netbird_setup_key_file=netbird_setup_key_file, netbird_management_url=netbird_management_url,
        no_host_keys=no_host_keys, new_host_keys=new_host_keys, new_machine_id=new_machine_id, hostname=hostname,
        update_signers=tuple(update_signer or ()), operator=operator, dry_run=dry_run, json_out=json_out, yes=yes, accel=accel, output=output,
        compress=compress, format_name=format_name,
        certs=cert_options(host_ca, host_domain, host_cert_validity, user_ca, user_principal),
    )
    run_seed_command(options, TerminalScreen(json_out=json_out, show=show))


@app.command(
    "inspect",
    cls=ReadableCommand,
    short_help="Show what IMAGE's persist partition carries (read-only).",
    help="Show what IMAGE's persist partition carries: every contract path (kind, owner, mode), the password "
    "(set or locked, never the hash), SSH keys, host key, machine-id, Netbird, the hostname, who seeded it "
    "and when (the last entry of the seeding record, and how many; --json has them all), and anything "
    "unexpected.\n\n"
    "The image is opened read-only: not one byte of the file changes. With --check, print only the verdict "
    "and exit 1 if the image departs from the persist contract (a hostname file the VM would ignore counts; "
    "neither a hostname nor a seeding record is required).\n\n"
    "Several images (or folders of them, or a batch report.json) are audited several per appliance launch: one "
    "row each (file, hostname, keys, password, last seeding, verdict); --json is a list of the reports. An image "
    "that cannot be opened is one failed row (exit 1), the others go on. --check names every image off the "
    "contract; --find-key lists the images that hold a key.\n\n" + exit_codes_help("inspect"),
)
def inspect_command(
    images: Annotated[
        list[Path],
        typer.Argument(help="The zvm disk image (qcow2 or raw); or several, folders of them, or a batch "
                       "report.json: one row per image.", show_default=False, metavar="IMAGE",
                       autocompletion=complete_images),
    ],
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 if the image departs from the contract, naming each problem.")
    ] = False,
    find_key: Annotated[
        list[str] | None,
        typer.Option("--find-key", metavar="FINGERPRINT|COMMENT",
                     help="Show only the images that hold this key (as --remove-key names one), and which key "
                     "matched; repeatable. Exit 0 when an image holds one, 1 when none does. Not with --check."),
    ] = None,
    jobs: Jobs = 0,
    json_out: JsonOut = False,
    accel: Accel = "auto",
    debug: Debug = False,
) -> None:
    from provision.commands.inspect import inspect_image
    from provision.core.contractcheck import check_image_contract
    from provision.guest.diskformat import probe_image
    from provision.ui import progress, render_inspect

    if check and find_key:  # one exit 1 for two answers: a script could not tell drift from no match
        raise UsageError("--check and --find-key each have their own exit 1 (off the contract; no image holds the "
                         "key): run them one at a time")
    check_accel(accel)
    if len(images) > 1 or images[0].is_dir() or images[0].suffix == ".json" or find_key:
        _inspect_fleet(images, check=check, find_key=find_key or [], jobs=jobs, json_out=json_out, accel=accel,
                       debug=debug_enabled())
        return
    image = images[0]
    info = probe_image(image)
    status = progress.appliance_starting if progress.wanted(json_out=json_out) else nullcontext
    report = inspect_image(info, accel=accel, waiting=status, notice=progress.say)
    problems = check_image_contract(report)
    if json_out:
        print(json.dumps(render_inspect.report_to_json(report, problems), indent=2))
    elif check:
        show(render_inspect.render_check(problems, report.certificates.warnings))
    else:
        render_inspect.print_report(report, problems=problems)
    if check and problems:
        raise typer.Exit(int(ExitCode.FAILURE))


def _inspect_fleet(images: list[Path], *, check: bool, find_key: list[str], jobs: int, json_out: bool,
                   accel: str, debug: bool) -> None:
    """inspect over several images: one row each; exit 1 on a failed row, drift with --check, no match with
    --find-key."""
    from provision.commands.fleet.audit import audit_images
    from provision.commands.fleet.images import gather_images
    from provision.core.fleetkeys import NoSuchKey, unmatched
    from provision.core.keyremoval import parse_selector
    from provision.ui import progress, render_fleet

    selectors = [parse_selector(text, "--find-key") for text in find_key]
    paths = gather_images(images)
    rows = audit_images(paths, accel=accel, jobs=jobs, find=selectors, debug=debug,
                        progress=progress.default_progress(json_out=json_out, name="inspect"))
    if find_key:
        rows_shown = [row for row in rows if row.matched or row.report is None]
        if json_out:
            print(json.dumps(render_fleet.audit_json(rows_shown), indent=2))
        else:
            show(render_fleet.audit_found(rows))
        # for scripts: 0 found, 1 a key no image holds, or an image could not be read (it may hold it)
        missing = unmatched(selectors, [row.matched for row in rows])
        if missing:
            _say_failure(NoSuchKey("--find-key", missing))
        if missing or any(row.report is None for row in rows):
            raise typer.Exit(int(ExitCode.FAILURE))
        return
    if json_out:
        print(json.dumps(render_fleet.audit_json(rows), indent=2))
    elif check:
        show(render_fleet.audit_check(rows))
    else:
        show(render_fleet.audit_rows(rows))
    if any(row.report is None for row in rows) or (check and any(row.problems for row in rows)):
        raise typer.Exit(int(ExitCode.FAILURE))


@app.command(
    "keys",
    cls=ReadableCommand,
    short_help="Revoke, add or rotate SSH keys across many images at once.",
    help="Change the SSH keys of many images at once: take a key out of every image that holds it "
    "(--remove-key), add a key to every image (--add-key), or both: rotate, putting the added key(s) wherever "
    "a removed one was. IMAGE... are images, folders of them, or a batch report.json; several disks share "
    "each appliance launch.\n\n"
    "Every image keeps seed's rules: an image whose only way in is the key removed is refused and named, the "
    "others go on; nothing is written through a link; each file is written under a temporary name and read "
    "back; an image in use is refused; each changed image's seeding record names the operator and the keys "
    "removed and added. An image that does not hold the key is left byte-identical.\n\n"
    "--update-signer KEY.pub (repeatable) sets the release signers of every image (seed's --update-signer), "
    "alone or with a key change; an image that already has exactly these is left as it is.\n\n"
    "In place, or with --out-dir DIR into new qcow2 copies (DIR/<name>.qcow2, never over an existing file), "
    "the images left as they were. A report (keys-report.json in --out-dir, or --report FILE; --json prints "
    "it) lists each image: changed, unchanged, refused (why), failed.\n\n"
    "Certificates, with or without a key change: --host-ca F renews every image's host certificate (its host "
    "key signed again for its hostname, a new serial and validity; an image with no host key is refused); "
    "--user-ca F.pub and --user-principal set every image's trusted user CAs and principals (a CA rotation).\n\n"
    + exit_codes_help("keys"),
)
def keys_command(
    images: Annotated[
        list[Path],
        typer.Argument(help="Images, folders of images, or a batch report.json.", show_default=False,
                       metavar="IMAGE", autocompletion=complete_images),
    ],
    remove_key: Annotated[
        list[str] | None,
        typer.Option("--remove-key", metavar="FINGERPRINT|COMMENT",
                     help="A key to take out wherever it is: its SHA256 fingerprint (with or without SHA256:), its "
                     "public key line (any comment), or its exact comment (as seed's --remove-key); repeatable. "
                     "Images that do not hold it are left unchanged; a key no image holds is exit 1."),
    ] = None,
    add_key: Annotated[
        list[str] | None,
        typer.Option("--add-key", metavar="KEY",
                     help="A key to add: a .pub or authorized_keys file, gh:USER, gl:USER or an https:// URL (as "
                     "--ssh-key); repeatable. Alone: added to every image. With --remove-key: only where a removed "
                     "key was (a rotation).", autocompletion=complete_public_keys),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option("--out-dir", metavar="DIR", help="Write changed copies to DIR/<name>.qcow2; the images stay "
                     "as they are."),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", metavar="FILE", help="Write the report here (default: DIR/keys-report.json "
                     "with --out-dir; in place, none unless given)."),
    ] = None,
    update_signer: UpdateSignerOption = None,
    jobs: Jobs = 0,
    operator: Annotated[str | None, OperatorOption] = None,
    host_ca: HostCA = None,
    host_domain: HostDomain = None,
    host_cert_validity: HostCertValidity = None,
    user_ca: UserCA = None,
    user_principal: UserPrincipal = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show per image what would change; open them read-only, write nothing.")
    ] = False,
    json_out: JsonOut = False,
    accel: Accel = "auto",
    debug: Debug = False,
) -> None:
    from provision.commands.fleet.images import gather_images
    from provision.commands.certoptions import read_cert_options
    from provision.commands.fleet.keys import KeysOptions, run_keys
    from provision.commands.fleet.renew import wants_certificates
    from provision.core.fleetkeys import KeyChange, NoSuchKey
    from provision.core.keyremoval import parse_selector
    from provision.fetch.forgekeys import KeyFetcher
    from provision.host.operator import operator as operator_of
    from provision.host.reading import read_key_sources, read_signer_files
    from provision.ui import progress, render_fleet

    check_accel(accel)
    selectors = tuple(parse_selector(text) for text in remove_key or ())
    certs = read_cert_options(cert_options(host_ca, host_domain, host_cert_validity, user_ca, user_principal))
    paths = tuple(gather_images(images))  # the images first: a missing one is said before any key is fetched
    signers = read_signer_files(update_signer) if update_signer else None
    adding, _ = read_key_sources(add_key, KeyFetcher().fetch) if add_key else ([], [])
    # certificates alone (renewing host certificates, rotating user CAs) are a change of their own
    alone = wants_certificates(certs) and not selectors and not adding and signers is None
    change = None if alone else KeyChange(remove=selectors, add=tuple(adding), signers=signers)
    options = KeysOptions(images=paths, change=change, out_dir=out_dir, dry_run=dry_run,
                          operator=operator_of(operator), accel=accel, jobs=jobs, debug=debug_enabled(), certs=certs)
    result = run_keys(options, progress.default_progress(json_out=json_out, name="keys"), report)
    if json_out:
        print(json.dumps(result.to_json(), indent=2))
    else:
        show(render_fleet.keys_summary(result))
    if result.unmatched:  # a revocation that revoked nothing is a failure, said on stderr too
        _say_failure(NoSuchKey("--remove-key", result.unmatched))
    if result.exit_code:
        raise typer.Exit(int(result.exit_code))


@app.command("sample-disk", cls=ReadableCommand, short_help="Create a blank disk with the zvm layout, to try things on.",
             help="Create a blank qcow2 disk OUT with the zvm layout (GPT: ESP, ext4 nix, ext4 persist),"
             " to try the tool on and for tests.\n\n" + exit_codes_help("sample-disk"))
def sample_disk_command(
    out: Annotated[Path, typer.Argument(help="Where to create the disk (must not exist).", show_default=False,
                                        metavar="OUT")],
    size: Annotated[str, typer.Option("--size", metavar="SIZE", help="Virtual size, e.g. 20G or 512M.")] = "20G",
    accel: Accel = "auto",
    debug: Debug = False,
) -> None:
    from provision.commands.sample_disk import create_sample_disk
    from provision.ui import progress

    check_accel(accel)
    shown = progress.wanted(json_out=False)  # the live line of each step, on a terminal only
    create_sample_disk(out, size, accel=accel, step=progress.working if shown else lambda _doing: nullcontext(),
                       notice=progress.say)
    show(f"created {out} ({size}, GPT: ESP, nix, persist)")


@app.command(
    "batch",
    cls=ReadableCommand,
    short_help="Make one seeded image per user of a manifest (CSV or TOML).",
    help="Make one seeded image per user of MANIFEST: DIR/<name>.qcow2, plus DIR/report.json.\n\n"
    "MANIFEST is a CSV file with the header name,ssh_keys,password_hash,netbird_setup_key,netbird_management_url "
    "(or TOML [[user]] tables with those fields), and optionally hostname; a username, user or login column is "
    "read as name. ssh_keys lists key files separated "
    "by ';', relative to the manifest's folder, or keys to fetch over HTTPS: gh:USER, gl:USER, an https:// URL "
    "(each distinct one fetched once, before any image is made); an empty password_hash generates a password, "
    "written to DIR/initial-passwords.csv (mode 0600). hostname is the VM's name (1-63 lower-case letters, "
    "digits and hyphens); empty, it is zvm-<name> in lower case with other characters made '-'. Two rows with "
    "one hostname are refused. Every row is checked first: any bad row means exit 2 (1 when a key source "
    "cannot be fetched) and nothing created. The delimiter may be ',', ';' or tab, as the header line shows; "
    "columns with neither header nor cells are ignored; the file must be UTF-8 (Excel: \"CSV UTF-8\"); names "
    "are ASCII and do not start with '.' or '-'.\n\n"
    "Each image's seeding record names its manifest row and the operator (--operator, default user@host).\n\n"
    "Release signers are a batch-wide flag, not a manifest column: --update-signer KEY.pub (repeatable) gives "
    "every image the same list; without it the base's list is kept.\n\n"
    "Running it again resumes: complete images are kept unless --force. With --overlay the images are small "
    "qcow2 overlays backed by the base: the base must travel with them, at the same absolute path, unchanged.\n\n"
    "To hand images over: --compress (compressed qcow2, the smallest to send) or --format raw|vmdk|vdi "
    "(DIR/<name>.raw, .vmdk for VMware, .vdi for VirtualBox); report.json gives each image's size and sha256.\n\n"
    + exit_codes_help("batch"),
)
def batch_command(
    manifest: Annotated[Path, typer.Argument(help="The manifest (.csv, or .toml).", show_default=False, metavar="MANIFEST")],
    base: Annotated[
        Path,
        typer.Option("--base", help="The zvm base image every copy starts from.", metavar="IMAGE",
                     autocompletion=complete_images),
    ],
    out_dir: Annotated[Path, typer.Option("--out-dir", help="Where the images and reports go.", metavar="DIR")],
    overlay: Annotated[
        bool, typer.Option("--overlay", help="Make qcow2 overlays backed by the base instead of full copies.")
    ] = False,
    jobs: Jobs = 0,
    shard: Annotated[
        str | None,
        typer.Option("--shard", metavar="K/N|auto",
                     help="Only the K-th of N slices of the manifest, e.g. 2/4; the run writes report-K-of-N.json "
                     "(merge them with batch-report). auto: the slice of this Kubernetes Indexed Job pod "
                     "(JOB_COMPLETION_INDEX, with ZVM_PROVISION_SHARDS or --shard-count) or Slurm array task."),
    ] = None,
    shard_count: Annotated[
        int | None,
        typer.Option("--shard-count", min=1, metavar="N",
                     help="With --shard auto in a Kubernetes Indexed Job: the Job's completions "
                     "(or set ZVM_PROVISION_SHARDS)."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Make every image again, even complete ones.")] = False,
    update_signer: UpdateSignerOption = None,
    operator: Annotated[str | None, OperatorOption] = None,
    host_ca: HostCA = None,
    host_domain: HostDomain = None,
    host_cert_validity: HostCertValidity = None,
    user_ca: UserCA = None,
    user_principal: UserPrincipal = None,
    json_out: JsonOut = False,
    accel: Accel = "auto",
    compress: Compress = False,
    format_name: Format = None,
    debug: Debug = False,
) -> None:
    from provision.commands import batch
    from provision.host.reading import read_signer_files
    from provision.commands.certoptions import read_cert_options
    from provision.core.outputformat import output_spec
    from provision.core.shards import ShardSource, choose_shard, engine_ignored
    from provision.host.operator import operator as operator_of
    from provision.ui import progress, render_batch

    check_accel(accel)
    output = output_spec(format_name, compress, overlay=overlay)  # exit 2 before anything is read or made
    choice = choose_shard(shard, shard_count, os.environ)  # --shard auto reads the job engine's variables
    options = batch.BatchOptions(
        manifest=manifest, base=base, out_dir=out_dir, overlay=overlay, jobs=jobs,
        shard=(choice.index, choice.count) if choice is not None else None, force=force, accel=accel,
        output=output,
        operator=operator_of(operator), debug=debug_enabled(),
        update_signers=read_signer_files(update_signer) if update_signer else None,
        certs=read_cert_options(cert_options(host_ca, host_domain, host_cert_validity, user_ca, user_principal)),
    )
    shown = progress.default_progress(json_out=json_out)
    if choice is not None and choice.source != ShardSource.GIVEN:
        shown.note(render_batch.describe_shard(choice))
    elif (variable := engine_ignored(shard, os.environ)) is not None:
        shown.note(f"{variable} is set, but without --shard this run takes the whole manifest "
                   "(--shard auto takes this task's slice)")
    result = batch.run_batch(options, shown)
    if json_out:
        print(result.report_path.read_text(encoding="utf-8"), end="")
    else:
        show(render_batch.render_batch(result))
    if result.failed:
        raise typer.Exit(int(ExitCode.FAILURE))


@app.command(
    "batch-report",
    cls=ReadableCommand,
    short_help="Merge a sharded batch roll-out's reports into one report.json.",
    help="Merge the reports of a sharded roll-out (batch --shard K/N, or --shard auto) into one report.json.\n\n"
    "Reads every report-K-of-N.json in DIR (or in several folders), checks that they come from the same "
    "manifest and number of shards and that every row of the manifest is in exactly one of them, then writes "
    "report.json and, if the shards generated passwords, initial-passwords.csv (mode 0600) beside it.\n\n"
    "Every image is checked against the size and sha256 its shard recorded (read in full; --no-verify skips "
    "it).\n\n"
    + exit_codes_help("batch-report"),
)
def batch_report_command(
    dirs: Annotated[list[Path], typer.Argument(help="The folder(s) the shards wrote to.", show_default=False,
                                               metavar="DIR")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out-dir", metavar="DIR", help="Where report.json goes (default: DIR, when one is given)."),
    ] = None,
    no_verify: Annotated[
        bool,
        typer.Option("--no-verify", help="Do not read every image to check its size and sha256 against its "
                     "shard's report (for huge roll-outs; the merged report then certifies what the shards "
                     "recorded, unchecked)."),
    ] = False,
    debug: Debug = False,
) -> None:
    from provision.commands.batch.report import merge_batch_reports
    from provision.ui import render_batch

    result = merge_batch_reports(dirs, out_dir, verify=not no_verify)
    show(render_batch.render_batch_report(result))
    if result.unfinished:
        raise typer.Exit(int(ExitCode.FAILURE))


def main(argv: list[str] | None = None) -> None:
    """The command: every error, of every command, goes through report_error here and nowhere else."""
    try:
        code = app(args=argv, prog_name="zvm-provision", standalone_mode=False)
        sys.stdout.flush()  # a full disk or a closed pipe shows here, while it can still be reported
    except SystemExit:
        raise
    except BaseException as exc:  # the one place that turns every failure into an exit code
        if isinstance(exc, KeyboardInterrupt | Interrupted) or getattr(exc, "exit_code", 0) == ExitCode.INTERRUPTED:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # stopping: a late Ctrl-C must not cut the message short
        code = report_error(exc, debug=debug_enabled())
    sys.exit(code if isinstance(code, int) else 0)
