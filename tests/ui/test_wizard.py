"""The wizard's logic with answers injected by question name (no appliance, no terminal)."""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from provision.core.credentials.hostkeys import generate_host_key
from provision.core.credentials.passwords import PasswordInfo
from provision.core.credentials.sshkeys import parse_authorized_keys, render_authorized_keys
from provision.commands.flagwords import missing_flags_message, missing_words
from provision.core.request import Missing, PasswordChoice, SeedFlags
from provision.core.request import missing_flags as missing
from provision.core.state import ImageState
from provision.errors import Aborted, Declined, ExitCode
from provision.secret import Secret
from provision.ui.questions import Kind, Prompt
from provision.ui.wizard import QUESTIONS, run_wizard
from tests.support.keyfactory import public_line
from tests.support.prompter import DEFAULT, ScriptedPrompter, Turns

HASH = "$6$rounds=1000$saltsalt$" + "a" * 86
NETBIRD_KEY = "0F0E0D0C-1A2B-3C4D-5E6F-A1B2C3D4E5F6"


class FakeSession:
    """What run_wizard uses of guest.session.ImageSession: info at once, the state after wait()."""

    def __init__(self, state: ImageState) -> None:
        self.info = SimpleNamespace(path=Path("/images/disk.qcow2"), format="qcow2", virtual_size=20 << 30)
        self.label = str(self.info.path)
        persist = SimpleNamespace(device="/dev/sda3", label="persist", fs_type="ext4", size=1 << 30)
        self.appliance = SimpleNamespace(partitions=lambda index: [
            SimpleNamespace(device="/dev/sda1", label="ESP", fs_type="vfat", size=512 << 20),
            SimpleNamespace(device="/dev/sda2", label="nix", fs_type="ext4", size=18 << 30),
            persist,
        ])
        self.persist = None
        self._persist = persist
        self._state = state
        self.log: list[tuple[str, str]] | None = None  # wizard_log(): questions, lines said and the wait, in order

    def wait(self) -> None:
        if self.log is not None:
            self.log.append(("wait", ""))
        self.persist = self._persist

    def read_state(self) -> ImageState:
        assert self.persist is not None, "the state is read only after wait()"
        return self._state


def blank_state() -> ImageState:
    return ImageState(stats={})


def seeded_state(*lines: str, netbird: bool = False) -> ImageState:
    keys = tuple(parse_authorized_keys("\n".join(lines or (public_line(comment="old"),)) + "\n", "image"))
    return ImageState(
        stats={},
        password=PasswordInfo("set", "sha512-crypt", 656000),
        authorized_keys=keys,
        authorized_keys_raw=render_authorized_keys(keys),
        host_public_line=generate_host_key().public_line,
        host_private_present=True,
        machine_id="0123456789abcdef0123456789abcdef",
        netbird_setup_key_present=netbird,
    )


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home with no ~/.ssh; $HOME points at it so nothing of the real home leaks in."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    return path


def with_pub(home: Path, *names: str) -> dict[str, str]:
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    lines = {}
    for name in names:
        lines[name] = public_line(comment=name)
        (ssh / name).write_text(lines[name] + "\n")
    return lines


def wizard(state: ImageState, answers: dict, flags: SeedFlags | None = None, *, dry_run: bool = False):
    prompter = ScriptedPrompter(answers)
    said: list[str] = []
    result = run_wizard(FakeSession(state), flags or SeedFlags(), dry_run=dry_run, prompter=prompter,
                        say=said.append)
    assert prompter.unused() == [], "scripted answers never asked"
    return result, prompter, "\n".join(said)


class LoggingPrompter(ScriptedPrompter):
    """A ScriptedPrompter that also notes each question in a log shared with `say` and the session."""

    log: list[tuple[str, str]]

    def _next(self, name: str):
        self.log.append(("ask", name))
        return super()._next(name)


def wizard_log(state: ImageState, answers: dict, flags: SeedFlags | None = None):
    """The wizard's run as one ordered log: ("ask", question), ("say", line), ("wait", ""), ("status", ...)."""
    log: list[tuple[str, str]] = []
    session = FakeSession(state)
    session.log = log
    prompter = LoggingPrompter(answers)
    prompter.log = log

    @contextmanager
    def status():
        log.append(("status", "start"))
        yield
        log.append(("status", "end"))

    result = run_wizard(session, flags or SeedFlags(), dry_run=False, prompter=prompter,
                        say=lambda line: log.append(("say", line)), status=status)
    assert prompter.unused() == [], "scripted answers never asked"
    return result, prompter, log


