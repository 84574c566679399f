"""The interactive wizard: `zvm-provision IMAGE` on a terminal asks for what no flag gave.

The only module that imports questionary, and only inside `QuestionaryPrompter`, so `--help` stays fast.
Every question goes through a `Prompter` with a stable question name; tests answer by name
(`ScriptedPrompter`), the real run uses questionary.

Flow: show the image (format and size) at once, and while the appliance starts in the background (15 s or
more under TCG) ask what does not depend on what the image holds: the SSH keys to add (the person's default
key ticked) and Netbird. Then wait for the appliance (a live status with the seconds), show the partitions
and what persist holds, say what stays, and ask what depends on it: the password (with "keep the current
password" when there is one), and the keys again only if neither the answer nor the image gives one. Plan
against the real state, show that plan, confirm. No question is asked twice, except to correct an answer.

Nothing is written before the confirmation: the image was opened with persist mounted read-only, and a
generated key pair is saved on this machine only after the "yes". The caller then applies exactly the plan
that was shown (`seed.apply_planned`), so the host key fingerprint in the summary is the one that lands in
the image.
"""

from __future__ import annotations

import getpass
import os
import socket
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from provision.core.credentials import MIN_PASSWORD_CHARS
from provision.errors import SEED_STOPPED_BEFORE_WRITING, Aborted, Declined, UsageError
from provision.core.request import PasswordChoice
from provision.secret import Secret

if TYPE_CHECKING:
    from provision.core.credentials import AuthorizedKey
    from provision.core.plan import Plan
    from provision.core.request import SeedFlags, SeedRequest
    from provision.core.state import ImageState

Validator = Callable[[str], "bool | str"]
ListValidator = Callable[[list[str]], "bool | str"]
Options = Sequence["Option"]
ABORTED_MESSAGE = SEED_STOPPED_BEFORE_WRITING
DECLINED_MESSAGE = "you answered no: nothing was written"
BENCH_ENV = "ZVM_PROVISION_BENCH_FILE"  # when set, the wizard appends "confirmed <time.monotonic()>" to it

PASSWORD_FLAGS = "--password-stdin, --password-file F, --password-hash-file F or --no-password"
KEY_FLAGS = "--ssh-key F"


# --------------------------------------------------------------------------------------------------
# Prompting


@dataclass(frozen=True)
class Option:
    """One entry of a select or checkbox question: `value` is what the answer returns."""

    value: str
    title: str
    checked: bool = False


class Prompter(Protocol):
    """One method per kind of question. `name` is stable and identifies the question (tests answer by it).
    Each method returns the answer or raises `Aborted` (Ctrl-C)."""

    def text(
        self, name: str, message: str, *, default: str = "", validate: Validator | None = None
    ) -> str: ...

    def password(self, name: str, message: str, *, validate: Validator | None = None) -> str: ...

    def confirm(self, name: str, message: str, *, default: bool = False) -> bool: ...

    def select(self, name: str, message: str, options: Options, *, default: str | None = None) -> str: ...

    def checkbox(
        self, name: str, message: str, options: Options, *, validate: ListValidator | None = None
    ) -> list[str]: ...


def _always(_: Any) -> bool:
    return True


def _answered(answer: Any) -> Any:
    """questionary's ask() returns None on Ctrl-C: an abort, never an empty answer."""
    if answer is None:
        raise Aborted(ABORTED_MESSAGE)
    return answer


class QuestionaryPrompter:
    """The real prompts, on the terminal."""

    def text(self, name: str, message: str, *, default: str = "", validate: Validator | None = None) -> str:
        import questionary

        question = questionary.text(message, default=default, validate=validate or _always)
        return _answered(question.ask(patch_stdout=True))

    def password(self, name: str, message: str, *, validate: Validator | None = None) -> str:
        import questionary

        return _answered(questionary.password(message, validate=validate or _always).ask(patch_stdout=True))

    def confirm(self, name: str, message: str, *, default: bool = False) -> bool:
        import questionary

        return bool(_answered(questionary.confirm(message, default=default).ask(patch_stdout=True)))

    def select(self, name: str, message: str, options: Options, *, default: str | None = None) -> str:
        import questionary

        choices = [questionary.Choice(option.title, value=option.value) for option in options]
        initial = next((choice for choice in choices if choice.value == default), None)
        return _answered(questionary.select(message, choices=choices, default=initial).ask(patch_stdout=True))

    def checkbox(
        self, name: str, message: str, options: Options, *, validate: ListValidator | None = None
    ) -> list[str]:
        import questionary

        choices = [questionary.Choice(o.title, value=o.value, checked=o.checked) for o in options]
        question = questionary.checkbox(message, choices=choices, validate=validate or _always)
        return list(_answered(question.ask(patch_stdout=True)))


