"""Taking keys out: selectors as ssh-keygen -l names keys, the refusals, and the edit that keeps every other line
(through the real planner, against an in-memory filesystem). Key material is generated at run time."""

from __future__ import annotations

from datetime import UTC, datetime

import shutil
import subprocess

import pytest

from provision.core.apply import apply_plan, verify_plan
from provision.core.credentials.hostkeys import generate_host_key
from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.core.keyremoval import edit_authorized_keys, parse_selector, select_keys_to_remove
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
KEYS_FILE = "/home/zvm/.ssh/authorized_keys"
ALICE, BOB, CAROL = (public_line(comment=c) for c in ("alice@laptop", "bob@desk", "carol@phone"))


def key(line: str):
    return parse_authorized_keys(line + "\n", "test")[0]


def seeded(content: str, password: PasswordChoice = PasswordChoice.locked()) -> MemoryFS:
    fs = MemoryFS()
    plan = build_plan(SeedRequest(password=password, keys=(key(ALICE),)), read_state(fs, LAYOUT), LAYOUT, FRESH)
    apply_plan(plan, fs)
    fs.nodes[KEYS_FILE].data = content.encode()
    return fs


def remove(fs: MemoryFS, *selectors: str, **request):
    plan = build_plan(SeedRequest(remove_keys=tuple(parse_selector(s) for s in selectors), **request),
                      read_state(fs, LAYOUT), LAYOUT, FRESH)
    apply_plan(plan, fs)
    verify_plan(plan, fs)
    return plan


def test_selectors_fingerprint_keygen_line_or_exact_comment():
    alice = key(ALICE)
    assert parse_selector(alice.fingerprint).fingerprint == alice.fingerprint
    assert parse_selector(alice.describe()).fingerprint == alice.fingerprint  # the whole ssh-keygen -l line
    assert parse_selector(f"  {alice.fingerprint}\t").fingerprint == alice.fingerprint
    assert parse_selector("alice@laptop").comment == "alice@laptop"
    assert parse_selector("256 is not a line").comment == "256 is not a line"
    for bad, why in (("", "needs"), ("  ", "needs"), ("SHA256:short", "not a SHA256"),
                     ("MD5:12:34:56", "not a SHA256"), ("a\x1b[2Jb", "control")):
        with pytest.raises(UsageError, match=why):
            parse_selector(bad)


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="ssh-keygen not installed")
def test_what_ssh_keygen_prints_selects_the_key(tmp_path):
    path = tmp_path / "k.pub"
    path.write_text(BOB + "\n")
    printed = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=True).stdout
    assert parse_selector(printed.strip()).fingerprint == key(BOB).fingerprint
    assert parse_selector(printed.split()[1]).fingerprint == key(BOB).fingerprint


def test_remove_by_fingerprint_and_by_comment_keeps_every_other_line_in_order():
    content = f"# team keys\n{ALICE}\n\nrestrict {BOB}\n# carol\n{CAROL}\n"
    fs = seeded(content)
    plan = remove(fs, key(BOB).fingerprint)
    assert fs.nodes[KEYS_FILE].data.decode() == f"# team keys\n{ALICE}\n\n# carol\n{CAROL}\n"
    assert [k.comment for k in plan.removed_keys] == ["bob@desk"]
    assert [k.comment for k in plan.authorized_keys] == ["alice@laptop", "carol@phone"]
    assert plan.operation(KEYS_FILE).summary == "2 keys, 1 key removed"
    plan = remove(fs, "carol@phone")
    assert fs.nodes[KEYS_FILE].data.decode() == f"# team keys\n{ALICE}\n\n# carol\n"


def test_a_key_on_two_lines_goes_from_both():
    other_comment = ALICE.rsplit(" ", 1)[0] + " alice@old"
    fs = seeded(f"{ALICE}\n{BOB}\n{other_comment}\n")
    plan = remove(fs, "alice@old")
    assert fs.nodes[KEYS_FILE].data.decode() == f"{BOB}\n"  # sshd would still take the key from the other line
    assert len(plan.removed_keys) == 1


def test_removing_an_absent_key_lists_what_is_there():
    fs = seeded(f"{ALICE}\n{BOB}\n")
    before = fs.nodes[KEYS_FILE].data
    for selector in (key(CAROL).fingerprint, "carol@phone"):
        with pytest.raises(UsageError) as caught:
            build_plan(SeedRequest(remove_keys=(parse_selector(selector),)), read_state(fs, LAYOUT), LAYOUT, FRESH)
        message = caught.value.message
        assert "no such key" in message
        assert f"{key(ALICE).fingerprint} alice@laptop" in message and f"{key(BOB).fingerprint} bob@desk" in message
    assert fs.nodes[KEYS_FILE].data == before


def test_a_comment_shared_by_two_keys_is_refused_as_ambiguous():
    twin = public_line(comment="alice@laptop")
    fs = seeded(f"{ALICE}\n{twin}\n{BOB}\n", password=PasswordChoice.from_hash(Secret(HASH)))
    with pytest.raises(UsageError, match="2 different keys have that comment") as caught:
        build_plan(SeedRequest(remove_keys=(parse_selector("alice@laptop"),)), read_state(fs, LAYOUT), LAYOUT, FRESH)
    assert key(ALICE).fingerprint in caught.value.message and key(twin).fingerprint in caught.value.message
    remove(fs, key(ALICE).fingerprint, key(twin).fingerprint)  # by fingerprint, both can go
    assert fs.nodes[KEYS_FILE].data.decode() == f"{BOB}\n"


def test_remove_and_add_in_one_run_and_contradictions():
    fs = seeded(f"{ALICE}\n{BOB}\n")
    plan = remove(fs, "bob@desk", keys=(key(CAROL),))  # rotate: one out, one in
    assert fs.nodes[KEYS_FILE].data.decode() == f"{ALICE}\n{CAROL}\n"
    assert [k.comment for k in plan.removed_keys] == ["bob@desk"]
    with pytest.raises(UsageError, match="both removed .* and added"):
        remove(fs, "carol@phone", keys=(key(CAROL),))
    with pytest.raises(UsageError, match="--replace-keys already takes out every key"):
        remove(fs, "carol@phone", keys=(key(BOB),), replace_keys=True)


def test_the_edit_appends_after_a_last_line_without_newline_and_keeps_bytes_it_cannot_parse():
    alice, bob = key(ALICE), key(BOB)
    raw = b"# \xff not utf-8\n" + ALICE.encode()
    assert edit_authorized_keys(raw, [alice], set(), [bob]) == raw + b"\n" + BOB.encode() + b"\n"
    assert edit_authorized_keys(raw, [alice], {alice.blob}, []) == b"# \xff not utf-8\n"
    assert edit_authorized_keys(None, [], set(), [alice, alice]) == ALICE.encode() + b"\n"
    assert edit_authorized_keys(raw, [alice], set(), [alice]) == raw  # already there: nothing changes


def test_selection_names_each_key_once_in_the_image_order():
    alice, bob = key(ALICE), key(BOB)
    chosen = select_keys_to_remove([alice, bob], [parse_selector("bob@desk"), parse_selector(alice.fingerprint),
                                                  parse_selector(bob.describe())])
    assert chosen == (alice, bob)
