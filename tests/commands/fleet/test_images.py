"""Which images a fleet command works on (files, folders, a batch report.json), and inspect's exit codes over
several images, with the audit itself replaced (its appliance runs are in test_keys.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provision.cli import app
from provision.commands.batch.lock import OutputLock
from provision.commands.fleet import audit
from provision.commands.fleet.images import gather_images
from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.errors import UsageError
from tests.support.command import zvm
from tests.support.keyfactory import public_line

IT_DESK = parse_authorized_keys(public_line(comment="it@desk"), "it.pub")[0]  # what --find-key it@desk finds


def touch(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def test_a_folder_gives_its_images_in_order_without_hidden_copies_and_each_once(tmp_path: Path):
    b, a = touch(tmp_path / "b.qcow2"), touch(tmp_path / "a.raw")
    touch(tmp_path / ".c.qcow2.partial")
    touch(tmp_path / ".d.qcow2")
    touch(tmp_path / "notes.txt")
    (tmp_path / "sub.qcow2").mkdir()
    assert gather_images([tmp_path, b]) == [a, b]


def test_a_batch_report_gives_the_images_it_made(tmp_path: Path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"users": [
        {"name": "a", "image": str(tmp_path / "a.qcow2"), "status": "seeded"},
        {"name": "b", "image": "b.qcow2", "status": "skipped"},
        {"name": "c", "image": "c.qcow2", "status": "failed"},
    ]}))
    assert gather_images([report]) == [tmp_path / "a.qcow2", tmp_path / "b.qcow2"]


@pytest.mark.parametrize("text", ["[]", "{}", '{"users": [{"image": 3, "status": "seeded"}]}', "not json"])
def test_a_json_file_that_is_no_batch_report_is_refused(tmp_path: Path, text: str):
    report = tmp_path / "report.json"
    report.write_text(text)
    with pytest.raises(UsageError, match="not a batch report"):
        gather_images([report])


def test_an_empty_folder_is_refused(tmp_path: Path):
    with pytest.raises(UsageError, match="holds no disk image"):
        gather_images([tmp_path])


def rows(tmp_path: Path, *matched: bool):
    """Audit rows of images that were opened (a report stands in), holding the key or not."""
    return [audit.AuditRow(tmp_path / f"{i}.qcow2", report=object(), matched=(IT_DESK,) if m else ())
            for i, m in enumerate(matched)]


def test_find_key_exits_0_when_an_image_holds_it_and_1_when_none_does(tmp_path: Path, monkeypatch):
    images = [touch(tmp_path / "0.qcow2"), touch(tmp_path / "1.qcow2")]
    monkeypatch.setattr("provision.ui.render_fleet.audit_found", lambda found: "found")
    for matched, code in (((False, True), 0), ((False, False), 1)):
        monkeypatch.setattr(audit, "audit_images", lambda paths, **kw: rows(tmp_path, *matched))
        result = CliRunner().invoke(app, ["inspect", *map(str, images), "--find-key", "it@desk"])
        assert result.exit_code == code, result.output


def test_find_key_exits_1_when_an_image_could_not_be_read_even_if_another_holds_the_key(tmp_path: Path,
                                                                                       monkeypatch):
    """A revocation audit must not read as complete while an image it could not open may hold the key."""
    images = [touch(tmp_path / "0.qcow2"), touch(tmp_path / "1.qcow2")]
    found = rows(tmp_path, True, False)
    found[1].report, found[1].error = None, "in use"  # the second could not be opened
    monkeypatch.setattr(audit, "audit_images", lambda paths, **kw: found)
    monkeypatch.setattr("provision.ui.render_fleet.audit_found", lambda rows: "found")
    result = CliRunner().invoke(app, ["inspect", *map(str, images), "--find-key", "it@desk"])
    assert result.exit_code == 1, result.output


def test_keys_waits_for_no_batch_run_writing_its_images(tmp_path: Path):
    """A batch (or keys) run holding an image's lock byte: keys is refused before anything is opened (exit 4)."""
    image = touch(tmp_path / "alice.qcow2")
    with OutputLock(tmp_path, ["alice.qcow2"]):  # this process; the command below is another one
        result = zvm("keys", tmp_path, "--remove-key", "bob@laptop")
    assert result.returncode == 4, result.stderr
    assert "alice.qcow2" in result.stderr and image.read_bytes() == b""


def test_keys_on_a_link_to_an_image_locks_the_image_where_it_is(tmp_path: Path):
    """keys on a symbolic link to DIR/alice.qcow2 took the lock in the link's folder, under the link's name: a
    batch run writing DIR/alice.qcow2 did not exclude it. The real file's lock byte is the one taken."""
    real = tmp_path / "out"
    real.mkdir()
    image = touch(real / "alice.qcow2")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "laptop.qcow2").symlink_to(image)
    with OutputLock(real, ["alice.qcow2"]):  # as the batch run writing it holds it
        result = zvm("keys", elsewhere / "laptop.qcow2", "--remove-key", "bob@laptop")
    assert result.returncode == 4, result.stderr
    assert f"is writing to {real}: alice.qcow2" in result.stderr and image.read_bytes() == b""