DEFAULT = object()  # a ScriptedPrompter answer: take the question's default (checked options for a checkbox)


class Turns(list):
    """ScriptedPrompter: successive answers to the same question, e.g. `Turns(["secret12", "secret12"])`."""


@dataclass
class ScriptedPrompter:
    """A test double answering by question name, not by call order.

    A plain answer is used once. `Turns([...])` gives successive answers to one question: a re-ask after a
    mismatch, or answers that the question's validator refuses (as questionary keeps the prompt open, the
    refusal messages are recorded in `refused`). `None` behaves as Ctrl-C, `DEFAULT` as pressing Enter.
    A question with no answer left fails the test; `unused()` lists answers never consumed.
    """

    answers: dict[str, Any]
    asked: list[str] = field(default_factory=list)
    refused: dict[str, list[str]] = field(default_factory=dict)  # question -> validator messages shown
    seen: dict[str, dict[str, Any]] = field(default_factory=dict)  # question -> message, options, default

    def _next(self, name: str) -> Any:
        turn = self.asked.count(name)
        self.asked.append(name)
        if name not in self.answers:
            raise AssertionError(f"unexpected question {name!r}")
        answer = self.answers[name]
        if isinstance(answer, Turns):
            if turn >= len(answer):
                raise AssertionError(f"question {name!r} asked more often than scripted ({len(answer)})")
            answer = answer[turn]
        elif turn > 0:
            raise AssertionError(f"question {name!r} asked again; script Turns([...]) if that is expected")
        if answer is None:
            raise Aborted(ABORTED_MESSAGE)
        return answer

    def _validated(self, name: str, validate: Validator | None, default: str = "") -> str:
        while True:
            answer = self._next(name)
            if answer is DEFAULT:
                answer = default
            verdict = True if validate is None else validate(answer)
            if verdict is True:
                return answer
            self.refused.setdefault(name, []).append(str(verdict))

    def text(self, name: str, message: str, *, default: str = "", validate: Validator | None = None) -> str:
        self.seen[name] = {"message": message, "default": default}
        return self._validated(name, validate, default)

    def password(self, name: str, message: str, *, validate: Validator | None = None) -> str:
        self.seen[name] = {"message": message}
        return self._validated(name, validate)

    def confirm(self, name: str, message: str, *, default: bool = False) -> bool:
        self.seen[name] = {"message": message, "default": default}
        answer = self._next(name)
        return default if answer is DEFAULT else bool(answer)

    def select(self, name: str, message: str, options: Options, *, default: str | None = None) -> str:
        self.seen[name] = {"message": message, "options": list(options), "default": default}
        answer = self._next(name)
        answer = default if answer is DEFAULT else answer
        if answer not in [option.value for option in options]:
            raise AssertionError(f"{name!r}: {answer!r} is not one of the options")
        return answer

    def checkbox(
        self, name: str, message: str, options: Options, *, validate: ListValidator | None = None
    ) -> list[str]:
        self.seen[name] = {"message": message, "options": list(options)}
        while True:
            answer = self._next(name)
            if answer is DEFAULT:
                answer = [option.value for option in options if option.checked]
            unknown = set(answer) - {option.value for option in options}
            if unknown:
                raise AssertionError(f"{name!r}: {sorted(unknown)} are not options")
            verdict = True if validate is None else validate(list(answer))
            if verdict is True:
                return list(answer)
            self.refused.setdefault(name, []).append(str(verdict))

    def unused(self) -> list[str]:
        """Scripted answers never consumed."""
        left = []
        for name, answer in self.answers.items():
            wanted = len(answer) if isinstance(answer, Turns) else 1
            if self.asked.count(name) < wanted:
                left.append(name)
        return left


# --------------------------------------------------------------------------------------------------
# What the flags leave open


def missing_flags(flags: SeedFlags, state: ImageState | None) -> list[str]:
    """What a run without a terminal lacks, as the flags to give. `state` None: the image was not read yet,
    so whatever the image may already hold counts as missing."""
    missing = []
    if not flags.has_password_source and (state is None or state.password is None):
        missing.append(f"a password source ({PASSWORD_FLAGS})")
    if flags.keys is None and (state is None or not state.authorized_keys or flags.replace_keys):
        missing.append(f"an SSH public key ({KEY_FLAGS})")
    return missing


