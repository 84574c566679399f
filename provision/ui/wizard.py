"""The interactive wizard: `zvm-provision IMAGE` on a terminal asks for what no flag gave.

Every question is in one declarative list (QUESTIONS, ui.questions.Question) with a stable name; one call
asks them through a Prompter: QuestionaryPrompter on the terminal (the only code that imports questionary,
lazily, so `--help` stays fast), a scripted one in tests, which answer by name.

Flow: show the image (format and size) at once, and while the appliance starts in the background (15 s or
more under TCG) ask what does not depend on what the image holds: the SSH keys to add (the person's default
key ticked; keys imported from a GitHub or GitLab user are fetched then, shown with their fingerprints and
ticked one by one) and Netbird. Then wait for the appliance (a live status with the seconds), show the partitions
and what persist holds, say what stays, and ask what depends on it: the keys the image holds, as a checklist
all ticked (untick to remove), the password (with "keep the current password" when there is one), and the keys
again only if neither the answer nor the image gives one. Never a way to lock everyone out: with no key left,
the password question offers no lock; under --no-password the last key cannot be unticked. Plan
against the real state, show that plan, confirm. No question is asked twice, except to correct an answer.

Nothing is written before the confirmation: the image was opened with persist mounted read-only, and a
generated key pair is saved on this machine only after the "yes". The caller then applies exactly the plan
that was shown (`commands.seed.apply.apply_planned`), so the host key fingerprint in the summary is the one that
lands in the image.

Why this module is long (about 690 lines): the list of questions, the checks on their answers and the flow
that asks them stay in one file, so that which question is asked when, and why, reads in one place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from provision.commands.seed.apply import SeedOutcome, plan_seed
from provision.core.credentials.hostkeys import generate_user_keypair
from provision.core.credentials.identity import BUILT_IN_HOSTNAME, validate_hostname
from provision.core.credentials.keysources import FetchedKeys, is_remote_key_source, parse_key_source
from provision.core.credentials.netbird import validate_management_url, validate_netbird_setup_key
from provision.core.credentials.passwords import (
    MIN_PASSWORD_CHARS,
    check_password,
    hash_password,
    validate_password_hash,
)
from provision.core.credentials.sshkeys import AuthorizedKey, merge_keys, parse_authorized_keys
from provision.core.disk import ImageInfo, Partition
from provision.core.plan import Plan, keys_after
from provision.core.keyremoval import parse_selector, select_keys_to_remove
from provision.core.request import PasswordChoice, PasswordKind, SeedFlags, SeedRequest
from provision.core.state import ImageState
from provision.core.text import human_size, plural
from provision.core.urls import display_url
from provision.errors import SEED_STOPPED_BEFORE_WRITING, Aborted, Declined, ProvisionError, UsageError
from provision.host import writing as hostfiles
from provision.host.operator import key_comment
from provision.host.reading import KeyFetch, read_key_files
from provision.host.sshdir import default_key, find_local_public_keys, free_key_path
from provision.secret import Secret
from provision.ui import render, screen
from provision.ui.image_words import hostname_line
from provision.ui.questions import Choice, Kind, Prompt, Prompter, Question, always, ask

ABORTED_MESSAGE = SEED_STOPPED_BEFORE_WRITING
DECLINED_MESSAGE = "you answered no: nothing was written"


# --------------------------------------------------------------------------------------------------
# The terminal


class QuestionaryPrompter:
    """The real prompts, on the terminal. questionary's ask() returns None on Ctrl-C: an abort, never an
    empty answer."""

    def __call__(self, prompt: Prompt) -> Any:
        import questionary

        validate = _fitted(prompt.validate or always)
        width = screen.columns()
        message = screen.fit(prompt.message, width - 2)  # after questionary's "? "
        if prompt.kind == Kind.TEXT:
            question = questionary.text(message, default=prompt.default or "", validate=validate)
        elif prompt.kind == Kind.PASSWORD:
            question = questionary.password(message, validate=validate)
        elif prompt.kind == Kind.CONFIRM:
            question = questionary.confirm(message, default=bool(prompt.default))
        else:
            titles = [_choice_title(c.title, width) for c in prompt.choices]
            choices = [questionary.Choice(title, value=c.value, checked=c.checked)
                       for title, c in zip(titles, prompt.choices, strict=True)]
            message = _room_for_the_answer(message, titles, width)
            if prompt.kind == Kind.SELECT:
                initial = next((choice for choice in choices if choice.value == prompt.default), None)
                question = questionary.select(message, choices=choices, default=initial, instruction="(arrow keys)")
            else:
                question = questionary.checkbox(message, choices=choices, validate=validate,
                                                instruction="(arrows move, <a> toggles all, <i> inverts)")
        _let_the_validation_bar_grow(question.application)
        answer = question.ask(patch_stdout=True)
        if answer is None:
            raise Aborted(ABORTED_MESSAGE)
        return list(answer) if prompt.kind == Kind.CHECKBOX else answer


def _fitted(validate: Callable[[Any], bool | str]) -> Callable[[Any], bool | str]:
    """A validator whose refusal is wrapped at word boundaries to the terminal's width: prompt_toolkit's bar
    under the prompt cuts a longer line at the last column (`...digit`)."""

    def check(value: Any) -> bool | str:
        verdict = validate(value)
        return screen.fit(verdict, screen.columns() - 1) if isinstance(verdict, str) else verdict

    return check


def _room_for_the_answer(message: str, titles: list[str], width: int) -> str:
    """questionary writes its hint, then the answer (a choice's title in brackets), after the question's last
    line, and cuts what passes the last column: when the longest would not fit there, they go on a line of
    their own."""
    last = message.split("\n")[-1]
    used = len(last) + (4 if "\n" not in message else 2)  # "? " before, a space after
    longest = max([len(title.split("\n")[0]) + 2 for title in titles] + [45])  # 45: the checkbox's hint
    return message if used + longest <= width else message + "\n "


def _choice_title(title: str, width: int) -> str:
    """A choice wrapped under itself: questionary cuts a longer line at the last column (a key's fingerprint)."""
    margin = 6  # the pointer and the tick before the title
    return screen.fit(title, width - margin).replace("\n  ", "\n" + " " * margin)


def _let_the_validation_bar_grow(application: Any) -> None:
    """prompt_toolkit's ValidationToolbar is one row high: give it the rows its wrapped message needs (the
    checkbox's bar, questionary's bottom toolbar, grows already)."""
    for window in application.layout.find_all_windows():
        text = getattr(window.content, "text", None)
        if "ValidationToolbar" in getattr(text, "__qualname__", ""):
            window.height = None


# --------------------------------------------------------------------------------------------------
# The questions


class Partitions(Protocol):
    def partitions(self, index: int) -> list[Partition]: ...


class WizardSession(Protocol):
    """What the wizard uses of a guest.session.ImageSession: the header's facts at once, the rest once up."""

    info: ImageInfo
    persist: Partition | None

    def wait(self) -> None: ...
    def read_state(self) -> ImageState: ...
    @property
    def appliance(self) -> Partitions: ...


def _rule(check: Callable[[str], Any]) -> Callable[[Any, Any], bool | str]:
    """A credentials check as a validator: True, or the UsageError's message (never the value)."""

    def validate(text: str, _wizard: Any) -> bool | str:
        try:
            check(text)
        except UsageError as exc:
            return exc.message
        return True

    return validate


def _password_rule(text: str, wizard: _Wizard) -> bool | str:
    def check(text: str) -> None:
        if text == "" and wizard.keepable:
            return
        if text == "":  # questionary shows this under the prompt: say what is wanted, not just "empty"
            raise UsageError(f"the password must be at least {MIN_PASSWORD_CHARS} characters long")
        check_password(text)

    return _rule(check)(text, wizard)


def _key_file(text: str) -> None:
    if not text.strip():
        raise UsageError("give the path of a .pub or authorized_keys file")
    read_key_files([Path(text.strip()).expanduser()])


def _new_key_path_rule(text: str, wizard: _Wizard) -> bool | str:
    def check(text: str) -> None:
        if not text.strip():
            raise UsageError("give a file name for the new private key")
        path = Path(text.strip()).expanduser()
        for target in (path, path.with_name(path.name + ".pub")):
            if os.path.lexists(target):
                raise UsageError(f"{target} already exists; choose another name")
        parent = path.parent
        if not parent.is_dir() and parent != wizard.home / ".ssh":
            raise UsageError(f"{parent} is not a directory")

    return _rule(check)(text, wizard)


def _key_source(text: str) -> None:
    """gh:USER, gl:USER or an https URL, checked without the network (empty: import nothing after all)."""
    if text.strip() and not is_remote_key_source(text):
        raise UsageError("write gh:USER (GitHub), gl:USER (GitLab) or an https:// URL; empty to skip")
    if text.strip():
        parse_key_source(text)


def _at_least_one_key(selected: list[str], wizard: _Wizard) -> bool | str:
    if wizard.need_one_key and not selected:
        return "choose at least one: zvm logs in over SSH with a key only"
    return True


def _keeps_a_way_in(kept: list[str], wizard: _Wizard) -> bool | str:
    """Unticking every key is refused when nothing else lets zvm in: no key added and the password locked.
    A key that --ssh-key gives cannot be unticked (the flag said to let it in)."""
    given = [key.fingerprint for key in wizard.flags.keys or () if key.fingerprint not in kept]
    if given and given[0] in {choice.value for choice in wizard.kept_key_choices()}:
        return f"{given[0]} is given with --ssh-key: keep it ticked"
    if kept or wizard.adding_after(set(kept)) or not wizard.password_locked_by_flag:
        return True
    return "keep at least one: with --no-password, a key is the only way in"


def _chose(value: str) -> Callable[[_Wizard], bool]:
    return lambda wizard: value in wizard.answers.get("ssh_keys", ())


def _netbird_wanted(wizard: _Wizard) -> bool:
    return wizard.flags.netbird_setup_key is not None or bool(wizard.answers.get("netbird"))


def _password_how(how: str) -> Callable[[_Wizard], bool]:
    return lambda wizard: wizard.answers.get("password_method") == how


KEYS, NETBIRD, KEPT, PASSWORD, HOSTNAME, CONFIRM = "keys", "netbird", "kept", "password", "hostname", "confirm"
QUESTIONS: tuple[Question[_Wizard], ...] = (
    # While the appliance starts: what does not depend on the image.
    Question("ssh_keys", Kind.CHECKBOX, "SSH public keys to let in as zvm (space toggles, enter accepts):", KEYS,
             choices=lambda w: w.key_choices(), validate=_at_least_one_key),
    Question("ssh_key_paste", Kind.PASSWORD, "Paste the public key line (not shown; a private key is refused):",
             KEYS, validate=_rule(lambda text: parse_authorized_keys(text, "the pasted key")), when=_chose("paste")),
    Question("ssh_key_file", Kind.TEXT, "Path of the public key file:", KEYS, validate=_rule(_key_file),
             when=_chose("path")),
    Question("ssh_key_import", Kind.TEXT,
             "GitHub or GitLab user, or a URL (gh:USER, gl:USER or https://HOST/USER.keys; empty to skip):",
             KEYS, validate=_rule(_key_source), when=_chose("import")),
    Question("ssh_key_import_pick", Kind.CHECKBOX, lambda w: f"Keys of {w.imported.source.label} to let in:",
             KEYS, choices=lambda w: w.import_choices(), when=lambda w: w.imported is not None),
    Question("keygen_path", Kind.TEXT, "Save the new private key as (the public key goes next to it, .pub):", KEYS,
             default=lambda w: str(free_key_path(w.home)), validate=_new_key_path_rule,
             when=_chose("generate")),
    Question("keygen_passphrase", Kind.PASSWORD, "Passphrase for the new key (empty for none):", KEYS,
             when=_chose("generate")),
    Question("keygen_passphrase_again", Kind.PASSWORD, "The same passphrase again:", KEYS,
             when=lambda w: _chose("generate")(w) and w.answers["keygen_passphrase"] != "",
             again="keygen_passphrase", mismatch="The two passphrases differ; please type them again."),
    Question("netbird", Kind.CONFIRM, "Join a Netbird network on first boot?", NETBIRD, default=False,
             when=lambda w: w.flags.netbird_setup_key is None),
    Question("netbird_setup_key", Kind.PASSWORD,
             "Netbird setup key (XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX, not shown):", NETBIRD,
             validate=_rule(validate_netbird_setup_key),
             when=lambda w: w.flags.netbird_setup_key is None and bool(w.answers.get("netbird"))),
    Question("netbird_management_url", Kind.TEXT, "Self-hosted management URL (empty for Netbird's own service):",
             NETBIRD, validate=_rule(lambda text: validate_management_url(text) if text.strip() else None),
             when=lambda w: w.flags.netbird_management_url is None and _netbird_wanted(w)),
    # Once the image's state is known: what depends on it.
    Question("keep_keys", Kind.CHECKBOX, "Keys the image lets in now (untick to remove; space toggles, enter "
             "accepts):", KEPT, choices=lambda w: w.kept_key_choices(), validate=_keeps_a_way_in),
    Question("password_method", Kind.SELECT, "Password for the user zvm (console login; SSH takes keys only):",
             PASSWORD, choices=lambda w: w.password_choices(), default=lambda w: "keep" if w.keepable else "type"),
    Question("password_hash", Kind.PASSWORD, "Paste the hash (not shown):", PASSWORD,
             validate=_rule(validate_password_hash), when=_password_how("hash")),
    Question("password", Kind.PASSWORD,
             lambda w: f"Password (at least {MIN_PASSWORD_CHARS} characters"
                       + (", empty keeps the current one):" if w.keepable else "):"),
             PASSWORD, validate=_password_rule, when=_password_how("type")),
    Question("password_again", Kind.PASSWORD, "The same password again:", PASSWORD,
             when=lambda w: _password_how("type")(w) and w.answers["password"] != "",
             again="password", mismatch="The two passwords differ; please type them again."),
    Question("hostname", Kind.TEXT,
             "The VM's name at boot and in Netbird (lower-case letters, digits, hyphens; e.g. zvm-alice):",
             HOSTNAME, default=lambda w: w.current_hostname, validate=_rule(validate_hostname)),
    Question("confirm", Kind.CONFIRM, lambda w: f"Write this to {w.session.label}?", CONFIRM, default=True),
)


# --------------------------------------------------------------------------------------------------
# The flow


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
    session: WizardSession,
    flags: SeedFlags,
    *,
    dry_run: bool,
    prompter: Prompter | None = None,
    say: Callable[[str], None] | None = None,
    home: Path | None = None,
    status: Callable[[], AbstractContextManager[Any]] | None = None,
    fetch: KeyFetch | None = None,
) -> WizardResult:
    """Ask for whatever `flags` left open, show the plan, confirm. `Aborted` (exit 130) on Ctrl-C, `Declined`
    (exit 1) on No. `status()` is shown while the wizard waits for the appliance (on a terminal: a live line
    with the seconds). `fetch` fetches a gh:/gl:/https key source (default: fetch.forgekeys.KeyFetcher's)."""
    if fetch is None:
        from provision.fetch.forgekeys import KeyFetcher

        fetch = KeyFetcher().fetch
    wizard = _Wizard(
        session, flags, dry_run=dry_run, prompter=prompter or QuestionaryPrompter(),
        say=say or _print, home=home if home is not None else Path.home(), status=status or nullcontext,
        fetch=fetch,
    )
    try:
        return wizard.run()
    except KeyboardInterrupt:  # while waiting for the appliance or hashing: same promise as a prompt's Ctrl-C
        raise Aborted(ABORTED_MESSAGE) from None


def _print(line: str) -> None:
    print(screen.fit_for(sys.stdout, line), flush=True)


class _Wizard:
    def __init__(
        self, session: WizardSession, flags: SeedFlags, *, dry_run: bool, prompter: Prompter,
        say: Callable[[str], None], home: Path, status: Callable[[], AbstractContextManager[Any]],
        fetch: KeyFetch,
    ) -> None:
        self.session = session
        self.status = status
        self.flags = flags
        self.dry_run = dry_run
        self.prompter = prompter
        self.say = say
        self.home = home
        self.answers: dict[str, Any] = {}
        self.state: ImageState | None = None
        self.need_one_key = flags.replace_keys
        self.adding: tuple[AuthorizedKey, ...] = ()  # keys chosen to add, once known
        self.keys_after: int | None = None  # how many keys the image will hold, once known
        self.local_keys: list[tuple[Path, AuthorizedKey]] = []
        self.key_pair: NewKeyPair | None = None
        self.fetch = fetch
        self.imported: FetchedKeys | None = None  # the source being imported, while its keys are ticked
        self.fetched: list[FetchedKeys] = list(flags.fetched)  # what the plan shows as fetched

    def ask(self, part: str, names: tuple[str, ...] = ()) -> dict[str, Any]:
        questions = [q for q in QUESTIONS if q.part == part and (not names or q.name in names)]
        return ask(questions, self, self.prompter, self.say)

    def run(self) -> WizardResult:
        self.show_image()
        answered = self.flags
        # First what does not depend on the image, while the appliance starts (15 s or more under TCG)...
        if self.flags.keys is None:
            answered = replace(answered, keys=self.ask_keys(), fetched=tuple(self.fetched))
        answered = self.ask_netbird(answered)
        # ...then the image's state, and what depends on it: what stays, keeping the current password.
        self.state = self.read_state()
        self.say_what_stays(answered, self.state)
        self.adding = answered.keys or ()
        answered = self.ask_keys_to_remove(answered)
        no_key = self.flags.replace_keys or not self.state.authorized_keys
        if self.flags.keys is None and not answered.keys and no_key:
            self.say("The image holds no SSH key yet, and zvm logs in over SSH with a key only: choose one "
                     "(with none, zvm logs in on the console only, with a password).")
            self.need_one_key = self.flags.replace_keys or self.password_locked_by_flag
            answered = replace(answered, keys=self.ask_keys(), fetched=tuple(self.fetched))
            self.adding = answered.keys or ()
        self.keys_after = self.count_keys_after(answered)
        if not self.flags.has_password_source:
            answered = replace(answered, password=self.ask_password())
        if self.flags.hostname is None:
            answered = replace(answered, hostname=self.ask_hostname())
        request = answered.to_request()  # hashes a password given by --password-file
        plan = plan_seed(self.session, request)
        self.show_summary(plan)
        if self.dry_run:
            unsaved = ", and the new key pair is not saved." if self.key_pair else "."
            self.say(f"Dry run: nothing will be written{unsaved}")
            return WizardResult(request, plan)
        if not plan.changes and self.key_pair is None:
            return WizardResult(request, plan)
        if not self.ask(CONFIRM)["confirm"]:
            raise Declined(DECLINED_MESSAGE)
        return WizardResult(request, plan, self.save_key_pair())

    # --- the image

    def show_image(self) -> None:
        info = self.session.info
        self.say(f"Image: {self.session.label} ({info.format}, {human_size(info.virtual_size)} virtual)")
        self.say("Starting the libguestfs appliance to look inside (read-only until you confirm); "
                 "meanwhile, the questions that do not depend on what the image holds.")

    def read_state(self) -> ImageState:
        with self.status():
            self.session.wait()
        persist = self.session.persist
        self.say("Partitions:")
        for part in self.session.appliance.partitions(0):
            mark = "  <- persist" if persist is not None and part.device == persist.device else ""
            fs_type, label = part.fs_type or "-", part.label or "-"
            self.say(f"  {part.device:<10} {fs_type:<6} {label:<10} {human_size(part.size)}{mark}")
        state = self.session.read_state()
        for line in render.describe_state(state):
            self.say(line)
        return state

    # --- SSH keys

    def key_choices(self) -> list[Choice]:
        self.local_keys = find_local_public_keys(self.home)
        default = default_key(self.local_keys)
        return [
            *(Choice(f"file:{path}", f"{_tilde(path, self.home)}  {key.describe()}", checked=path == default)
              for path, key in self.local_keys),
            Choice("paste", "Paste a public key"),
            Choice("path", "Give the path of a .pub or authorized_keys file"),
            Choice("import", "Import from a GitHub or GitLab user (or an https:// URL serving keys)"),
            Choice("generate", "Generate a new ed25519 key pair on this machine"),
        ]

    def ask_keys(self) -> tuple[AuthorizedKey, ...]:
        """Keys to add (or, with --replace-keys, to keep alone). Asked before the image's state is known: with
        none chosen, the image's own keys stay; the run asks again if it turns out to hold none."""
        self.imported = None
        self.ask(KEYS)
        keys: list[AuthorizedKey] = []
        by_value = {f"file:{path}": key for path, key in self.local_keys}
        for value in self.answers["ssh_keys"]:
            if value in by_value:
                keys = merge_keys(keys, [by_value[value]], replace=False)
            elif value == "paste":
                keys = merge_keys(keys, parse_authorized_keys(self.answers["ssh_key_paste"], "the pasted key"),
                                  replace=False)
            elif value == "path":
                path = Path(self.answers["ssh_key_file"].strip()).expanduser()
                keys = merge_keys(keys, read_key_files([path]), replace=False)
            elif value == "import":
                keys = merge_keys(keys, self.import_keys(), replace=False)
            elif value == "generate":
                keys = merge_keys(keys, [self.new_key_pair()], replace=False)
        for key in keys:
            self.say(f"  + {key.describe()}")
        return tuple(keys)

    def import_keys(self) -> list[AuthorizedKey]:
        """Fetch the source given, show what it serves, and keep the keys ticked. A source that fails is said
        and asked again (empty gives up)."""
        while self.answers["ssh_key_import"].strip():
            try:
                self.imported = self.fetch(parse_key_source(self.answers["ssh_key_import"]))
            except ProvisionError as exc:  # no such user, no key, a private key served, the network
                self.say(exc.message)
                self.ask(KEYS, names=("ssh_key_import",))
                continue
            url = display_url(self.imported.final_url)
            self.say(f"Fetched {plural(len(self.imported.keys), 'key')} from {self.imported.source.shown} ({url}).")
            picked = set(self.ask(KEYS, names=("ssh_key_import_pick",))["ssh_key_import_pick"])
            keys = tuple(key for key in self.imported.keys if key.fingerprint in picked)
            if keys:
                self.fetched.append(replace(self.imported, keys=keys))
            self.imported = None
            return list(keys)
        return []

    def import_choices(self) -> list[Choice]:
        assert self.imported is not None
        return [Choice(key.fingerprint, key.describe(), checked=True) for key in self.imported.keys]

    def new_key_pair(self) -> AuthorizedKey:
        path = Path(self.answers["keygen_path"].strip()).expanduser()
        while True:
            passphrase = self.answers["keygen_passphrase"]
            try:
                private, public = generate_user_keypair(
                    comment=key_comment(), passphrase=Secret(passphrase) if passphrase else None
                )
            except UsageError as exc:  # e.g. a NUL in the passphrase: ask for it again
                self.say(exc.message)
                self.ask(KEYS, names=("keygen_passphrase", "keygen_passphrase_again"))
                continue
            break
        self.key_pair = NewKeyPair(path, private, public)
        return parse_authorized_keys(public, "the new key")[0]

    def save_key_pair(self) -> Path | None:
        if self.key_pair is None:
            return None
        path = self.key_pair.path
        if not path.parent.exists():  # only ~/.ssh gets here (the validator refused any other missing folder)
            path.parent.mkdir(mode=0o700)
        hostfiles.write_key_pair(path, self.key_pair.private_bytes, self.key_pair.public_line)
        self.say(f"Saved the new key pair: {path} (private, 0600) and {path}.pub")
        self.say(f"  connect with: ssh -i {path} zvm@<the VM's address>")
        return path

    # --- keys to take out

    @property
    def password_locked_by_flag(self) -> bool:
        return self.flags.password is not None and self.flags.password.kind == PasswordKind.LOCKED

    def kept_key_choices(self) -> list[Choice]:
        assert self.state is not None
        return [Choice(key.fingerprint, key.describe(), checked=True)
                for key in merge_keys(self.state.authorized_keys, (), replace=False)]

    def ask_keys_to_remove(self, answered: SeedFlags) -> SeedFlags:
        """On an image that holds keys: every key ticked, the person unticks the ones to take out. With
        --remove-key the flags chose already: a key they name that is not there is an error now, not after
        the questions that follow."""
        assert self.state is not None
        if self.flags.remove_keys:
            select_keys_to_remove(self.state.authorized_keys, self.flags.remove_keys, adding=self.adding)
            return answered
        if not self.state.authorized_keys or self.flags.replace_keys:
            return answered
        kept = set(self.ask(KEPT)["keep_keys"])
        gone = [key for key in merge_keys(self.state.authorized_keys, (), replace=False)
                if key.fingerprint not in kept]
        for key in gone:
            self.say(f"  - {key.describe()}")
        # A key ticked to add before the image's keys were shown (the default one) and unticked here: the later
        # answer, made seeing the image, wins.
        self.adding = self.adding_after(kept)
        return replace(answered, keys=self.adding if answered.keys is not None else None,
                       remove_keys=tuple(parse_selector(key.fingerprint) for key in gone))

    def adding_after(self, kept: set[str]) -> tuple[AuthorizedKey, ...]:
        """The keys to add, but those of the image's keys that the checklist unticks."""
        assert self.state is not None
        image = {key.fingerprint for key in self.state.authorized_keys}
        return tuple(key for key in self.adding if key.fingerprint in kept or key.fingerprint not in image)

    def count_keys_after(self, answered: SeedFlags) -> int:
        assert self.state is not None
        keys, _ = keys_after(self.state.authorized_keys, self.adding, answered.remove_keys,
                             replace=self.flags.replace_keys)
        return len(keys)

    # --- Netbird

    def ask_netbird(self, answered: SeedFlags) -> SeedFlags:
        given = self.ask(NETBIRD)
        if "netbird_setup_key" in given:
            answered = replace(answered, netbird_setup_key=validate_netbird_setup_key(given["netbird_setup_key"]))
        url = given.get("netbird_management_url", "")
        if url.strip():
            answered = replace(answered, netbird_management_url=validate_management_url(url))
        return answered

    def say_what_stays(self, answered: SeedFlags, state: ImageState) -> None:
        """Once the state is known: what the image holds that the answers given so far leave in place."""
        if state.authorized_keys and not self.flags.replace_keys:
            added = ", with the ones you chose" if answered.keys else ""
            self.say(f"The image already lets in {plural(len(state.authorized_keys), 'key')}; they stay{added} "
                     "unless you untick them.")
        if state.netbird_setup_key_present:
            if answered.netbird_setup_key is None:
                self.say("The image already holds a Netbird setup key; it stays.")
            else:
                self.say("The image's Netbird setup key is replaced by the one you gave.")
        if state.netbird_management_url and answered.netbird_management_url is None:
            url = state.netbird_management_url
            self.say(f"The image names the Netbird management server {url}; it stays.")

    # --- password

    @property
    def keepable(self) -> bool:
        current = self.state.password if self.state is not None else None
        if current is None or current.state not in ("set", "locked"):
            return False
        return current.state == "set" or not self.no_key_left  # a locked one with no key left: no way in

    @property
    def no_key_left(self) -> bool:
        return self.keys_after == 0

    @property
    def _current_locked(self) -> bool:
        return self.state is not None and self.state.password is not None and self.state.password.state == "locked"

    def password_choices(self) -> list[Choice]:
        choices = []
        if self.keepable:
            assert self.state is not None and self.state.password is not None
            choices.append(Choice("keep", f"Keep the current password ({render.password_words(self.state.password)})"))
        choices += [
            Choice("type", "Type a new password" if self.keepable else "Type a password"),
            Choice("hash", "Paste a ready hash ($6$ sha-512 or $y$ yescrypt, e.g. from mkpasswd)"),
        ]
        if not self.no_key_left:  # never lock everyone out: with no key, the password is the way in
            choices.append(Choice("none", "No password: key-only login over SSH (the password is locked)"))
        return choices

    def ask_password(self) -> PasswordChoice:
        if self.no_key_left:
            self.say("No SSH key will be left: the password is the only way in (on the console), so it is "
                     "needed" + (", and the current one is locked." if self._current_locked else "."))
        given = self.ask(PASSWORD)
        how = given["password_method"]
        if how == "none":
            return PasswordChoice.locked()
        if how == "hash":
            return PasswordChoice.from_hash(validate_password_hash(given["password_hash"].strip()))
        if how == "type" and given["password"] != "":
            return PasswordChoice.from_hash(hash_password(given["password"]))  # the plaintext goes no further
        return PasswordChoice.keep()  # "keep", or an empty password where one is kept

    # --- hostname

    @property
    def current_hostname(self) -> str:
        """What the VM is called now: the seeded name, else the built-in one (the question's default)."""
        return (self.state.hostname if self.state is not None else None) or BUILT_IN_HOSTNAME

    def ask_hostname(self) -> str | None:
        """The name to write, or None to keep the image as it is (the answer is already its name: an image
        with no hostname file is not given one just for saying zvm)."""
        name = self.ask(HOSTNAME)["hostname"].strip()
        assert self.state is not None
        if name == self.state.hostname or (self.state.hostname_raw is None and name == BUILT_IN_HOSTNAME):
            return None
        return validate_hostname(name)

    # --- summary

    def show_summary(self, plan: Plan) -> None:
        """Before the confirmation: what changes (the directory skeleton in one line, unless a dry run asked
        to see every path), the keys that will let zvm in, its name and Netbird. The hand-over summary (host
        key, known_hosts, machine-id...) is printed once, after the writes."""
        outcome = SeedOutcome(self.session.info, plan, applied=False)
        self.say("")
        self.say(render.render_plan(outcome, dry_run=False, every_directory=self.dry_run))
        self.say("")
        self.say("\n".join([*render.render_keys(plan), hostname_line(plan), render.netbird_words(plan)]))
        if self.key_pair is not None:
            where = "would be saved" if self.dry_run else "will be saved, after you confirm,"
            path = self.key_pair.path
            self.say(f"\nThe new key pair {where} to {path} (0600) and {path}.pub")
        self.say("")


def _tilde(path: Path, home: Path) -> str:
    try:
        return "~/" + str(path.relative_to(home))
    except ValueError:
        return str(path)
