"""Planning and applying against an in-memory filesystem: the logic, without the appliance."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from provision.core.apply import apply_plan, verify_plan
from provision.core.credentials.hostkeys import generate_host_key
from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.core.layout import load_layout
from provision.core.plan import FreshMaterial, build_plan
from provision.core.request import PasswordChoice, SeedRequest
from provision.core.state import read_state
from provision.errors import UnsafeEntryError, UsageError
from provision.secret import Secret
from tests.support.fakes import MemoryFS
from tests.support.keyfactory import public_line

LAYOUT = load_layout()
HASH = "$6$rounds=1000$saltsalt$" + "a" * 86
NOW = datetime(2026, 11, 29, 14, 2, 11, tzinfo=UTC)
FRESH = FreshMaterial(host_key=generate_host_key(), machine_id="0123456789abcdef0123456789abcdef", now=NOW,
                      tool_version="0.1.0")


def keys(*lines: str):
    return tuple(parse_authorized_keys("\n".join(lines) + "\n", "test"))


def seed(fs: MemoryFS, request: SeedRequest, fresh: FreshMaterial = FRESH):
    plan = build_plan(request, read_state(fs, LAYOUT), LAYOUT, fresh)
    apply_plan(plan, fs)
    verify_plan(plan, fs)
    return plan


def first_request(**overrides) -> SeedRequest:
    values = dict(password=PasswordChoice.from_hash(Secret(HASH)), keys=keys(public_line()))
    values.update(overrides)
    return SeedRequest(**values)


def test_blank_image_gets_every_contract_path_with_its_owner_and_mode():
    fs = MemoryFS()
    plan = seed(fs, first_request())
    for entry in LAYOUT.entries:
        node = fs.nodes.get(entry.path)
        if entry.role in ("netbird-setup-key", "netbird-management-url", "hostname", "update-signers",
                          "host-certificate", "trusted-user-ca-keys", "authorized-principals"):
            assert node is None, "optional Netbird, hostname, signers and certificate files are only written when asked for"
            continue
        assert node is not None, entry.path
        assert (node.kind, node.uid, node.gid, node.mode) == (entry.kind, entry.uid, entry.gid, entry.mode), entry.path
    assert fs.nodes["/passwords/zvm"].data == (HASH + "\n").encode()
    assert fs.nodes["/etc/machine-id"].data == b"0123456789abcdef0123456789abcdef\n"
    assert fs.nodes["/etc/ssh/ssh_host_ed25519_key.pub"].data.decode().startswith("ssh-ed25519 ")
    assert plan.host_public_line == FRESH.host_key.public_line


def test_directories_are_created_before_their_children():
    plan = build_plan(first_request(), read_state(MemoryFS(), LAYOUT), LAYOUT, FRESH)
    seen = set()
    for op in plan.operations:
        assert op.entry.path == "/" or op.entry.parent in seen
        seen.add(op.entry.path)


def test_second_run_with_the_same_request_changes_nothing_but_the_password():
    fs = MemoryFS()
    request = first_request()
    seed(fs, request)
    again = build_plan(request, read_state(fs, LAYOUT), LAYOUT, FRESH)
    changed = {op.entry.path for op in again.operations if op.changes}
    # a password given again is written again, and the seeding recorded; all else is kept
    assert changed == {"/passwords/zvm", "/zvm-provision/history.jsonl"}


def test_keys_are_added_and_deduplicated_by_blob_unless_replaced():
    fs = MemoryFS()
    first, second = public_line(comment="a"), public_line(comment="b")
    seed(fs, first_request(keys=keys(first)))
    # the same key with another comment is the same key
    same_blob_other_comment = first.rsplit(" ", 1)[0] + " renamed"
    seed(fs, SeedRequest(keys=keys(second, same_blob_other_comment)))
    assert fs.nodes["/home/zvm/.ssh/authorized_keys"].data.decode() == f"{first}\n{second}\n"
    seed(fs, SeedRequest(keys=keys(second), replace_keys=True))
    assert fs.nodes["/home/zvm/.ssh/authorized_keys"].data.decode() == f"{second}\n"


def test_existing_identity_is_kept_unless_asked_to_renew():
    fs = MemoryFS()
    seed(fs, first_request())
    other = FreshMaterial(host_key=generate_host_key(), machine_id="fedcba9876543210fedcba9876543210", now=NOW,
                          tool_version="0.1.0")
    kept = seed(fs, SeedRequest(), other)
    assert kept.host_public_line == FRESH.host_key.public_line
    assert kept.machine_id == FRESH.machine_id
    renewed = seed(fs, SeedRequest(new_host_keys=True, new_machine_id=True), other)
    assert renewed.host_public_line == other.host_key.public_line
    assert fs.nodes["/etc/machine-id"].data == b"fedcba9876543210fedcba9876543210\n"


def test_no_host_keys_leaves_the_host_key_to_the_vm():
    fs = MemoryFS()
    plan = seed(fs, first_request(host_keys=False))
    assert "/etc/ssh/ssh_host_ed25519_key" not in fs.nodes
    assert plan.host_public_line is None


def test_wrong_modes_and_owners_are_normalised():
    fs = MemoryFS()
    seed(fs, first_request())
    fs.nodes["/home/zvm/.ssh"].mode = 0o777
    fs.nodes["/home/zvm/.ssh/authorized_keys"].mode = 0o666
    fs.nodes["/passwords"].uid = 1000
    plan = seed(fs, SeedRequest())
    assert {op.entry.path for op in plan.operations if op.action == "fix"} == {
        "/home/zvm/.ssh", "/home/zvm/.ssh/authorized_keys", "/passwords"
    }
    assert fs.nodes["/home/zvm/.ssh"].mode == 0o700
    assert fs.nodes["/passwords"].uid == 0


def test_locked_password_writes_the_locked_marker():
    fs = MemoryFS()
    seed(fs, first_request(password=PasswordChoice.locked()))
    assert fs.nodes["/passwords/zvm"].data == b"!\n"


def test_first_seeding_without_password_or_keys_is_refused():
    with pytest.raises(UsageError, match="no password"):
        build_plan(SeedRequest(keys=keys(public_line())), read_state(MemoryFS(), LAYOUT), LAYOUT, FRESH)
    with pytest.raises(UsageError, match="no SSH key"):
        build_plan(
            SeedRequest(password=PasswordChoice.locked()), read_state(MemoryFS(), LAYOUT), LAYOUT, FRESH
        )


def test_symlinked_directory_is_replaced_and_its_target_untouched():
    fs = MemoryFS()
    seed(fs, first_request())
    host_key_before = fs.nodes["/etc/ssh/ssh_host_ed25519_key"].data
    del fs.nodes["/home/zvm/.ssh/authorized_keys"]
    del fs.nodes["/home/zvm/.ssh"]
    fs.add_symlink("/home/zvm/.ssh", "/etc/ssh")
    plan = seed(fs, SeedRequest(keys=keys(public_line())))
    assert plan.operation("/home/zvm/.ssh").remove_first
    assert fs.nodes["/home/zvm/.ssh"].kind == "dir"
    assert fs.nodes["/etc/ssh/ssh_host_ed25519_key"].data == host_key_before
    assert fs.nodes["/etc/ssh"].uid == 0


def test_symlinked_password_file_is_replaced_when_a_password_is_given_and_refused_otherwise():
    fs = MemoryFS()
    seed(fs, first_request())
    machine_id = fs.nodes["/etc/machine-id"].data
    fs.add_symlink("/passwords/zvm", "../etc/machine-id")
    with pytest.raises(UsageError, match="no password"):
        build_plan(SeedRequest(), read_state(fs, LAYOUT), LAYOUT, FRESH)
    seed(fs, SeedRequest(password=PasswordChoice.locked()))
    assert fs.nodes["/passwords/zvm"].kind == "file"
    assert fs.nodes["/etc/machine-id"].data == machine_id


def test_a_link_where_an_optional_file_belongs_is_refused_when_not_reseeded():
    fs = MemoryFS()
    seed(fs, first_request())
    fs.add_symlink("/var/lib/netbird/setup-key", "/passwords/zvm")
    with pytest.raises(UnsafeEntryError, match="symlink"):
        build_plan(SeedRequest(), read_state(fs, LAYOUT), LAYOUT, FRESH)


def test_a_directory_where_a_file_belongs_is_refused_and_left_alone():
    fs = MemoryFS()
    seed(fs, first_request())
    del fs.nodes["/etc/machine-id"]
    fs.add_dir("/etc/machine-id")
    with pytest.raises(UnsafeEntryError, match="directory"):
        build_plan(SeedRequest(), read_state(fs, LAYOUT), LAYOUT, FRESH)


def test_hard_linked_file_is_rewritten_as_a_fresh_file():
    fs = MemoryFS()
    seed(fs, first_request())
    fs.nodes["/passwords/zvm"].nlink = 2
    plan = seed(fs, first_request())
    assert plan.operation("/passwords/zvm").action == "replace"
    assert fs.nodes["/passwords/zvm"].nlink == 1


def test_netbird_files_are_written_when_given():
    fs = MemoryFS()
    key = Secret("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0")
    seed(fs, first_request(netbird_setup_key=key, netbird_management_url="https://netbird.example.org"))
    assert fs.nodes["/var/lib/netbird/setup-key"].data == b"0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0\n"
    assert fs.nodes["/var/lib/netbird/setup-key"].mode == 0o600
    assert fs.nodes["/var/lib/netbird/management-url"].data == b"https://netbird.example.org\n"


def test_plan_never_shows_secrets_in_its_summaries_or_repr():
    key = Secret("0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0")
    plan = build_plan(
        first_request(netbird_setup_key=key), read_state(MemoryFS(), LAYOUT), LAYOUT, FRESH
    )
    shown = repr(plan) + " ".join(op.summary for op in plan.operations)
    assert HASH not in shown
    assert key.reveal() not in shown
    assert "PRIVATE KEY" not in shown


def test_adding_a_key_keeps_the_image_s_comment_lines_and_order():
    fs = MemoryFS()
    first, second = public_line(comment="a"), public_line(comment="b")
    seed(fs, first_request(keys=keys(first)))
    fs.nodes["/home/zvm/.ssh/authorized_keys"].data = f"# the team's keys\n{first}\n\n# added by hand\n".encode()
    seed(fs, SeedRequest(keys=keys(second)))
    assert fs.nodes["/home/zvm/.ssh/authorized_keys"].data.decode() == (
        f"# the team's keys\n{first}\n\n# added by hand\n{second}\n"
    )


def test_keys_after_is_the_one_count_of_the_keys_a_plan_leaves():
    """core.plan.keys_after: what build_plan writes and what the wizard counts before it plans."""
    from provision.core.keyremoval import parse_selector
    from provision.core.plan import keys_after

    old, gone, new = public_line(comment="old@a"), public_line(comment="gone@b"), public_line(comment="new@c")
    held = keys(old, gone)
    after, removed = keys_after(held, keys(new, old), [parse_selector("gone@b")], replace=False)
    assert [key.comment for key in after] == ["old@a", "new@c"]  # de-duplicated, held keys first
    assert [key.comment for key in removed] == ["gone@b"]
    after, removed = keys_after(held, keys(new), [], replace=True)
    assert ([key.comment for key in after], removed) == (["new@c"], ())
    with pytest.raises(UsageError, match="--replace-keys already takes out every key the image holds"):
        keys_after(held, keys(new), [parse_selector("gone@b")], replace=True)
    fs = MemoryFS()
    seed(fs, first_request(keys=held))
    request = first_request(keys=keys(new, old), remove_keys=(parse_selector("gone@b"),))
    plan = seed(fs, request)  # what a plan writes is what keys_after counts
    assert [key.comment for key in plan.authorized_keys] == ["old@a", "new@c"]
    assert [key.comment for key in read_state(fs, LAYOUT).authorized_keys] == ["old@a", "new@c"]


# --- release signers (--update-signer) -------------------------------------------------------------------


def test_update_signers_are_written_as_git_allowed_signers_and_kept_when_not_given():
    from provision.core.credentials.signers import parse_allowed_signers
    from provision.core.credentials.sshkeys import parse_authorized_keys
    from tests.support.keyfactory import public_line

    fs = MemoryFS()
    lines = public_line(comment="release@example.org") + "\n" + public_line(comment="two words") + "\n"
    signers = tuple(parse_authorized_keys(lines, "test"))
    seed(fs, first_request(update_signers=signers))
    node = fs.nodes["/etc/zvm/update-signers"]
    entry = LAYOUT.role("update-signers")
    assert (node.uid, node.gid, node.mode) == (entry.uid, entry.gid, entry.mode) == (0, 0, 0o644)
    text = node.data.decode()
    assert [line.split()[:2] for line in text.splitlines()] == [
        ["release@example.org", 'namespaces="git"'], ["release-signer", 'namespaces="git"']]
    parsed, problems = parse_allowed_signers(text)
    assert [s.key.blob for s in parsed] == [k.blob for k in signers] and problems == ()
    # A run without --update-signer keeps the list; one with another list replaces it.
    again = build_plan(first_request(), read_state(fs, LAYOUT), LAYOUT, FRESH)
    assert not again.operation("/etc/zvm/update-signers").changes
    seed(fs, first_request(update_signers=signers[:1]))
    assert len(fs.nodes["/etc/zvm/update-signers"].data.decode().splitlines()) == 1