def missing_flags_message(missing: list[str], *, image_read: bool) -> str:
    head = "the image does not hold it yet" if len(missing) == 1 else "the image holds neither"
    if not image_read:
        head = "nothing to seed"
    return f"no terminal to ask on, and {head}: give {' and '.join(missing)}"


# --------------------------------------------------------------------------------------------------
# Validators: the credentials rules, as questionary validators (True or the message to show)


def _rule(check: Callable[[str], Any]) -> Validator:
    def validate(text: str) -> bool | str:
        try:
            check(text)
        except UsageError as exc:
            return exc.message
        return True

    return validate


def password_validator(*, empty_keeps: bool) -> Validator:
    from provision.core.credentials import check_password

    def check(text: str) -> None:
        if text == "" and empty_keeps:
            return
        if text == "":  # questionary shows this under the prompt: say what is wanted, not just "empty"
            raise UsageError(f"the password must be at least {MIN_PASSWORD_CHARS} characters long")
        check_password(text)

    return _rule(check)


def hash_validator() -> Validator:
    from provision.core.credentials import validate_password_hash

    return _rule(validate_password_hash)


def pasted_key_validator() -> Validator:
    from provision.core.credentials import parse_authorized_keys

    return _rule(lambda text: parse_authorized_keys(text, "the pasted key"))


def key_file_validator() -> Validator:
    from provision.sources import read_key_files

    def check(text: str) -> None:
        if not text.strip():
            raise UsageError("give the path of a .pub or authorized_keys file")
        read_key_files([Path(text.strip()).expanduser()])

    return _rule(check)


def new_key_path_validator(home: Path) -> Validator:
    def check(text: str) -> None:
        if not text.strip():
            raise UsageError("give a file name for the new private key")
        path = Path(text.strip()).expanduser()
        for target in (path, path.with_name(path.name + ".pub")):
            if os.path.lexists(target):
                raise UsageError(f"{target} already exists; choose another name")
        parent = path.parent
        if not parent.is_dir() and parent != home / ".ssh":
            raise UsageError(f"{parent} is not a directory")

    return _rule(check)


def netbird_key_validator() -> Validator:
    from provision.core.credentials import validate_netbird_setup_key

    return _rule(validate_netbird_setup_key)


def management_url_validator() -> Validator:
    from provision.core.credentials import validate_management_url

    return _rule(lambda text: validate_management_url(text) if text.strip() else None)


# --------------------------------------------------------------------------------------------------
# The wizard


@dataclass(frozen=True)
class NewKeyPair:
    """A generated user key pair, saved on this machine only after the confirmation."""

    path: Path
    private_bytes: bytes = field(repr=False)
    public_line: str


@dataclass(frozen=True)
class WizardResult:
    request: SeedRequest
    plan: Plan  # the plan shown in the summary; apply exactly this one
    key_pair_saved: Path | None = None


def run_wizard(
    session: Any,
    flags: SeedFlags,
    *,
    dry_run: bool,
    prompter: Prompter | None = None,
    say: Callable[[str], None] | None = None,
    home: Path | None = None,
    status: Callable[[], AbstractContextManager[None]] | None = None,
) -> WizardResult:
    """Ask for whatever `flags` left open, show the plan, confirm. `Aborted` (exit 130) on Ctrl-C, `Declined`
    (exit 1) on No.

    `session` needs `info`, `wait()`, `read_state()` and `appliance.partitions(0)` (a `seed.ImageSession`).
    `status()` is shown while the wizard waits for the appliance (on a terminal: a live line with the seconds).
    """
    wizard = _Wizard(
        session, flags, dry_run=dry_run, prompter=prompter or QuestionaryPrompter(),
        say=say or _print, home=home if home is not None else Path.home(), status=status or nullcontext,
    )
    try:
        return wizard.run()
    except KeyboardInterrupt:  # while waiting for the appliance or hashing: same promise as a prompt's Ctrl-C
        raise Aborted(ABORTED_MESSAGE) from None


def _print(line: str) -> None:
    print(line, flush=True)


