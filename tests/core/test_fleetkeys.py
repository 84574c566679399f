"""What `keys` asks of each image of a fleet, and what `inspect --find-key` finds: the pure rules, planned
through core.plan on the in-memory filesystem (the appliance runs are in tests/commands/fleet/test_keys.py)."""

from __future__ import annotations

import pytest

from provision.core.apply import apply_plan, verify_plan
from provision.core.fleetkeys import KeyChange, matching_keys, request_for, unchanged_reason
from provision.core.keyremoval import parse_selector
from provision.core.plan import build_plan
from provision.core.record import parse_record
from provision.core.request import PasswordChoice
from provision.core.state import read_state
from provision.errors import UsageError
from provision.secret import Secret
from tests.core.test_keyremoval import ALICE, BOB, CAROL, FRESH, HASH, KEYS_FILE, LAYOUT, key, seeded
from tests.support.keyfactory import public_line

RECORD = LAYOUT.role("seed-record").path


def image(*lines: str, password: PasswordChoice = PasswordChoice.locked()):
    return seeded("".join(line + "\n" for line in lines), password)


def plan_for(fs, change: KeyChange):
    state = read_state(fs, LAYOUT)
    request = request_for(change, state.authorized_keys, "it@desk")
    return None if request is None else build_plan(request, state, LAYOUT, FRESH)


def test_find_key_matches_by_fingerprint_or_comment_each_key_once():
    keys = [key(ALICE), key(BOB), key(ALICE.replace("alice@laptop", "alice again"))]
    assert matching_keys(keys, [parse_selector("bob@desk")]) == (key(BOB),)
    found = matching_keys(keys, [parse_selector(key(ALICE).fingerprint), parse_selector("alice@laptop")])
    assert [k.fingerprint for k in found] == [key(ALICE).fingerprint]
    assert matching_keys(keys, [parse_selector("carol@phone")]) == ()


def test_revoke_leaves_an_image_without_the_key_alone_and_records_what_went():
    change = KeyChange(remove=(parse_selector("bob@desk"),))
    assert plan_for(image(ALICE), change) is None
    assert unchanged_reason(change) == "does not hold the key(s)"
    fs = image(ALICE, BOB)
    plan = plan_for(fs, change)
    apply_plan(plan, fs)
    verify_plan(plan, fs)
    assert fs.nodes[KEYS_FILE].data.decode() == ALICE + "\n"
    entry = parse_record(fs.nodes[RECORD].data).entries[-1]
    assert entry["change"] == f"keys: removed {key(BOB).fingerprint}" and entry["operator"] == "it@desk"
    assert entry["password"] == "kept"


def test_revoking_the_only_way_in_is_refused():
    with pytest.raises(UsageError, match="no way in"):
        plan_for(image(BOB), KeyChange(remove=(parse_selector("bob@desk"),)))
    # with a password set, the console stays: allowed
    fs = image(BOB, password=PasswordChoice.from_hash(Secret(HASH)))
    assert plan_for(fs, KeyChange(remove=(parse_selector("bob@desk"),))).authorized_keys == ()


def test_rotate_adds_only_where_a_removed_key_was():
    change = KeyChange(remove=(parse_selector("bob@desk"),), add=(key(CAROL),))
    assert change.rotate and plan_for(image(ALICE), change) is None
    assert unchanged_reason(change) == "holds none of the keys to replace"
    plan = plan_for(image(ALICE, BOB), change)
    assert [k.comment for k in plan.authorized_keys] == ["alice@laptop", "carol@phone"]
    assert plan.record.entry.change == f"keys: removed {key(BOB).fingerprint}; added {key(CAROL).fingerprint}"


def test_add_goes_to_every_image_not_yet_holding_it():
    change = KeyChange(add=(key(CAROL),))
    assert plan_for(image(ALICE, CAROL), change) is None
    assert unchanged_reason(change) == "already holds the key(s)"
    plan = plan_for(image(ALICE), change)
    assert [k.comment for k in plan.authorized_keys] == ["alice@laptop", "carol@phone"]


def test_an_ambiguous_comment_is_refused_for_that_image():
    twin = public_line(comment="alice@laptop")
    with pytest.raises(UsageError, match="different keys have that comment"):
        plan_for(image(ALICE, twin, BOB), KeyChange(remove=(parse_selector("alice@laptop"),)))


def test_nothing_asked_or_a_key_both_removed_and_added_is_a_usage_error():
    with pytest.raises(UsageError, match="nothing to change"):
        KeyChange()
    with pytest.raises(UsageError, match="both removed"):
        KeyChange(remove=(parse_selector("bob@desk"),), add=(key(BOB),))


def test_seed_and_batch_entries_carry_no_change_field():
    fs = image(ALICE)
    entry = parse_record(fs.nodes[RECORD].data).entries[-1]
    assert "change" not in entry


def test_release_signers_alone_are_set_on_every_image_that_lacks_exactly_them():
    signers = (key(CAROL),)
    change = KeyChange(signers=signers)
    fs = image(ALICE)
    state = read_state(fs, LAYOUT)
    plan = build_plan(request_for(change, state.authorized_keys, "it@desk", state.update_signers_raw), state,
                      LAYOUT, FRESH)
    apply_plan(plan, fs)
    verify_plan(plan, fs)
    assert fs.nodes[KEYS_FILE].data.decode() == ALICE + "\n"  # the keys are not touched
    written = fs.nodes[LAYOUT.role("update-signers").path].data
    assert key(CAROL).line.split()[1] in written.decode()
    state = read_state(fs, LAYOUT)
    assert request_for(change, state.authorized_keys, "it@desk", state.update_signers_raw) is None
    assert unchanged_reason(change) == "already has these release signers"
    assert request_for(KeyChange(signers=(key(BOB),)), state.authorized_keys, "it@desk",
                       state.update_signers_raw) is not None
