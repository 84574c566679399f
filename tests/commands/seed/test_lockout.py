"""Never lock everyone out, and --remove-key, through the real command and the real appliance.

One image is seeded once (three keys, a locked password); the refusals run against it first and must leave it
byte for byte as it was (sha256 before and after); the last test takes two keys out and reads the image back
with `inspect`. The rule over every combination is tested without the appliance in tests/core/test_access.py.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from provision.core.credentials.sshkeys import parse_authorized_keys
from tests.commands.seed.test_seed import sha256, zvm
from tests.support.keyfactory import public_line

pytestmark = pytest.mark.appliance

ALICE, BOB, CAROL = (public_line(comment=c) for c in ("alice@laptop", "bob@desk", "carol@phone"))


def key(line: str):
    return parse_authorized_keys(line + "\n", "test")[0]


@pytest.fixture(scope="module")
def keyed(make_disk_copy, tmp_path_factory):
    """An image whose only ways in are three keys: the password is locked."""
    work = tmp_path_factory.mktemp("lockout")
    disk = make_disk_copy("lockout")
    team = work / "team_keys"
    team.write_text(f"{ALICE}\n{BOB}\n{CAROL}\n")
    run = zvm(str(disk), "--no-password", "--ssh-key", str(team), "--json")
    assert run.returncode == 0, run.stderr
    assert [k["comment"] for k in json.loads(run.stdout)["authorized_keys"]] == ["alice@laptop", "bob@desk",
                                                                                 "carol@phone"]
    return SimpleNamespace(disk=disk, work=work)


def refused(keyed, *args: str) -> str:
    """Run the seed command, expect exit 2 and the image unchanged; return what it said."""
    before = sha256(keyed.disk)
    run = zvm(str(keyed.disk), *args)
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert sha256(keyed.disk) == before, "a refused run changed the image"
    assert "Traceback" not in run.stderr
    return run.stderr


def test_replace_keys_with_an_empty_key_file_and_no_password_is_refused(keyed):
    empty = keyed.work / "empty.pub"
    empty.write_text("")
    said = refused(keyed, "--replace-keys", "--ssh-key", str(empty), "--no-password")
    assert f"{empty} holds no public key" in said  # refused as input, before the image is opened


def test_removing_an_absent_key_is_refused_and_lists_the_keys_there(keyed):
    absent = key(public_line(comment="dave@nowhere"))
    said = refused(keyed, "--remove-key", absent.fingerprint)
    assert f"--remove-key {absent.fingerprint}: no such key in the image" in said
    for line in (ALICE, BOB, CAROL):
        assert f"{key(line).fingerprint} {key(line).comment}" in said


def test_removing_the_last_keys_with_a_locked_password_is_refused(keyed):
    said = refused(keyed, "--remove-key", key(ALICE).fingerprint, "--remove-key", "bob@desk",
                   "--remove-key", key(CAROL).describe())  # fingerprint, comment, the ssh-keygen -l line
    assert "no SSH key and the password is locked" in said and "no way in" in said
    assert "--ssh-key" in said and "--password-stdin" in said and "--remove-key" in said


def test_remove_key_by_fingerprint_and_by_comment_takes_out_exactly_those(keyed):
    run = zvm(str(keyed.disk), "--remove-key", key(BOB).fingerprint, "--remove-key", "carol@phone", "--json")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert [k["comment"] for k in out["removed_keys"]] == ["bob@desk", "carol@phone"]
    assert [k["fingerprint"] for k in out["authorized_keys"]] == [key(ALICE).fingerprint]
    inspected = zvm("inspect", str(keyed.disk), "--json")
    assert inspected.returncode == 0, inspected.stderr
    report = json.loads(inspected.stdout)
    assert [k["fingerprint"] for k in report["authorized_keys"]["keys"]] == [key(ALICE).fingerprint]
    assert report["password"]["state"] == "locked"
    assert report["contract_ok"] is True, report["problems"]


def test_removing_the_last_key_while_setting_a_password_leaves_a_password_only_image_that_checks_out(keyed):
    """The other side of the rule: the console password is a way in, so no key is fine with one set."""
    run = zvm(str(keyed.disk), "--remove-key", key(ALICE).fingerprint, "--password-stdin", "--json",
              stdin=b"console only 123\n")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["authorized_keys"] == []
    checked = zvm("inspect", str(keyed.disk), "--check")
    assert checked.returncode == 0, (checked.stdout, checked.stderr)  # password-only meets the contract
