"""Never lock everyone out: the rule over every combination that reaches it, through the real planner against an
in-memory filesystem (no appliance). tests/commands/seed/test_lockout.py runs the refusals through the real command.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from provision.commands.flagwords import keys_refusal, lockout_message, missing_words
from provision.core.access import LockedOut, lockout, no_way_in_reason, way_in
from provision.core.credentials.hostkeys import generate_host_key
from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.core.keyremoval import parse_selector
from provision.core.layout import load_layout
from provision.core.plan import FreshMaterial, build_plan
from provision.core.request import PasswordChoice, SeedRequest
from provision.core.state import read_state
from provision.errors import UsageError
from provision.secret import Secret
from tests.support.fakes import MemoryFS
from tests.support.keyfactory import public_line

LAYOUT = load_layout()
HASH = "$6$rounds=1000$saltsalt$" + "a" * 86
FRESH = FreshMaterial(host_key=generate_host_key(), machine_id="0123456789abcdef0123456789abcdef",
                      now=datetime(2026, 11, 29, 14, 2, tzinfo=UTC), tool_version="0.1.0")
ALICE = public_line(comment="alice@laptop")
BOB = public_line(comment="bob@desk")
KEYS_FILE = "/home/zvm/.ssh/authorized_keys"


def keys(*lines: str):
    return tuple(parse_authorized_keys("\n".join(lines) + "\n", "test"))


def image(password: str | None, *key_lines: str) -> MemoryFS:
    """An image seeded with `password` ('hash', 'locked', a raw line, or None: no file) and these keys."""
    fs = MemoryFS()
    choice = PasswordChoice.locked() if password != "hash" else PasswordChoice.from_hash(Secret(HASH))
    first = SeedRequest(password=choice, keys=keys(*(key_lines or (ALICE,))))
    plan = build_plan(first, read_state(fs, LAYOUT), LAYOUT, FRESH)
    from provision.core.apply import apply_plan

    apply_plan(plan, fs)
    if not key_lines:
        fs.nodes[KEYS_FILE].data = b""
    if password is None:
        del fs.nodes["/passwords/zvm"]
    elif password not in ("hash", "locked"):
        fs.nodes["/passwords/zvm"].data = password.encode()
    return fs


SET, LOCKED, KEEP = PasswordChoice.from_hash(Secret(HASH)), PasswordChoice.locked(), PasswordChoice.keep()
FP_ALICE = keys(ALICE)[0].fingerprint

# (what the image holds, the request, refused?): every road to "no key and no usable password", and its neighbours
CASES = {
    "blank, password only": (lambda: MemoryFS(), SeedRequest(password=SET), False),
    "blank, key only (locked)": (lambda: MemoryFS(), SeedRequest(password=LOCKED, keys=keys(ALICE)), False),
    "blank, locked and no key": (lambda: MemoryFS(), SeedRequest(password=LOCKED), True),
    "keys, --no-password": (lambda: image("hash", ALICE), SeedRequest(password=LOCKED), False),
    "keys, --replace-keys with none, --no-password": (
        lambda: image("hash", ALICE), SeedRequest(password=LOCKED, replace_keys=True), True),
    "keys, --replace-keys with none, keep a set password": (
        lambda: image("hash", ALICE), SeedRequest(replace_keys=True), False),
    "keys, --replace-keys with none, keep a locked password": (
        lambda: image("locked", ALICE), SeedRequest(replace_keys=True), True),
    "keys, --replace-keys with a key, --no-password": (
        lambda: image("hash", ALICE), SeedRequest(password=LOCKED, keys=keys(BOB), replace_keys=True), False),
    "no key, keep a locked password": (lambda: image("locked"), SeedRequest(), True),
    "no key, keep an invalid password": (lambda: image("hunter2\n"), SeedRequest(), True),
    "no key, keep a set password": (lambda: image("hash"), SeedRequest(), False),
    "no key, set a password": (lambda: image("locked"), SeedRequest(password=SET), False),
    "remove the last key, locked": (
        lambda: image("locked", ALICE), SeedRequest(remove_keys=(parse_selector(FP_ALICE),)), True),
    "remove the last key, --no-password": (
        lambda: image("hash", ALICE), SeedRequest(password=LOCKED, remove_keys=(parse_selector("alice@laptop"),)),
        True),
    "remove the last key, password set": (
        lambda: image("hash", ALICE), SeedRequest(remove_keys=(parse_selector(FP_ALICE),)), False),
    "remove one of two keys, locked": (
        lambda: image("locked", ALICE, BOB), SeedRequest(remove_keys=(parse_selector("bob@desk"),)), False),
    "remove the last key and add another, locked": (
        lambda: image("locked", ALICE), SeedRequest(remove_keys=(parse_selector(FP_ALICE),), keys=keys(BOB)), False),
    # only real ways in count (core.credentials.authorizedkeys: sshd's rules; passwords: NixOS's)
    "remove the last key sshd lets in, an expired one left, locked": (
        lambda: image("locked", ALICE, 'expiry-time="19700102" ' + BOB),
        SeedRequest(remove_keys=(parse_selector("alice@laptop"),)), True),
    "remove a key, one expiring in 2099 left, locked": (
        lambda: image("locked", ALICE, 'expiry-time="20991231" ' + BOB),
        SeedRequest(remove_keys=(parse_selector("alice@laptop"),)), False),
    "remove the last key, the hash line ending in CRLF": (
        lambda: image(HASH + "\r\n", ALICE), SeedRequest(remove_keys=(parse_selector("alice@laptop"),)), True),
    "remove the last key, the hash line ending in LF": (
        lambda: image(HASH + "\n", ALICE), SeedRequest(remove_keys=(parse_selector("alice@laptop"),)), False),
}


@pytest.mark.parametrize("case", CASES)
def test_the_rule_over_every_combination(case):
    make, request, refused = CASES[case]
    fs = make()
    state = read_state(fs, LAYOUT)
    before = {path: (node.data, node.mode) for path, node in fs.nodes.items()}
    if refused:
        with pytest.raises(LockedOut) as caught:
            build_plan(request, state, LAYOUT, FRESH)
        assert isinstance(caught.value, UsageError)  # exit 2, as every refusal of the input
        assert "--" not in caught.value.message  # core names no flag: the command that has them says them
        message = lockout_message(caught.value)
        assert "no way in" in message
        assert "--ssh-key" in message and "--password-stdin" in message  # says how to get a way in
        assert ("--remove-key" in message) == bool(request.remove_keys)
        assert HASH not in message
        assert {path: (node.data, node.mode) for path, node in fs.nodes.items()} == before
    else:
        plan = build_plan(request, state, LAYOUT, FRESH)
        password_after = plan.operation("/passwords/zvm")
        assert plan.authorized_keys or request.password == SET or (
            request.password == KEEP and state.password is not None and state.password.state == "set"
        ), password_after


def test_a_blank_image_seeded_with_a_password_only_gets_an_empty_authorized_keys():
    fs = MemoryFS()
    plan = build_plan(SeedRequest(password=SET), read_state(fs, LAYOUT), LAYOUT, FRESH)
    assert plan.authorized_keys == ()
    assert plan.operation(KEYS_FILE).content_bytes() == b""


@pytest.mark.parametrize(("count", "password", "expected"), [
    (0, "set", True), (1, "locked", True), (2, "missing", True), (1, "invalid", True),
    (0, "locked", False), (0, "missing", False), (0, "invalid", False), (0, "unreadable", False),
])
def test_way_in_is_a_key_or_a_set_password(count, password, expected):
    assert way_in(count, password) is expected
    assert (no_way_in_reason(count, password) is None) is expected
    assert (lockout(count, password, removing=False) is None) is expected


def test_a_run_without_a_terminal_lacks_a_key_only_where_no_password_would_let_anybody_in():
    from provision.core.request import SeedFlags
    from provision.core.request import missing_flags as missing

    def missing_flags(flags, state):  # core's verdict, in the seed command's words
        return missing_words(missing(flags, state))

    key_flag = "an SSH public key (--ssh-key F)"
    blank = read_state(MemoryFS(), LAYOUT)
    assert missing_flags(SeedFlags(password_plain=Secret("a password 123")), blank) == []  # password only
    assert missing_flags(SeedFlags(password=SET), blank) == []
    assert missing_flags(SeedFlags(password=LOCKED), blank) == [key_flag]
    password_only = read_state(image("hash"), LAYOUT)
    assert missing_flags(SeedFlags(), password_only) == []  # kept: the console is the way in
    assert missing_flags(SeedFlags(password=LOCKED), password_only) == [key_flag]
    assert missing_flags(SeedFlags(replace_keys=True, password=SET), read_state(image("hash", ALICE), LAYOUT)) == [
        key_flag  # --replace-keys replaces with what --ssh-key gives: it never means "no key" by itself
    ]


def test_keys_says_its_own_flags_never_seeds():
    """`keys` takes no --ssh-key and sets no password: its refusals say what it has (--add-key) or send to seed."""
    refusal = lockout(0, "locked", removing=True, held=1)
    assert refusal is not None
    words = keys_refusal(refusal)
    assert "no way in" in words and "--add-key" in words and "zvm-provision seed" in words
    assert "--ssh-key" not in words and "--password-stdin" not in words
    from provision.core.access import NoPasswordYet

    words = keys_refusal(NoPasswordYet())
    assert "--password" not in words and "seed it first" in words