def asked_before_and_after_the_wait(log: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    waited = log.index(("wait", ""))
    return ([name for kind, name in log[:waited] if kind == "ask"],
            [name for kind, name in log[waited:] if kind == "ask"])


def verifies(choice: PasswordChoice, password: str) -> bool:
    from passlib.hash import sha512_crypt

    assert choice.kind == "hash" and choice.hash is not None
    return sha512_crypt.verify(password, choice.hash.reveal())


BLANK_ANSWERS = {
    "password_method": DEFAULT,
    "password": "correct horse",
    "password_again": "correct horse",
    "ssh_keys": DEFAULT,
    "netbird": DEFAULT,
    "hostname": DEFAULT,
    "confirm": DEFAULT,
}


def test_blank_image_full_run_shows_image_state_and_plan(home):
    lines = with_pub(home, "id_ed25519.pub")
    result, prompter, said = wizard(blank_state(), dict(BLANK_ANSWERS))
    assert verifies(result.request.password, "correct horse")
    assert [k.line for k in result.request.keys] == [lines["id_ed25519.pub"]]
    assert prompter.seen["netbird"]["default"] is False  # Netbird is opt-in
    assert prompter.seen["confirm"]["default"] is True
    # the image first, then the plan that will be applied, with the host key it will carry
    assert "disk.qcow2 (qcow2, 20 GiB virtual)" in said
    assert "Starting the libguestfs appliance" in said
    assert "/dev/sda3" in said and "<- persist" in said
    assert "not seeded yet" in said
    assert result.plan.host_public_line is not None
    from provision.core.credentials.sshkeys import public_key_fingerprint

    assert public_key_fingerprint(result.plan.host_public_line) in said
    assert "/home/zvm/.ssh/authorized_keys" in said and "1000:100" in said
    assert "correct horse" not in said and "$6$" not in said


def test_password_mismatch_asks_both_again(home):
    with_pub(home, "id_ed25519.pub")
    answers = dict(BLANK_ANSWERS, password=Turns(["first try 1", "second try"]),
                   password_again=Turns(["first try 2", "second try"]))
    result, prompter, said = wizard(blank_state(), answers)
    assert prompter.asked.count("password") == 2 and prompter.asked.count("password_again") == 2
    assert "differ" in said
    assert verifies(result.request.password, "second try")


def test_short_password_is_refused_with_a_clear_message(home):
    with_pub(home, "id_ed25519.pub")
    answers = dict(BLANK_ANSWERS, password=Turns(["", "short", "long enough"]), password_again="long enough")
    result, prompter, _ = wizard(blank_state(), answers)
    assert prompter.refused["password"] == ["the password must be at least 8 characters long"] * 2
    assert verifies(result.request.password, "long enough")


def test_reseed_keeps_what_is_there_by_default(home):
    state = seeded_state()
    answers = {"password_method": DEFAULT, "ssh_keys": DEFAULT, "netbird": DEFAULT, "keep_keys": DEFAULT, "hostname": DEFAULT,
               "confirm": DEFAULT}
    result, prompter, said = wizard(state, answers)
    assert prompter.seen["password_method"]["default"] == "keep"
    assert result.request.password == PasswordChoice.keep()
    assert result.request.keys == ()
    assert result.plan.authorized_keys == state.authorized_keys  # existing keys stay
    assert result.plan.host_public_line == state.host_public_line
    assert "already seeded" in said and "they stay" in said


def test_reseed_empty_password_keeps_it(home):
    answers = {"password_method": "type", "password": "", "ssh_keys": [], "netbird": False, "keep_keys": DEFAULT, "hostname": DEFAULT,
               "confirm": True}
    result, prompter, _ = wizard(seeded_state(), answers)
    assert result.request.password == PasswordChoice.keep()
    assert "password_again" not in prompter.asked
    assert "empty keeps" in prompter.seen["password"]["message"]


def test_pasted_hash_is_validated(home):
    with_pub(home, "id_ed25519.pub")
    answers = dict(BLANK_ANSWERS, password_method="hash", password_hash=Turns(["$6$nope", HASH]))
    del answers["password"], answers["password_again"]
    result, prompter, _ = wizard(blank_state(), answers)
    assert result.request.password == PasswordChoice.from_hash(Secret(HASH))
    [refusal] = prompter.refused["password_hash"]
    assert "$6$nope" not in refusal


def test_no_password_is_an_explicit_choice(home):
    with_pub(home, "id_ed25519.pub")
    answers = dict(BLANK_ANSWERS, password_method="none")
    del answers["password"], answers["password_again"]
    result, prompter, _ = wizard(blank_state(), answers)
    assert result.request.password == PasswordChoice.locked()
    assert [o.value for o in prompter.seen["password_method"]["options"]] == ["type", "hash", "none"]


def ticked(prompter: ScriptedPrompter) -> list[str]:
    return [Path(o.value[5:]).name for o in prompter.seen["ssh_keys"]["options"] if o.checked]


def test_the_default_key_is_ticked_id_ed25519_else_the_newest_pub(home):
    lines = with_pub(home, "work.pub", "id_ed25519.pub", "old.pub")
    now = 1_700_000_000
    for name, age in (("old.pub", 300), ("id_ed25519.pub", 200), ("work.pub", 100)):
        os.utime(home / ".ssh" / name, (now, now - age))
    result, prompter, _ = wizard(blank_state(), dict(BLANK_ANSWERS))
    assert ticked(prompter) == ["id_ed25519.pub"]  # the person's default, though not the newest
    assert [k.line for k in result.request.keys] == [lines["id_ed25519.pub"]]  # Enter takes it
    files = [o for o in prompter.seen["ssh_keys"]["options"] if o.value.startswith("file:")]
    assert "~/.ssh/id_ed25519.pub" in files[0].title and "SHA256:" in files[0].title  # sorted by name

    (home / ".ssh" / "id_ed25519.pub").unlink()
    (home / ".ssh" / "broken.pub").write_text("not a key\n")  # skipped, not offered (and never the default)
    os.utime(home / ".ssh" / "broken.pub", (now, now))
    _, prompter, _ = wizard(blank_state(), dict(BLANK_ANSWERS))
    assert ticked(prompter) == ["work.pub"]  # the newest .pub
    assert len(prompter.seen["ssh_keys"]["options"]) == 2 + 4  # paste, path, import, generate


def test_no_local_key_ticks_nothing(home):
    answers = dict(BLANK_ANSWERS, ssh_keys=["paste"], ssh_key_paste=public_line(comment="pasted"))
    _, prompter, _ = wizard(blank_state(), answers)
    assert ticked(prompter) == []


def test_what_does_not_need_the_image_is_asked_while_the_appliance_starts(home):
    with_pub(home, "id_ed25519.pub")
    answers = dict(BLANK_ANSWERS, netbird=True, netbird_setup_key=NETBIRD_KEY, netbird_management_url="")
    _, _, log = wizard_log(blank_state(), answers)
    before, after = asked_before_and_after_the_wait(log)
    assert before == ["ssh_keys", "netbird", "netbird_setup_key", "netbird_management_url"]
    assert after == ["password_method", "password", "password_again", "hostname", "confirm"]
    said = [line for kind, line in log if kind == "say"]
    assert "Starting the libguestfs appliance" in said[1]  # at once, before the first question
    assert log.index(("ask", "ssh_keys")) < log.index(("wait", ""))
    # the wait for the appliance shows a live status; the image's state comes before the questions needing it
    assert log.index(("status", "start")) < log.index(("wait", "")) < log.index(("status", "end"))
    state_line = next(i for i, item in enumerate(log) if item == ("say", "persist: not seeded yet (no password, no SSH key, no host key)"))
    assert log.index(("status", "end")) < state_line < log.index(("ask", "password_method"))


def test_keep_choices_come_after_the_state_is_shown_and_nothing_is_asked_twice(home):
    with_pub(home, "id_ed25519.pub")
    answers = {"ssh_keys": [], "netbird": DEFAULT, "keep_keys": DEFAULT, "password_method": DEFAULT,
               "hostname": DEFAULT, "confirm": DEFAULT}
    result, prompter, log = wizard_log(seeded_state(netbird=True), answers)
    before, after = asked_before_and_after_the_wait(log)
    assert before == ["ssh_keys", "netbird"] and after == ["keep_keys", "password_method", "hostname", "confirm"]
    assert [o.value for o in prompter.seen["password_method"]["options"]][0] == "keep"
    said = [line for kind, line in log if kind == "say"]
    assert "persist: already seeded" in said
    assert any("they stay" in line for line in said)  # no key chosen: the image's keys are kept
    assert any("setup key" in line and "stays" in line for line in said)
    assert result.request.password == PasswordChoice.keep() and result.request.keys == ()


def test_no_key_for_an_image_without_one_is_asked_again_once_the_image_is_known(home):
    lines = with_pub(home, "id_ed25519.pub")
    answers = dict(BLANK_ANSWERS, ssh_keys=Turns([[], [f"file:{home}/.ssh/id_ed25519.pub"]]))
    result, prompter, log = wizard_log(blank_state(), answers)
    before, after = asked_before_and_after_the_wait(log)
    assert before == ["ssh_keys", "netbird"]
    assert after == ["ssh_keys", "password_method", "password", "password_again", "hostname", "confirm"]
    assert any("holds no SSH key" in line for kind, line in log if kind == "say")
    assert prompter.refused.get("ssh_keys") is None
    assert [k.line for k in result.request.keys] == [lines["id_ed25519.pub"]]


def test_replace_keys_needs_one_key_at_once(home):
    with_pub(home, "id_ed25519.pub")
    answers = {"ssh_keys": Turns([[], DEFAULT]), "netbird": DEFAULT, "password_method": DEFAULT,
               "hostname": DEFAULT, "confirm": DEFAULT}
    _, prompter, _ = wizard(seeded_state(), answers, SeedFlags(replace_keys=True))
    assert "keep_keys" not in prompter.asked  # --replace-keys: every key of the image goes anyway
    assert prompter.refused["ssh_keys"] == ["choose at least one: zvm logs in over SSH with a key only"]


def test_pasted_key_and_key_file_are_validated(home, tmp_path):
    good = public_line(comment="pasted")
    other = tmp_path / "other.pub"
    other.write_text(public_line(comment="from-file") + "\n")
    private = tmp_path / "id_private"
    from tests.support.keyfactory import private_pem

    private.write_text(private_pem())
    answers = dict(
        BLANK_ANSWERS, ssh_keys=["paste", "path"],
        ssh_key_paste=Turns([private_pem(), "ssh-ed25519 garbage", good]),
        ssh_key_file=Turns([str(tmp_path / "missing.pub"), str(private), str(other)]),
    )
    result, prompter, said = wizard(blank_state(), answers)
    assert [k.comment for k in result.request.keys] == ["pasted", "from-file"]
    assert "private key" in prompter.refused["ssh_key_paste"][0]
    assert "PRIVATE" not in "".join(prompter.refused["ssh_key_paste"])  # refused without echo
    assert "no such file" in prompter.refused["ssh_key_file"][0]
    assert "private key" in prompter.refused["ssh_key_file"][1]


def test_generated_key_pair_is_saved_0600_after_confirmation(home):
    target = home / ".ssh" / "zvm_ed25519"  # ~/.ssh does not exist yet: made 0700
    answers = dict(BLANK_ANSWERS, ssh_keys=["generate"], keygen_path=DEFAULT,
                   keygen_passphrase=Turns(["one phrase", "good phrase"]),
                   keygen_passphrase_again=Turns(["other phrase", "good phrase"]))
    result, prompter, said = wizard(blank_state(), answers)
    assert prompter.seen["keygen_path"]["default"] == str(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert target.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    public = target.with_name("zvm_ed25519.pub").read_text().strip()
    assert [k.line for k in result.request.keys] == [public]
    assert result.key_pair_saved == target
    assert f"Saved the new key pair: {target} (private, 0600)" in said
    from cryptography.hazmat.primitives.serialization import load_ssh_private_key

    load_ssh_private_key(target.read_bytes(), password=b"good phrase")


def test_generated_key_path_must_be_new(home):
    with_pub(home, "id_ed25519.pub")
    taken = home / ".ssh" / "id_ed25519"
    taken.write_text("x")
    paths = Turns([str(taken), str(home / "nodir" / "k"), str(home / ".ssh" / "fresh")])
    answers = dict(BLANK_ANSWERS, ssh_keys=["generate"], keygen_path=paths, keygen_passphrase="")
    wizard(blank_state(), answers)
    assert (home / ".ssh" / "fresh").exists()


def test_no_at_the_confirmation_is_exit_1_not_an_interrupt_and_writes_nothing_anywhere(home):
    answers = dict(BLANK_ANSWERS, ssh_keys=["generate"], keygen_path=DEFAULT, keygen_passphrase="",
                   confirm=False)
    with pytest.raises(Declined) as caught:
        wizard(blank_state(), answers)
    assert caught.value.exit_code == ExitCode.FAILURE == 1  # 130 is for signals
    assert "nothing was written" in caught.value.message
    assert not (home / ".ssh").exists()  # the generated pair is saved only after a yes


@pytest.mark.parametrize("question", ["password_method", "password", "password_again", "ssh_keys", "netbird",
                                      "netbird_setup_key", "hostname", "confirm"])
def test_ctrl_c_at_any_question_aborts(home, question):
    with_pub(home, "id_ed25519.pub")
    answers = dict(BLANK_ANSWERS, netbird=True, netbird_setup_key=NETBIRD_KEY, netbird_management_url="")
    answers[question] = None  # what questionary's ask() returns on Ctrl-C
    prompter = ScriptedPrompter(answers)
    with pytest.raises(Aborted):
        run_wizard(FakeSession(blank_state()), SeedFlags(), dry_run=False, prompter=prompter,
                   say=lambda _: None)
    assert prompter.asked[-1] == question


def test_ctrl_c_while_the_appliance_starts_aborts(home):
    session = FakeSession(blank_state())

    def interrupted() -> None:
        raise KeyboardInterrupt

    session.wait = interrupted
    prompter = ScriptedPrompter({"ssh_keys": ["paste"], "ssh_key_paste": public_line(), "netbird": False})
    with pytest.raises(Aborted):
        run_wizard(session, SeedFlags(), dry_run=False, prompter=prompter, say=lambda _: None)


def test_netbird_yes_asks_key_and_url(home):
    with_pub(home, "id_ed25519.pub")
    answers = dict(BLANK_ANSWERS, netbird=True,
                   netbird_setup_key=NETBIRD_KEY.lower(),
                   netbird_management_url=Turns(["http://nb.example", "https://nb.example:33073"]))
    result, prompter, said = wizard(blank_state(), answers)
    assert result.request.netbird_setup_key == Secret(NETBIRD_KEY)  # pasted in lower case, stored upper case
    assert result.request.netbird_management_url == "https://nb.example:33073"
    assert "netbird_setup_key" not in prompter.refused
    assert "https://" in prompter.refused["netbird_management_url"][0]
    assert NETBIRD_KEY not in said and "/var/lib/netbird/setup-key" in said


def test_netbird_no_asks_nothing_more(home):
    with_pub(home, "id_ed25519.pub")
    result, prompter, _ = wizard(blank_state(), dict(BLANK_ANSWERS))
    assert result.request.netbird_setup_key is None and result.request.netbird_management_url is None
    assert "netbird_setup_key" not in prompter.asked


def test_netbird_empty_url_means_the_default_service(home):
    with_pub(home, "id_ed25519.pub")
    answers = dict(BLANK_ANSWERS, netbird=True, netbird_setup_key=NETBIRD_KEY, netbird_management_url=DEFAULT)
    result, _, _ = wizard(blank_state(), answers)
    assert result.request.netbird_management_url is None


def test_flags_given_are_not_asked_again(home):
    key = tuple(parse_authorized_keys(public_line(comment="flag") + "\n", "flag"))
    flags = SeedFlags(password_plain=Secret("from a file 123"), keys=key,
                      netbird_setup_key=Secret(NETBIRD_KEY), netbird_management_url="https://nb.example",
                      hostname="zvm-flag")
    result, prompter, _ = wizard(blank_state(), {"confirm": True}, flags)
    assert prompter.asked == ["confirm"]
    assert verifies(result.request.password, "from a file 123")  # hashed on the way, as the scripted run does
    assert result.request.keys == key


def test_partial_flags_ask_only_the_rest(home):
    with_pub(home, "id_ed25519.pub")
    flags = SeedFlags(password=PasswordChoice.locked())
    answers = {"ssh_keys": DEFAULT, "netbird": False, "hostname": DEFAULT, "confirm": True}
    result, prompter, _ = wizard(blank_state(), answers, flags)
    assert prompter.asked == ["ssh_keys", "netbird", "hostname", "confirm"]
    assert result.request.password == PasswordChoice.locked()


def test_dry_run_shows_the_plan_and_asks_no_confirmation(home):
    answers = dict(BLANK_ANSWERS, ssh_keys=["generate"], keygen_path=DEFAULT, keygen_passphrase="")
    del answers["confirm"]
    result, prompter, said = wizard(blank_state(), answers, dry_run=True)
    assert "confirm" not in prompter.asked
    assert "Dry run: nothing will be written" in said
    assert not (home / ".ssh").exists()


def missing_flags(flags, state):
    """core's verdict on what a run without a terminal lacks, in the seed command's words."""
    return missing_words(missing(flags, state))


def test_missing_flags_are_listed_precisely():
    nothing = SeedFlags()
    assert missing(nothing, None) == [Missing.PASSWORD, Missing.KEY]  # core's own terms: no flag named
    assert missing_flags(nothing, None) == [
        "a password source (--password-stdin, --password-file F, --password-hash-file F or --no-password)",
        "an SSH public key (--ssh-key F)",
    ]
    assert missing_flags(nothing, seeded_state()) == []
    only_keys = missing_flags(SeedFlags(keys=()), blank_state())
    assert only_keys == ["a password source (--password-stdin, --password-file F, --password-hash-file F or "
                         "--no-password)"]
    assert missing_flags(SeedFlags(password=PasswordChoice.locked()), blank_state()) == [
        "an SSH public key (--ssh-key F)"
    ]
    assert missing_flags(SeedFlags(replace_keys=True), seeded_state()) == ["an SSH public key (--ssh-key F)"]
    message = missing_flags_message(missing(nothing, blank_state()), image_read=True)
    assert message.startswith("no terminal to ask on, and the image holds neither: give a password source")
    assert "--ssh-key F" in message


def test_scripted_prompter_fails_on_unexpected_or_repeated_questions():
    prompter = ScriptedPrompter({"a": "x"})
    assert prompter(Prompt("a", Kind.TEXT, "?")) == "x"
    with pytest.raises(AssertionError, match="asked again"):
        prompter(Prompt("a", Kind.TEXT, "?"))
    with pytest.raises(AssertionError, match="unexpected"):
        prompter(Prompt("b", Kind.CONFIRM, "?"))


def test_the_questions_are_one_list_with_unique_names_asked_before_or_after_the_image_is_known():
    names = [q.name for q in QUESTIONS]
    assert len(names) == len(set(names))
    before = [q.name for q in QUESTIONS if q.part in ("keys", "netbird")]
    assert before == ["ssh_keys", "ssh_key_paste", "ssh_key_file", "ssh_key_import", "ssh_key_import_pick",
                      "keygen_path", "keygen_passphrase",
                      "keygen_passphrase_again", "netbird", "netbird_setup_key", "netbird_management_url"]
    assert names[len(before):] == ["keep_keys", "password_method", "password_hash", "password", "password_again",
                                   "hostname", "confirm"]


def test_hostname_question_defaults_to_the_images_name_and_keeps_it_unless_changed(home):
    with_pub(home, "id_ed25519.pub")
    # blank image: the default is zvm, and taking it writes no file (the VM is zvm without one)
    result, prompter, _ = wizard(blank_state(), dict(BLANK_ANSWERS))
    assert prompter.seen["hostname"]["default"] == "zvm"
    assert result.request.hostname is None
    assert result.plan.operation("/etc/hostname").action == "keep"
    # a seeded name is the default, and Enter keeps it
    named = replace(seeded_state(), hostname="zvm-alice", hostname_raw=b"zvm-alice\n")
    answers = {"ssh_keys": [], "netbird": False, "keep_keys": DEFAULT, "password_method": DEFAULT,
               "hostname": DEFAULT, "confirm": True}
    result, prompter, _ = wizard(named, answers)
    assert prompter.seen["hostname"]["default"] == "zvm-alice" and result.request.hostname is None
    # a new name is checked with the rule, then written
    answers = dict(BLANK_ANSWERS, hostname=Turns(["Bad_Name", "-x", "zvm-bob"]))
    result, prompter, said = wizard(blank_state(), answers)
    assert all("lower-case letters" in why for why in prompter.refused["hostname"])
    assert len(prompter.refused["hostname"]) == 2
    assert result.request.hostname == "zvm-bob"
    assert result.plan.operation("/etc/hostname").content == b"zvm-bob\n"
    assert "Hostname: zvm-bob" in said


# ------------------------------------------------------------------------------------------------
# Taking keys out, and never locking everyone out


ALICE_LINE, BOB_LINE = public_line(comment="alice@laptop"), public_line(comment="bob@desk")


def locked(state: ImageState) -> ImageState:
    return replace(state, password=PasswordInfo("locked", None, None))


def fingerprint(line: str) -> str:
    return parse_authorized_keys(line + "\n", "t")[0].fingerprint


def test_a_seeded_image_shows_its_keys_all_ticked_and_the_unticked_ones_go(home):
    state = seeded_state(ALICE_LINE, BOB_LINE)
    answers = {"ssh_keys": [], "netbird": False, "keep_keys": [fingerprint(ALICE_LINE)],
               "password_method": DEFAULT, "hostname": DEFAULT, "confirm": True}
    result, prompter, said = wizard(state, answers)
    options = prompter.seen["keep_keys"]["options"]
    assert [(o.value, o.checked) for o in options] == [(fingerprint(ALICE_LINE), True), (fingerprint(BOB_LINE), True)]
    assert "bob@desk" in options[1].title and "SHA256:" in options[1].title
    assert [k.comment for k in result.plan.removed_keys] == ["bob@desk"]
    assert [k.comment for k in result.plan.authorized_keys] == ["alice@laptop"]
    assert "  - 256 " + fingerprint(BOB_LINE) in said
    assert f"remove   key  256 {fingerprint(BOB_LINE)} bob@desk (ED25519)" in said  # the plan shows which go


def test_unticking_every_key_under_no_password_is_asked_again_with_the_reason(home):
    answers = {"ssh_keys": [], "netbird": False, "keep_keys": Turns([[], [fingerprint(BOB_LINE)]]), "hostname": DEFAULT, "confirm": True}
    result, prompter, _ = wizard(seeded_state(ALICE_LINE, BOB_LINE), answers, SeedFlags(password=PasswordChoice.locked()))
    assert prompter.refused["keep_keys"] == ["keep at least one: with --no-password, a key is the only way in"]
    assert [k.comment for k in result.plan.authorized_keys] == ["bob@desk"]


def test_unticking_every_key_with_a_locked_password_asks_for_a_password_and_offers_no_lock(home):
    answers = {"ssh_keys": [], "netbird": False, "keep_keys": [], "password_method": DEFAULT,
               "password": "a long password", "password_again": "a long password", "hostname": DEFAULT, "confirm": True}
    result, prompter, said = wizard(locked(seeded_state(ALICE_LINE)), answers)
    assert [o.value for o in prompter.seen["password_method"]["options"]] == ["type", "hash"]  # no keep, no lock
    assert "the password is the only way in (on the console)" in said and "the current one is locked" in said
    assert verifies(result.request.password, "a long password")
    assert result.plan.authorized_keys == () and len(result.plan.removed_keys) == 1


def test_a_blank_image_may_be_seeded_with_a_password_only(home):
    answers = dict(BLANK_ANSWERS, ssh_keys=Turns([[], []]))
    result, prompter, said = wizard(blank_state(), answers)
    assert prompter.refused.get("ssh_keys") is None  # none is an answer: the password will let zvm in
    assert [o.value for o in prompter.seen["password_method"]["options"]] == ["type", "hash"]
    assert result.plan.authorized_keys == ()
    assert "zvm logs in on the console only" in said


def test_a_blank_image_under_no_password_needs_a_key(home):
    with_pub(home, "id_ed25519.pub")
    answers = {"ssh_keys": Turns([[], [], DEFAULT]), "netbird": False, "hostname": DEFAULT, "confirm": True}
    result, prompter, _ = wizard(blank_state(), answers, SeedFlags(password=PasswordChoice.locked()))
    assert prompter.refused["ssh_keys"] == ["choose at least one: zvm logs in over SSH with a key only"]
    assert len(result.plan.authorized_keys) == 1


def test_a_remove_key_flag_naming_no_key_fails_once_the_image_is_read_before_the_password(home):
    from provision.core.keyremoval import parse_selector
    from provision.errors import UsageError

    flags = SeedFlags(remove_keys=(parse_selector("carol@phone"),))
    prompter = ScriptedPrompter({"ssh_keys": [], "netbird": False})
    with pytest.raises(UsageError, match="no such key in the image") as caught:
        run_wizard(FakeSession(seeded_state(ALICE_LINE)), flags, dry_run=False, prompter=prompter, say=lambda _: None)
    assert "alice@laptop" in caught.value.message
    assert prompter.asked == ["ssh_keys", "netbird"]


def test_unticking_a_key_also_ticked_to_add_takes_it_out(home):
    """The default key is ticked to add before the image's keys are shown; unticking it there, seeing the image,
    is the later answer and wins (else the run would both add and remove it)."""
    lines = with_pub(home, "id_ed25519.pub")
    state = seeded_state(lines["id_ed25519.pub"], BOB_LINE)
    answers = {"ssh_keys": DEFAULT, "netbird": False, "keep_keys": [fingerprint(BOB_LINE)],
               "password_method": DEFAULT, "hostname": DEFAULT, "confirm": True}
    result, _, _ = wizard(state, answers)
    assert [k.comment for k in result.plan.authorized_keys] == ["bob@desk"]
    assert [k.comment for k in result.plan.removed_keys] == ["id_ed25519.pub"]


def test_a_key_given_with_ssh_key_cannot_be_unticked(home):
    flags = SeedFlags(keys=tuple(parse_authorized_keys(ALICE_LINE + "\n", "flag")))
    answers = {"netbird": False, "keep_keys": Turns([[fingerprint(BOB_LINE)], DEFAULT]),
               "password_method": DEFAULT, "hostname": DEFAULT, "confirm": True}
    result, prompter, _ = wizard(seeded_state(ALICE_LINE, BOB_LINE), answers, flags)
    assert prompter.refused["keep_keys"] == [f"{fingerprint(ALICE_LINE)} is given with --ssh-key: keep it ticked"]
    assert result.plan.removed_keys == ()


def test_localhost_is_refused_as_a_hostname_with_the_rule_and_asked_again(home):
    with_pub(home, "id_ed25519.pub")
    answers = dict(BLANK_ANSWERS, hostname=Turns(["localhost", "localhost.localdomain", "zvm-desk"]))
    result, prompter, _ = wizard(blank_state(), answers)
    assert [refusal.split(":")[0] for refusal in prompter.refused["hostname"]] == [
        "the hostname 'localhost' is refused", "the hostname 'localhost.localdomain' is refused"]
    assert all("hostname_is_useful" in refusal for refusal in prompter.refused["hostname"])
    assert result.request.hostname == "zvm-desk"


def test_a_pasted_key_with_options_keeps_them_and_the_summary_shows_them(home):
    """Options are the person's own choice when they come from them (pasted, or a local file): kept, and
    shown in the summary before the confirmation, so that a forced command is never a surprise."""
    line = 'restrict,from="10.0.0.0/8" ' + public_line(comment="ops")
    answers = dict(BLANK_ANSWERS, ssh_keys=["paste"], ssh_key_paste=line)
    result, _, said = wizard(blank_state(), answers)
    assert [key.line for key in result.request.keys] == [line]
    assert f'{result.plan.authorized_keys[0].fingerprint} ops (ED25519) with options restrict,from="10.0.0.0/8"' in said