class _Wizard:
    def __init__(
        self, session: Any, flags: SeedFlags, *, dry_run: bool, prompter: Prompter,
        say: Callable[[str], None], home: Path, status: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self.session = session
        self.status = status
        self.flags = flags
        self.dry_run = dry_run
        self.ask = prompter
        self.say = say
        self.home = home
        self.key_pair: NewKeyPair | None = None

    def run(self) -> WizardResult:
        from provision.commands.seed import plan_seed

        self.show_image()
        answered = self.flags
        # First what does not depend on the image, while the appliance starts (15 s or more under TCG)...
        if self.flags.keys is None:
            answered = replace(answered, keys=self.ask_keys(need_one=self.flags.replace_keys))
        answered = self.ask_netbird(answered)
        # ...then the image's state, and what depends on it: what stays, keeping the current password.
        state = self.read_state()
        self.say_what_stays(answered, state)
        no_key = self.flags.replace_keys or not state.authorized_keys
        if self.flags.keys is None and not answered.keys and no_key:
            self.say("The image holds no SSH key yet, and zvm logs in over SSH with a key only: "
                     "choose at least one.")
            answered = replace(answered, keys=self.ask_keys(need_one=True))
        if not self.flags.has_password_source:
            answered = replace(answered, password=self.ask_password(state))
        request = answered.to_request()  # hashes a password given by --password-file
        plan = plan_seed(self.session, request)
        self.show_summary(plan)
        if self.dry_run:
            unsaved = ", and the new key pair is not saved." if self.key_pair else "."
            self.say(f"Dry run: nothing will be written{unsaved}")
            return WizardResult(request, plan)
        if not plan.changes and self.key_pair is None:
            return WizardResult(request, plan)
        if not self.ask.confirm("confirm", f"Write this to {self.session.info.path}?", default=True):
            raise Declined(DECLINED_MESSAGE)
        _bench_mark("confirmed")
        saved = self.save_key_pair()
        return WizardResult(request, plan, saved)

    # --- the image

    def show_image(self) -> None:
        info = self.session.info
        self.say(f"Image: {info.path} ({info.format}, {human_size(info.virtual_size)} virtual)")
        self.say("Starting the libguestfs appliance to look inside (read-only until you confirm); "
                 "meanwhile, the questions that do not depend on what the image holds.")

    def read_state(self) -> ImageState:
        with self.status():
            self.session.wait()
        persist = getattr(self.session, "persist", None)
        self.say("Partitions:")
        for part in self.session.appliance.partitions(0):
            is_persist = persist is not None and part.device == getattr(persist, "device", None)
            mark = "  <- persist" if is_persist else ""
            fs_type, label = part.fs_type or "-", part.label or "-"
            self.say(f"  {part.device:<10} {fs_type:<6} {label:<10} {human_size(part.size)}{mark}")
        state = self.session.read_state()
        for line in describe_state(state):
            self.say(line)
        return state

    # --- password

    def ask_password(self, state: ImageState) -> PasswordChoice:
        from provision.core.credentials import hash_password, validate_password_hash

        current = state.password
        keepable = current is not None and current.state in ("set", "locked")
        options = []
        if keepable:
            options.append(Option("keep", f"Keep the current password ({_password_words(current)})"))
        options += [
            Option("type", "Type a new password" if keepable else "Type a password"),
            Option("hash", "Paste a ready hash ($6$ sha-512 or $y$ yescrypt, e.g. from mkpasswd)"),
            Option("none", "No password: key-only login over SSH (the password is locked)"),
        ]
        how = self.ask.select(
            "password_method", "Password for the user zvm (console login; SSH takes keys only):", options,
            default="keep" if keepable else "type",
        )
        if how == "keep":
            return PasswordChoice.keep()
        if how == "none":
            return PasswordChoice.locked()
        if how == "hash":
            pasted = self.ask.password(
                "password_hash", "Paste the hash (not shown):", validate=hash_validator()
            )
            return PasswordChoice.from_hash(validate_password_hash(pasted.strip()))
        keep_hint = ", empty keeps the current one" if keepable else ""
        while True:
            first = self.ask.password(
                "password",
                f"Password (at least {MIN_PASSWORD_CHARS} characters{keep_hint}):",
                validate=password_validator(empty_keeps=keepable),
            )
            if first == "" and keepable:
                return PasswordChoice.keep()
            again = self.ask.password("password_again", "The same password again:")
            if again == first:
                return PasswordChoice.from_hash(hash_password(first))  # the plaintext goes no further
            self.say("The two passwords differ; please type them again.")

    # --- SSH keys

    def ask_keys(self, *, need_one: bool) -> tuple[AuthorizedKey, ...]:
        """Keys to add (or, with --replace-keys, to keep alone). Asked before the image's state is known: with
        none chosen, the image's own keys stay; the caller asks again if it turns out to hold none."""
        from provision.core.credentials import merge_keys, parse_authorized_keys
        from provision.sources import read_key_files

        found = find_local_public_keys(self.home)
        default = default_key(found)
        options = [
            Option(f"file:{path}", f"{_tilde(path, self.home)}  {key.describe()}", checked=path == default)
            for path, key in found
        ]
        options += [
            Option("paste", "Paste a public key"),
            Option("path", "Give the path of a .pub or authorized_keys file"),
            Option("generate", "Generate a new ed25519 key pair on this machine"),
        ]

        def check(selected: list[str]) -> bool | str:
            if need_one and not selected:
                return "choose at least one: zvm logs in over SSH with a key only"
            return True

        chosen = self.ask.checkbox(
            "ssh_keys", "SSH public keys to let in as zvm (space toggles, enter accepts):", options,
            validate=check,
        )
        keys: list[AuthorizedKey] = []
        by_value = {f"file:{path}": key for path, key in found}
        for value in chosen:
            if value in by_value:
                keys = merge_keys(keys, [by_value[value]], replace=False)
            elif value == "paste":
                text = self.ask.password(
                    "ssh_key_paste", "Paste the public key line (not shown; a private key is refused):",
                    validate=pasted_key_validator(),
                )
                keys = merge_keys(keys, parse_authorized_keys(text, "the pasted key"), replace=False)
            elif value == "path":
                text = self.ask.text(
                    "ssh_key_file", "Path of the public key file:", validate=key_file_validator()
                )
                keys = merge_keys(keys, read_key_files([Path(text.strip()).expanduser()]), replace=False)
            elif value == "generate":
                keys = merge_keys(keys, [self.ask_new_key_pair()], replace=False)
        for key in keys:
            self.say(f"  + {key.describe()}")
        return tuple(keys)

    def ask_new_key_pair(self) -> AuthorizedKey:
        from provision.core.credentials import generate_user_keypair, parse_authorized_keys

        text = self.ask.text(
            "keygen_path", "Save the new private key as (the public key goes next to it, .pub):",
            default=str(_free_key_path(self.home)), validate=new_key_path_validator(self.home),
        )
        path = Path(text.strip()).expanduser()
        while True:
            passphrase = self.ask.password(
                "keygen_passphrase", "Passphrase for the new key (empty for none):"
            )
            if passphrase:
                again = self.ask.password("keygen_passphrase_again", "The same passphrase again:")
                if again != passphrase:
                    self.say("The two passphrases differ; please type them again.")
                    continue
            try:
                private, public = generate_user_keypair(
                    comment=_key_comment(), passphrase=Secret(passphrase) if passphrase else None
                )
            except UsageError as exc:  # e.g. no bcrypt for an encrypted key: ask again
                self.say(exc.message)
                continue
            break
        self.key_pair = NewKeyPair(path, private, public)
        return parse_authorized_keys(public, "the new key")[0]

    def save_key_pair(self) -> Path | None:
        from provision.core.credentials import write_private_key_file

        if self.key_pair is None:
            return None
        path = self.key_pair.path
        if not path.parent.exists():  # only ~/.ssh gets here (the validator refused any other missing folder)
            path.parent.mkdir(mode=0o700)
        write_private_key_file(path, self.key_pair.private_bytes, self.key_pair.public_line)
        self.say(f"Saved the new key pair: {path} (private, 0600) and {path}.pub")
        self.say(f"  connect with: ssh -i {path} zvm@<the VM's address>")
        return path

    # --- Netbird

    def ask_netbird(self, answered: SeedFlags) -> SeedFlags:
        from provision.core.credentials import validate_management_url, validate_netbird_setup_key

        if answered.netbird_setup_key is None:
            if not self.ask.confirm("netbird", "Join a Netbird network on first boot?", default=False):
                return answered
            key = self.ask.password(
                "netbird_setup_key", "Netbird setup key (XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX, not shown):",
                validate=netbird_key_validator(),
            )
            answered = replace(answered, netbird_setup_key=validate_netbird_setup_key(key))
        if answered.netbird_management_url is None:
            url = self.ask.text(
                "netbird_management_url", "Self-hosted management URL (empty for Netbird's own service):",
                validate=management_url_validator(),
            )
            if url.strip():
                answered = replace(answered, netbird_management_url=validate_management_url(url))
        return answered

    def say_what_stays(self, answered: SeedFlags, state: ImageState) -> None:
        """Once the state is known: what the image holds that the answers given so far leave in place."""
        if state.authorized_keys and not self.flags.replace_keys:
            count = _count(len(state.authorized_keys), "key")
            added = ", with the ones you chose" if answered.keys else ""
            self.say(f"The image already lets in {count}; they stay{added}.")
        if state.netbird_setup_key_present:
            if answered.netbird_setup_key is None:
                self.say("The image already holds a Netbird setup key; it stays.")
            else:
                self.say("The image's Netbird setup key is replaced by the one you gave.")
        if state.netbird_management_url and answered.netbird_management_url is None:
            url = state.netbird_management_url
            self.say(f"The image names the Netbird management server {url}; it stays.")

    # --- summary

    def show_summary(self, plan: Plan) -> None:
        from provision.ui import render as report
        from provision.commands.seed import SeedOutcome

        outcome = SeedOutcome(self.session.info, plan, applied=False)
        self.say("")
        self.say(report.render_plan(outcome, dry_run=False))
        self.say(report.render_summary(outcome))
        if self.key_pair is not None:
            where = "would be saved" if self.dry_run else "will be saved, after you confirm,"
            path = self.key_pair.path
            self.say(f"\nThe new key pair {where} to {path} (0600) and {path}.pub")
        self.say("")


# --------------------------------------------------------------------------------------------------
# Helpers


def describe_state(state: ImageState) -> list[str]:
    """What persist holds now, in words; never a secret."""
    from provision.core.credentials import public_key_fingerprint

    if state.is_blank:
        return ["persist: not seeded yet (no password, no SSH key, no host key)"]
    lines = ["persist: already seeded"]
    lines.append(f"  password:  {_password_words(state.password) if state.password else 'none'}")
    lines.append(f"  SSH keys:  {len(state.authorized_keys)}")
    lines += [f"    {key.describe()}" for key in state.authorized_keys]
    if state.host_public_line:
        lines.append(f"  host key:  {public_key_fingerprint(state.host_public_line)}")
    else:
        lines.append("  host key:  none")
    lines.append(f"  machine-id: {'present' if state.machine_id else 'none'}")
    if state.netbird_setup_key_present:
        lines.append("  Netbird:   a setup key is waiting for first boot")
    return lines


def _password_words(info: Any) -> str:
    if info.state == "set":
        return f"set, {info.algorithm}"
    if info.state == "locked":
        return "locked: key-only login"
    return "unreadable (not a valid hash)"


def find_local_public_keys(home: Path) -> list[tuple[Path, AuthorizedKey]]:
    """The keys in ~/.ssh/*.pub that parse; unreadable or odd files are skipped (a path can be given)."""
    from provision.sources import read_key_files

    found: list[tuple[Path, AuthorizedKey]] = []
    ssh_dir = home / ".ssh"
    if not ssh_dir.is_dir():
        return found
    for path in sorted(ssh_dir.glob("*.pub")):
        try:
            keys = read_key_files([path])
        except UsageError:
            continue
        if len(keys) == 1:  # a .pub holds one key; anything else is not what the checklist offers
            found.append((path, keys[0]))
    return found


def default_key(found: Sequence[tuple[Path, AuthorizedKey]]) -> Path | None:
    """The key ticked at first: ~/.ssh/id_ed25519.pub (ssh-keygen's default) if offered, else the newest .pub."""
    paths = [path for path, _ in found]
    for path in paths:
        if path.name == "id_ed25519.pub":
            return path
    newest = None
    for path in paths:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        if newest is None or mtime > newest[0]:
            newest = (mtime, path)
    return newest[1] if newest else None


def _free_key_path(home: Path) -> Path:
    base = home / ".ssh" / "zvm_ed25519"
    candidate, n = base, 2
    while os.path.lexists(candidate) or os.path.lexists(f"{candidate}.pub"):
        candidate, n = base.with_name(f"{base.name}_{n}"), n + 1
    return candidate


def _key_comment() -> str:
    try:
        user = getpass.getuser()
    except Exception:
        user = "zvm"
    return f"{user}@{socket.gethostname()} (zvm-provision)"


def _tilde(path: Path, home: Path) -> str:
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" or value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def _bench_mark(event: str) -> None:
    """For the benchmark script: the moment of confirmation, on the system-wide monotonic clock."""
    target = os.environ.get(BENCH_ENV)
    if target:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(f"{event} {time.monotonic():.6f}\n")
