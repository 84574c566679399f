"""The fleet after a roll-out, through the real commands and appliance: `inspect IMAGE...` (audit, --check,
--find-key) and `keys` (revoke, add, rotate into --out-dir, --dry-run) on images made by `batch`.

Launches (15-60 s each under TCG), shared by the tests below: batch makes four images in ONE launch (alice,
bob and carol also carry the shared it@desk key; dave only his own); one launch locks dave's password, so
that his key is his only way in; then audit, find-key, a dry run, a revoke, a rotation into --out-dir and an
add, each one run of the command over all of them; a fresh read-only appliance reads every image back. An
image in use (a paused qemu holds its lock) and a corrupt file ride along in the audit and the revoke; an image
whose header passes the probe but which qemu refuses (in a folder named "locks") rides along in the audit.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import pytest

from provision.core.credentials.passwords import LOCKED_PASSWORD_LINE
from provision.core.credentials.sshkeys import public_key_fingerprint
from provision.core.layout import load_layout
from provision.core.record import parse_record
from provision.core.state import read_state
from provision.guest.appliance import Appliance
from provision.guest.diskformat import probe_image
from tests.conftest import TEST_ACCEL, qemu_holding_lock
from tests.support.command import zvm
from tests.support.files import copy_disk, sha256
from tests.support.keyfactory import public_line
from tests.support.persist import write_file

pytestmark = pytest.mark.appliance

LAYOUT = load_layout()
NAMES = ("alice", "bob", "carol", "dave")
SHARED = ("alice", "bob", "carol")  # hold it@desk besides their own key


def unaligned_refcount_table(qcow2: bytes) -> bytes:
    """A qcow2 whose header passes the probe but whose refcount table offset qemu refuses (not cluster aligned)."""
    return qcow2[:48] + struct.pack(">Q", 65536 + 512) + qcow2[56:]


def read_back(paths: list[Path]) -> dict[Path, tuple]:
    """Keys, password line and record entries of each image, through ONE fresh read-only appliance."""
    found = {}
    with Appliance([probe_image(p) for p in paths], readonly=True, accel=TEST_ACCEL) as appliance:
        appliance.launch()
        for index, path in enumerate(paths):
            with appliance.mount_persist(index) as fs:
                state = read_state(fs, LAYOUT)
                record = parse_record(fs.read_file(LAYOUT.role("seed-record").path))
            found[path] = ({k.fingerprint for k in state.authorized_keys}, record.entries)
    return found


@pytest.fixture(scope="module")
def fleet(sample_disk_template: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("fleet")
    lines = {name: public_line(comment=f"{name}@laptop") for name in NAMES}
    lines["it"] = public_line(comment="it@desk")
    lines["alice-new"] = public_line(comment="alice@new-laptop")
    lines["emergency"] = public_line(comment="emergency@it")
    for name, line in lines.items():
        (folder / f"{name}.pub").write_text(line + "\n")
    rows = "".join(f"{n},{n}.pub{';it.pub' if n in SHARED else ''},,,,\n" for n in NAMES)
    manifest = folder / "staff.csv"
    manifest.write_text("name,ssh_keys,password_hash,netbird_setup_key,netbird_management_url,hostname\n" + rows)
    out = folder / "images"
    made = zvm("batch", manifest, "--base", sample_disk_template, "--out-dir", out, "--jobs", "1",
               "--operator", "it@rollout")
    assert made.returncode == 0, made.stderr
    images = {name: out / f"{name}.qcow2" for name in NAMES}
    with Appliance([probe_image(images["dave"])], readonly=False, accel=TEST_ACCEL) as appliance:
        appliance.launch()  # dave: key-only, so his key is his only way in
        with appliance.mount_persist(0, writable=True) as fs:
            write_file(fs, LAYOUT.role("password-hash").path, (LOCKED_PASSWORD_LINE + "\n").encode(), 0, 0, 0o600)
        appliance.close()
    aside = folder / "aside"
    aside.mkdir()
    in_use = copy_disk(images["alice"], aside / "running.qcow2")
    corrupt = aside / "corrupt.qcow2"
    corrupt.write_bytes(b"QFI\xfb" + b"\x00\x00\x00\x03" + os.urandom(4096))
    refused = aside / "locks" / "blocked.qcow2"  # "lock" in its path, once enough to be called in use
    refused.parent.mkdir()
    refused.write_bytes(unaligned_refcount_table(images["bob"].read_bytes()))
    fp = {name: public_key_fingerprint(line) for name, line in lines.items()}
    runs = {}
    with qemu_holding_lock(in_use):
        before = {p: sha256(p) for p in (*images.values(), in_use)}
        runs["audit"] = zvm("inspect", out, corrupt, in_use, refused, "--check")
        runs["find"] = zvm("inspect", out, "--find-key", "it@desk", "--find-key", fp["dave"], "--json")
        runs["dry"] = zvm("keys", out, "--remove-key", "bob@laptop", "--dry-run")
        runs["dry_hashes"] = {p: sha256(p) for p in images.values()}
        report = folder / "revoke.json"
        runs["revoke"] = zvm("keys", out, in_use, corrupt, "--remove-key", "it@desk", "--remove-key", "dave@laptop",
                             "--operator", "it@desk ticket 17", "--report", report)
        runs["revoke_report"] = json.loads(report.read_text())
        runs["after_revoke"] = {p: sha256(p) for p in (*images.values(), in_use)}
    new = folder / "new"
    runs["rotate"] = zvm("keys", out, "--remove-key", "alice@laptop", "--add-key", folder / "alice-new.pub",
                         "--out-dir", new, "--json")
    runs["after_rotate"] = {p: sha256(p) for p in images.values()}
    # --out-dir with an image the lock-out rule refuses: its copy is never made, and nothing names one
    runs["refused_out"] = zvm("keys", images["dave"], images["bob"], "--remove-key", "dave@laptop",
                              "--out-dir", folder / "refused-out", "--json")
    runs["add"] = zvm("keys", out / "report.json", "--add-key", folder / "emergency.pub")
    back = read_back([*images.values(), *(new / f"{n}.qcow2" for n in NAMES)])
    return {"images": images, "new": new, "fp": fp, "runs": runs, "before": before, "back": back,
            "in_use": in_use, "corrupt": corrupt, "refused": refused}


def test_audit_is_one_row_per_image_and_names_the_ones_it_cannot_open(fleet):
    audit = fleet["runs"]["audit"]
    assert audit.returncode == 1, audit.stderr  # three images could not be opened
    out = audit.stdout
    assert "4 of 7 images meet the contract" in out
    assert f"FAILED {fleet['in_use']}" in out and "in use" in out
    assert f"FAILED {fleet['corrupt']}" in out
    refused = next(line for line in out.splitlines() if line.startswith(f"FAILED {fleet['refused']}"))
    assert "in use" not in refused and refused.endswith("Reference count table offset invalid")
    assert "batch: " not in audit.stderr and "inspect: " in audit.stderr
    assert "1 appliance launch" in audit.stderr  # four disks, one launch


def test_find_key_lists_each_image_holding_a_key_and_which_one(fleet):
    find = fleet["runs"]["find"]
    assert find.returncode == 0, find.stderr
    found = {Path(r["image"]["path"]).stem: r["matched_keys"] for r in json.loads(find.stdout)}
    fp = fleet["fp"]
    assert found == {"alice": [fp["it"]], "bob": [fp["it"]], "carol": [fp["it"]], "dave": [fp["dave"]]}


def test_a_dry_run_says_what_would_change_and_writes_nothing(fleet):
    dry = fleet["runs"]["dry"]
    assert dry.returncode == 0, dry.stderr
    assert "would change" in dry.stdout and "bob.qcow2" in dry.stdout
    assert "/home/zvm/.ssh/authorized_keys" in dry.stdout
    assert fleet["runs"]["dry_hashes"] == {p: fleet["before"][p] for p in fleet["images"].values()}


def test_revoke_takes_the_key_out_everywhere_refuses_the_last_way_in_and_goes_on(fleet):
    revoke, report, images, fp = fleet["runs"]["revoke"], fleet["runs"]["revoke_report"], fleet["images"], fleet["fp"]
    assert revoke.returncode == 1, revoke.stderr  # dave refused, two failed
    status = {Path(r["image"]).stem: (r["status"], r["reason"]) for r in report["images"]}
    assert {n: status[n][0] for n in SHARED} == {n: "changed" for n in SHARED}
    assert status["dave"][0] == "refused" and "no way in" in status["dave"][1]
    assert status["running"][0] == "failed" and "in use" in status["running"][1]
    assert status["corrupt"][0] == "failed"
    after = fleet["runs"]["after_revoke"]
    assert after[images["dave"]] == fleet["before"][images["dave"]]  # refused: byte-identical
    assert after[fleet["in_use"]] == fleet["before"][fleet["in_use"]]
    keys, entries = fleet["back"][images["bob"]]
    assert fp["it"] not in keys and fp["bob"] in keys
    revoke_entry = next(e for e in entries if e.get("operator") == "it@desk ticket 17")
    assert revoke_entry["change"] == f"keys: removed {fp['it']}"
    text = json.dumps(report)
    assert "$6$" not in text and "PRIVATE" not in text


def test_rotate_into_new_files_puts_the_new_key_only_where_the_old_one_was(fleet):
    rotate, new, fp = fleet["runs"]["rotate"], fleet["new"], fleet["fp"]
    assert rotate.returncode == 0, rotate.stderr
    result = {Path(r["image"]).stem: r["status"] for r in json.loads(rotate.stdout)["images"]}
    assert result == {"alice": "changed", "bob": "unchanged", "carol": "unchanged", "dave": "unchanged"}
    assert json.loads((new / "keys-report.json").read_text())["counts"]["changed"] == 1
    keys, _ = fleet["back"][new / "alice.qcow2"]
    assert fp["alice-new"] in keys and fp["alice"] not in keys
    keys, _ = fleet["back"][new / "bob.qcow2"]
    assert fp["alice-new"] not in keys
    assert not list(new.glob(".*.partial"))


def test_add_reaches_every_image_of_a_batch_report(fleet):
    add, fp = fleet["runs"]["add"], fleet["fp"]
    assert add.returncode == 0, add.stderr
    for name, path in fleet["images"].items():
        keys, entries = fleet["back"][path]
        assert fp["emergency"] in keys, name
        assert entries[-1]["change"] == f"keys: added {fp['emergency']}"
    alice_keys, _ = fleet["back"][fleet["images"]["alice"]]
    assert fp["alice"] in alice_keys  # the rotation went into --out-dir: the original kept alice's old key


def test_keys_out_dir_names_no_output_for_an_image_it_refused(fleet):
    """README: with --out-dir, DIR holds every image that could be written; a refused one is not there, and
    neither the text, --json nor keys-report.json names a DIR/<name>.qcow2 for it."""
    run, images = fleet["runs"]["refused_out"], fleet["images"]
    assert run.returncode == 1, run.stderr  # dave refused, bob unchanged (he never held dave's key)
    printed = {Path(r["image"]).stem: r for r in json.loads(run.stdout)["images"]}
    assert printed["dave"]["status"] == "refused" and printed["dave"]["output"] is None
    assert printed["bob"]["status"] == "unchanged" and Path(printed["bob"]["output"]).is_file()
    out_dir = Path(printed["bob"]["output"]).parent
    assert not (out_dir / "dave.qcow2").exists()
    report = json.loads((out_dir / "keys-report.json").read_text())
    assert {Path(r["image"]).stem: r["output"] for r in report["images"]}["dave"] is None