def test_keys_refused_by_the_folder_s_lock_does_not_claim_the_holder_is_a_batch(tmp_path: Path):
    """The lock does not say which command holds it: batch, keys and batch-report all take it, so the refusal
    names them all (it said "another zvm-provision batch", also when another keys run was the holder)."""
    touch(tmp_path / "alice.qcow2")
    with OutputLock(tmp_path, ["alice.qcow2"]):  # whoever holds it: this process, as another keys would
        result = zvm("keys", tmp_path, "--remove-key", "bob@laptop")
    assert result.returncode == 4, result.stderr
    assert (f"another zvm-provision run (batch, keys or batch-report) is writing to {tmp_path}: alice.qcow2"
            in result.stderr)
    assert "zvm-provision batch is" not in result.stderr

def test_inspect_check_with_find_key_is_a_usage_error_before_anything_is_opened(tmp_path: Path):
    """--check was silently ignored beside --find-key: a script asking for both read "exit 0" as "on contract".
    The two answer different questions with the same exit 1 (drift; no image holds the key), so together they
    are refused (exit 2), whatever the images are: nothing is read."""
    image = touch(tmp_path / "alice.qcow2")
    for args in ([image], [tmp_path, image]):
        result = zvm("inspect", *args, "--check", "--find-key", "bob@laptop")
        assert result.returncode == 2, result.stderr
        assert ("zvm-provision: error: --check and --find-key each have their own exit 1 (off the contract; no "
                "image holds the key): run them one at a time") in result.stderr
        assert result.stdout == "" and image.read_bytes() == b""

def test_keys_out_dir_never_overwrites_a_file(tmp_path: Path):
    touch(tmp_path / "alice.qcow2")
    out = tmp_path / "out"
    out.mkdir()
    (out / "alice.qcow2").write_bytes(b"kept")
    result = zvm("keys", tmp_path / "alice.qcow2", "--remove-key", "bob@laptop", "--out-dir", out)
    assert result.returncode == 2 and "never overwrites" in result.stderr
    assert (out / "alice.qcow2").read_bytes() == b"kept"


def test_keys_needs_something_to_change(tmp_path: Path):
    result = zvm("keys", touch(tmp_path / "alice.qcow2"))
    assert result.returncode == 2 and "nothing to change" in result.stderr


def test_a_bad_find_key_is_named_as_such(tmp_path: Path):
    result = CliRunner().invoke(app, ["inspect", str(touch(tmp_path / "a.qcow2")), "--find-key", "SHA256:short"])
    assert isinstance(result.exception, UsageError)  # main() makes it exit 2 and "--find-key SHA256:short" in result.exception.message


@pytest.mark.parametrize("command", [["inspect"], ["keys", "--remove-key", "bob@laptop"]])
@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_images_that_cannot_be_opened_are_failed_rows_with_their_reason(tmp_path: Path, command, debug):
    """No appliance: every image fails its header check, each a row with the reason (not an internal error),
    the others still listed; exit 1. The merge of --debug into batch's describe_failure once made every
    failed image an internal error (TypeError) here."""
    empty = touch(tmp_path / "empty.qcow2")
    corrupt = tmp_path / "corrupt.qcow2"
    corrupt.write_bytes(b"QFI\xfb" + b"\x00\x00\x00\x03" + bytes(4096))
    result = zvm(command[0], empty, corrupt, *command[1:], *debug)
    assert result.returncode == 1, result.stderr
    assert "internal error" not in result.stdout + result.stderr and "Traceback" not in result.stderr
    for path in (empty, corrupt):
        assert str(path) in result.stdout, result.stdout
    assert empty.read_bytes() == b""


def test_keys_dry_run_leaves_other_runs_hidden_copies_alone(tmp_path: Path):
    """`.NAME.partial` is batch's copy in progress too: a dry run (which takes no lock) never removes it."""
    touch(tmp_path / "alice.qcow2")  # fails its header check: no appliance
    partial = tmp_path / ".alice.qcow2.partial"
    partial.write_bytes(b"a batch run's copy")
    result = zvm("keys", tmp_path / "alice.qcow2", "--remove-key", "bob@laptop", "--dry-run")
    assert result.returncode == 1, result.stderr
    assert partial.read_bytes() == b"a batch run's copy"


def test_a_missing_or_oversized_batch_report_is_a_usage_error(tmp_path: Path):
    result = zvm("keys", tmp_path / "report.json", "--remove-key", "bob@laptop")
    assert result.returncode == 2 and "no such file" in result.stderr, result.stderr
    big = tmp_path / "big" / "report.json"
    big.parent.mkdir()
    big.write_bytes(b" " * ((64 << 20) + 1))
    result = zvm("inspect", big)
    assert result.returncode == 2 and "larger than" in result.stderr, result.stderr


def test_the_keys_report_is_written_even_when_the_run_fails_unexpectedly(tmp_path: Path, monkeypatch):
    """The report is the record of which images changed: an unexpected error still leaves it."""
    from provision.commands.fleet import keys
    from provision.core.fleetkeys import KeyChange
    from provision.core.keyremoval import parse_selector
    from provision.ui.progress import default_progress

    image = touch(tmp_path / "alice.qcow2")

    def explode(paths, work, **kw):
        raise RuntimeError("a bug in a worker")

    monkeypatch.setattr(keys, "run_in_chunks", explode)
    options = keys.KeysOptions(images=(image,), change=KeyChange(remove=(parse_selector("bob@laptop"),)),
                               operator="it@desk")
    report = tmp_path / "keys-report.json"
    with pytest.raises(RuntimeError):
        keys.run_keys(options, default_progress(json_out=True, name="keys"), report)
    written = json.loads(report.read_text())
    assert [row["status"] for row in written["images"]] == ["interrupted"], written
