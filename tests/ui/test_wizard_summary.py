"""The wizard's screen before the confirmation and the hand-over after it: short enough for a 30-row
terminal on a first seeding, each thing said once, the chosen hostname in the known_hosts line, Netbird named
but never its setup key."""

from __future__ import annotations

from provision.commands.seed.apply import SeedOutcome
from provision.ui import render
from tests.ui.test_wizard import BLANK_ANSWERS, NETBIRD_KEY, blank_state, home, wizard, with_pub  # noqa: F401

FIRST_SEEDING = dict(BLANK_ANSWERS, hostname="zvm-alice", netbird=True, netbird_setup_key=NETBIRD_KEY,
                     netbird_management_url="https://netbird.example.org")


def summary_before_the_confirmation(said: str) -> list[str]:
    return said.split("persist: not seeded yet")[1].splitlines()


def test_a_first_seeding_sums_up_the_directory_skeleton_in_one_line_and_fits_a_30_row_screen(home):
    with_pub(home, "id_ed25519.pub")
    _, _, said = wizard(blank_state(), dict(FIRST_SEEDING))
    shown = summary_before_the_confirmation(said)
    assert " dir " not in said, said  # no row per directory
    skeleton = [line for line in shown if "directory skeleton" in line]
    assert len(skeleton) == 1 and "to create" in skeleton[0], shown
    assert len(shown) <= 20, "\n".join(shown)  # the answers above it stay on a 30-row screen
    assert "/home/zvm/.ssh/authorized_keys" in said and "/etc/hostname" in said


def test_the_wizard_says_the_hand_over_summary_once_and_leaves_it_for_after_the_writes(home):
    with_pub(home, "id_ed25519.pub")
    result, _, said = wizard(blank_state(), dict(FIRST_SEEDING))
    assert "known_hosts" not in said and "machine-id:" not in said  # the hand-over comes after the writes
    after = render.render_seed(SeedOutcome(_info(), result.plan, applied=True), dry_run=False,
                               json_out=False, plan_shown=True)
    text = "\n".join(after)
    assert text.count("Authorized SSH keys for zvm") == 1 and "directory skeleton" not in text
    assert "create " not in text  # the changes were shown before the confirmation, not again


def test_the_known_hosts_line_names_the_hostname_just_chosen_and_netbird_is_in_the_summary(home):
    with_pub(home, "id_ed25519.pub")
    result, _, said = wizard(blank_state(), dict(FIRST_SEEDING))
    summary = render.render_summary(SeedOutcome(_info(), result.plan, applied=True))
    known_hosts = [line.strip() for line in summary.splitlines() if " ssh-ed25519 AAAA" in line]
    assert len(known_hosts) == 1 and known_hosts[0].startswith("zvm-alice ssh-ed25519 "), summary
    assert "replace 'zvm-alice' with the VM's address" in summary
    netbird = [line for line in summary.splitlines() if line.startswith("Netbird:")]
    assert netbird == ["Netbird: joins on first boot with the setup key given (not shown), "
                       "management server https://netbird.example.org"], summary
    for text in (said, summary):
        assert NETBIRD_KEY not in text.upper()


def test_without_netbird_the_summary_says_so(home):
    with_pub(home, "id_ed25519.pub")
    result, _, _ = wizard(blank_state(), dict(BLANK_ANSWERS))
    summary = render.render_summary(SeedOutcome(_info(), result.plan, applied=True))
    assert "Netbird: not set up (no setup key)" in summary.splitlines()
    assert any(line.strip().startswith("zvm ssh-ed25519 ") for line in summary.splitlines())  # none chosen


def test_a_dry_run_in_the_wizard_lists_every_path_of_the_skeleton(home):
    with_pub(home, "id_ed25519.pub")
    answers = {k: v for k, v in FIRST_SEEDING.items() if k != "confirm"}
    _, _, said = wizard(blank_state(), answers, dry_run=True)
    assert "directory skeleton" not in said
    assert " dir  /home/zvm/.ssh " in said and " dir  /var/lib/nixos " in said


def _info():
    from tests.ui.test_wizard import FakeSession

    return FakeSession(blank_state()).info

