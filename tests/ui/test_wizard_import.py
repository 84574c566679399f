"""The wizard's "import from a GitHub/GitLab user": the handle asked, the keys fetched from a real HTTPS server on
127.0.0.1 (tests/support/httpsserver.py, trusted through SSL_CERT_FILE) and shown with their fingerprints,
then ticked one by one. Answers are scripted by question name; no appliance, no terminal."""

from __future__ import annotations

from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.core.request import SeedFlags
from provision.ui.wizard import run_wizard
from tests.support.httpsserver import (  # noqa: F401 (authority, servers, forge: fixtures)
    authority,
    bare,
    forge,
    lines,
    serve,
    servers,
)
from tests.support.keyfactory import private_pem, public_line
from tests.support.prompter import ScriptedPrompter, Turns
from tests.ui.test_wizard import BLANK_ANSWERS, FakeSession, blank_state, home  # noqa: F401 (home: a fixture)


def run(answers: dict) -> tuple:
    prompter = ScriptedPrompter(answers)
    said: list[str] = []
    result = run_wizard(FakeSession(blank_state()), SeedFlags(), dry_run=False, prompter=prompter,
                        say=said.append)
    assert prompter.unused() == [], "scripted answers never asked"
    return result, prompter, "\n".join(said)


def test_keys_of_a_forge_user_are_fetched_shown_and_ticked(home, forge):
    served = [bare(public_line()), bare(public_line("ecdsa")), public_line("rsa", comment="alice@old")]
    serve(forge, "/alice.keys", lines(*served))
    keys = parse_authorized_keys("\n".join(served), "served")
    answers = dict(
        BLANK_ANSWERS, ssh_keys=["import"],
        # not a source; a user the forge does not know (said, asked again); then alice
        ssh_key_import=Turns(["alice", "gh:nobody", "gh:alice"]),
        ssh_key_import_pick=[keys[0].fingerprint, keys[2].fingerprint],  # the ecdsa key left out
    )
    result, prompter, said = run(answers)

    assert prompter.refused["ssh_key_import"] == [
        "write gh:USER (GitHub), gl:USER (GitLab) or an https:// URL; empty to skip"]
    assert f"GitHub has no user nobody ({forge.url}/nobody.keys answered HTTP 404)" in said
    assert f"Fetched 3 keys from gh:alice ({forge.url}/alice.keys)." in said
    # Every key served is offered with its fingerprint, ticked at first.
    options = prompter.seen["ssh_key_import_pick"]["options"]
    assert [(o.value, o.title, o.checked) for o in options] == [(k.fingerprint, k.describe(), True) for k in keys]
    assert prompter.seen["ssh_key_import_pick"]["message"] == "Keys of GitHub user alice to let in:"
    # Only the ticked ones are let in, and the plan shown before the confirmation names their source.
    assert [k.line for k in result.request.keys] == [served[0], served[2]]
    assert f"SSH keys fetched from gh:alice ({forge.url}/alice.keys)" in said
    assert f"  {keys[0].describe()}, from gh:alice" in said and f"  {keys[2].describe()}, from gh:alice" in said
    assert keys[1].fingerprint not in said.split("Fetched 3 keys")[1]
    assert [k.fingerprint for f in result.plan.fetched for k in f.keys] == [keys[0].fingerprint, keys[2].fingerprint]
    assert forge.paths() == ["/nobody.keys", "/alice.keys"]


def test_a_private_key_served_is_refused_and_an_empty_answer_gives_up(home, forge):
    serve(forge, "/gitlab/eve.keys", private_pem().encode())
    answers = dict(
        BLANK_ANSWERS,
        ssh_keys=Turns([["import"], ["paste"]]),  # nothing imported: the image has no key, so asked again
        ssh_key_import=Turns(["gl:eve", ""]),
        ssh_key_paste=public_line(comment="pasted"),
    )
    result, prompter, said = run(answers)
    assert "GitLab user eve: " in said and "serves a private key" in said
    assert "PRIVATE KEY" not in said
    assert "ssh_key_import_pick" not in prompter.asked
    assert [k.comment for k in result.request.keys] == ["pasted"]
    assert result.plan.fetched == ()
    assert forge.paths() == ["/gitlab/eve.keys"]


def test_import_is_offered_beside_the_other_ways(home):
    answers = dict(BLANK_ANSWERS, ssh_keys=["paste"], ssh_key_paste=public_line())
    _, prompter, _ = run(answers)
    titles = {o.value: o.title for o in prompter.seen["ssh_keys"]["options"]}
    assert titles["import"] == "Import from a GitHub or GitLab user (or an https:// URL serving keys)"


def test_a_source_serving_options_is_refused_naming_the_line_and_nothing_is_imported(home, forge):
    """The wizard's import goes through the same check as --ssh-key and the manifest: a forced command served
    by a forge is refused (said, asked again), its line never shown."""
    serve(forge, "/alice.keys", lines(bare(public_line()), 'command="/bin/sh -c id" ' + public_line()))
    answers = dict(
        BLANK_ANSWERS,
        ssh_keys=Turns([["import"], ["paste"]]),
        ssh_key_import=Turns(["gh:alice", ""]),
        ssh_key_paste=public_line(comment="pasted"),
    )
    result, prompter, said = run(answers)
    assert f"gh:alice ({forge.url}/alice.keys):2: the key is served with authorized_keys options" in said
    assert "/bin/sh" not in said and "ssh_key_import_pick" not in prompter.asked
    assert [k.comment for k in result.request.keys] == ["pasted"] and result.plan.fetched == ()
