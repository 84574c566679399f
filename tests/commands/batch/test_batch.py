"""`zvm-provision batch` through the real appliance.

Launches (about 15-30 s each under TCG): the first run seeds four users in ONE appliance, as overlays of the
base (as the second run asks: resume makes a standalone image again when overlays are asked for), with one
image made to fail and one given, after seeding, a symlink past inspect's display limit; the second run is the
real command and resumes (one read-only check launch for the three existing images, one launch for the
failed one and the one with the symlink, made as overlays); then a FRESH read-only handle checks all four.
"""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from provision.commands import batch
from provision.commands.batch import run
from provision.commands.batch import worker as batch_worker
from provision.commands.workcopy import WorkCopy, copy_base
from provision.core.disk import ImageInfo
from provision.core.credentials.passwords import hash_password
from provision.core.layout import load_layout
from provision.errors import ProvisionError
from provision.guest.diskformat import probe_image
from provision.ui import progress as ui_progress
from tests.support import libxcrypt as crypt  # Python's crypt module is gone in 3.13
from tests.support.crowd import crowd_tarball
from tests.support.keyfactory import public_line
from tests.support.persist import ASKED_FOR_ROLES

SETUP_KEY = "0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0"
BOB_PASSWORD = "bob's own password, 31 chars!!"
CAROL_PASSWORD = "carol brings her own, in run 2"
NAMES = ("alice", "bob", "carol", "dave")
LAYOUT = load_layout()


def write_manifest(path: Path, bob_hash: str, carol_hash: str = "") -> Path:
    path.write_text(
        "name,ssh_keys,password_hash,netbird_setup_key,netbird_management_url,hostname\n"
        "alice,alice.pub,,,,\n"
        f"bob,bob.pub,{bob_hash},{SETUP_KEY},https://netbird.example.com,bobs-vm\n"
        f"carol,carol.pub,{carol_hash},,,\n"
        "dave,dave.pub,,,,\n"
    )
    path.chmod(0o600)
    return path


def password_rows(out: Path) -> dict[str, str]:
    return dict(line.split(",", 1) for line in (out / "initial-passwords.csv").read_text().splitlines()[1:])


@pytest.fixture(scope="module")
def roll_out(sample_disk_template: Path, tmp_path_factory: pytest.TempPathFactory):
    """Run 1 with --overlay (carol made to fail; dave given a crowd of extra entries and a symlink after
    seeding), then run 2: the real command, resuming with --overlay, where carol now gives her own password
    hash. Both runs ask for overlays: an image made standalone would be made again (test_truthful_reruns)."""
    folder = tmp_path_factory.mktemp("rollout")
    lines = {}
    for name in NAMES:
        lines[name] = public_line(comment=f"{name}@laptop")
        (folder / f"{name}.pub").write_text(lines[name] + "\n")
    bob_hash = hash_password(BOB_PASSWORD, rounds=5000).reveal()
    carol_hash = hash_password(CAROL_PASSWORD, rounds=5000).reveal()
    manifest = write_manifest(folder / "staff.csv", bob_hash)
    out = folder / "out"
    options = batch.BatchOptions(manifest=manifest, base=sample_disk_template, out_dir=out, accel="tcg",
                                 operator="it@desk", overlay=True)
    crowd = crowd_tarball(folder / "crowd.tar")

    real_seed_one = batch_worker.ChunkWorker.seed_one

    def failing_for_carol_crowding_dave(self, appliance, index, info, user):
        if user.name == "carol":
            raise ProvisionError("injected failure")
        real_seed_one(self, appliance, index, info, user)
        if user.name == "dave":  # a complete image, then an unsafe entry past inspect's display limit
            with appliance.mount_persist(index):
                appliance.handle.tar_in(str(crowd), "/etc")

    log1 = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(batch_worker.ChunkWorker, "seed_one", failing_for_carol_crowding_dave)
        first = batch.run_batch(options, ui_progress.Progress(log1))
    after_first = {p.name: p.stat().st_mtime_ns for p in out.glob("*.qcow2")}
    passwords_after_first = password_rows(out)

    write_manifest(manifest, bob_hash, carol_hash)
    second = subprocess.run(
        [sys.executable, "-m", "provision", "batch", str(manifest), "--base", str(sample_disk_template),
         "--out-dir", str(out), "--overlay", "--json", "--accel", "tcg"],
        capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    return {
        "folder": folder, "out": out, "lines": lines, "bob_hash": bob_hash, "carol_hash": carol_hash,
        "first": first, "second": second, "log1": log1.getvalue(), "after_first": after_first,
        "passwords_after_first": passwords_after_first, "base": sample_disk_template,
    }


@pytest.fixture(scope="module")
def images(roll_out):
    """Read every image back through ONE fresh read-only appliance (not the handle that wrote them)."""
    from provision.core.state import read_state
    from provision.guest.appliance import Appliance

    out = roll_out["out"]
    found = {}
    with Appliance([probe_image(out / f"{n}.qcow2") for n in NAMES], readonly=True, accel="tcg") as appliance:
        appliance.launch()
        for index, name in enumerate(NAMES):
            with appliance.mount_persist(index) as fs:
                state = read_state(fs, LAYOUT)
                files = {}
                for entry in LAYOUT.files:
                    stat_ = fs.lstat(entry.path)
                    files[entry.path] = fs.read_file(entry.path) if stat_ is not None else None
                found[name] = {"state": state, "files": files, "crowd": fs.lstat("/etc/zzz"),
                               "stats": {e.path: fs.lstat(e.path) for e in LAYOUT.entries}}
    return found


@pytest.mark.appliance
def test_first_run_seeds_all_but_the_failing_image_in_one_launch(roll_out):
    first = roll_out["first"]
    assert [(r.user.name, r.status) for r in first.results] == [
        ("alice", "seeded"), ("bob", "seeded"), ("carol", "failed"), ("dave", "seeded")]
    assert first.results[2].error == "injected failure"
    assert roll_out["log1"].count("starting an appliance") == 1  # four disks, one launch
    assert sorted(roll_out["after_first"]) == ["alice.qcow2", "bob.qcow2", "dave.qcow2"]  # no half-made carol
    # a generated password's row is written only as its image is put in place: carol's never was
    assert sorted(roll_out["passwords_after_first"]) == ["alice", "dave"]


@pytest.mark.appliance
def test_resume_skips_complete_images_and_makes_the_failed_one_and_the_unsafe_one_again(roll_out):
    second, out = roll_out["second"], roll_out["out"]
    assert second.returncode == 0, second.stderr
    users = {u["name"]: u for u in json.loads(second.stdout)["users"]}
    assert [(name, users[name]["status"]) for name in NAMES] == [
        ("alice", "skipped"), ("bob", "skipped"), ("carol", "seeded"), ("dave", "seeded")]
    # dave's image met the contract but for one symlink that inspect lists only past its first screenful
    assert "/etc/zzz/link: symlink (not named by the contract) -> /etc/shadow" in users["dave"]["redone"]
    for name in ("alice.qcow2", "bob.qcow2"):
        assert (out / name).stat().st_mtime_ns == roll_out["after_first"][name], f"{name} was rewritten"
    assert second.stderr.count("starting an appliance") == 1  # carol and dave share one launch
    # carol was made as an overlay too: backed by the base, by absolute path, format given
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(out / "carol.qcow2")],
                                     capture_output=True, text=True, check=True).stdout)
    assert info["backing-filename"] == str(roll_out["base"].absolute())
    assert info["backing-filename-format"] == "qcow2"
    leftovers = sorted(p.name for p in out.iterdir())
    assert leftovers == [".zvm-provision-batch.key", ".zvm-provision-batch.lock", "alice.qcow2", "bob.qcow2",
                         "carol.qcow2", "dave.qcow2", "initial-passwords.csv", "report.json"]


@pytest.mark.appliance
def test_resume_keeps_only_passwords_that_open_an_image(roll_out):
    """alice's is kept; dave's is replaced (his image was made again); carol, whose image run 1 never put in
    place (so no row), now gives her own hash and gets no row."""
    out, before = roll_out["out"], roll_out["passwords_after_first"]
    after = password_rows(out)
    assert sorted(after) == ["alice", "dave"]
    assert after["alice"] == before["alice"] and after["dave"] != before["dave"]
    assert stat.S_IMODE((out / "initial-passwords.csv").stat().st_mode) == 0o600


@pytest.mark.appliance
def test_every_image_holds_the_contract_with_owners_and_modes(images):
    for name, found in images.items():
        for entry in LAYOUT.entries:
            st = found["stats"][entry.path]
            if entry.role in ASKED_FOR_ROLES or (entry.role in ("netbird-setup-key", "netbird-management-url")
                                                   and name != "bob"):
                assert st is None, (name, entry.path)
                continue
            assert st is not None, (name, entry.path)
            assert (st.kind, st.uid, st.gid, st.mode) == (entry.kind, entry.uid, entry.gid, entry.mode), (
                name, entry.path)


@pytest.mark.appliance
def test_each_hash_verifies_with_the_given_or_generated_password(roll_out, images):
    rows = password_rows(roll_out["out"])
    passwords = {"alice": rows["alice"], "bob": BOB_PASSWORD, "carol": CAROL_PASSWORD, "dave": rows["dave"]}
    assert len(rows["alice"]) >= 20 and rows["alice"] != rows["dave"]
    for name, found in images.items():
        held = found["files"]["/passwords/zvm"].decode()
        assert held.endswith("\n") and held.count("\n") == 1
        assert crypt.crypt(passwords[name], held.strip()) == held.strip(), name
    assert images["bob"]["files"]["/passwords/zvm"].decode().strip() == roll_out["bob_hash"]
    assert images["carol"]["files"]["/passwords/zvm"].decode().strip() == roll_out["carol_hash"]


@pytest.mark.appliance
def test_each_image_holds_only_its_own_key_and_its_own_host_key_and_machine_id(roll_out, images):
    for name, found in images.items():
        assert found["files"]["/home/zvm/.ssh/authorized_keys"].decode() == roll_out["lines"][name] + "\n"
    machine_ids = {found["state"].machine_id for found in images.values()}
    host_keys = {found["state"].host_public_line for found in images.values()}
    private_keys = {found["files"]["/etc/ssh/ssh_host_ed25519_key"] for found in images.values()}
    assert len(machine_ids) == len(host_keys) == len(private_keys) == 4 and None not in machine_ids
    assert images["dave"]["crowd"] is None  # made again from the base: nothing of the old image is left
    bob = images["bob"]["files"]
    assert bob["/var/lib/netbird/setup-key"] == (SETUP_KEY + "\n").encode()
    assert bob["/var/lib/netbird/management-url"] == b"https://netbird.example.com\n"


@pytest.mark.appliance
def test_report_json_describes_every_user_without_secrets(roll_out, images):
    from provision.core.credentials.sshkeys import public_key_fingerprint

    out = roll_out["out"]
    text = (out / "report.json").read_text()
    report = json.loads(text)
    users = {u["name"]: u for u in report["users"]}
    assert list(users) == list(NAMES)
    for name, user in users.items():
        state = images[name]["state"]
        assert user["image"] == str(out / f"{name}.qcow2")
        assert [k["fingerprint"] for k in user["authorized_keys"]] == [public_key_fingerprint(roll_out["lines"][name])]
        assert user["host_key"]["fingerprint"] == public_key_fingerprint(state.host_public_line)
        # The known_hosts line names the row's own hostname, as seed and the wizard do, not the built-in `zvm`.
        assert user["host_key"]["known_hosts"].split() == [user["hostname"], *state.host_public_line.split()[:2]]
        assert user["machine_id"] == state.machine_id
    assert [users[n]["netbird_setup_key_given"] for n in users] == [False, True, False, False]
    assert [users[n]["password"] for n in users] == ["generated", "given", "given", "generated"]
    assert SETUP_KEY not in text and roll_out["bob_hash"] not in text and "$6$" not in text
    assert roll_out["carol_hash"] not in text
    for line in (out / "initial-passwords.csv").read_text().splitlines()[1:]:
        assert line.split(",", 1)[1] not in text


def test_a_full_host_disk_is_a_clear_error_and_leaves_no_temporary_copy(tmp_path, monkeypatch):
    """No appliance: qemu-img is made to fail the way it does when the disk fills up."""
    target = tmp_path / ".alice.qcow2.partial"

    def full_disk(command, **kwargs):
        target.write_bytes(b"half a copy")
        raise subprocess.CalledProcessError(1, command, "", "qemu-img: error while writing at byte 0: "
                                                           "No space left on device")

    monkeypatch.setattr(subprocess, "run", full_disk)
    base = ImageInfo(tmp_path / "base.qcow2", "qcow2", 1 << 30, 1 << 20, 3, None, False)  # no file: no reflink
    with pytest.raises(ProvisionError, match="host disk is full"):
        copy_base(base, WorkCopy(tmp_path / "alice.qcow2").partial)
    assert not target.exists()


RAW_BASE = ImageInfo(Path("/nonexistent/base.raw"), "raw", 1 << 30, 1 << 30, None, None, False)


def test_not_enough_space_is_found_before_any_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "_measure", lambda base: 10 << 40)  # 10 TiB per copy
    with pytest.raises(ProvisionError, match="not enough space"):
        run._check_space(RAW_BASE, tmp_path, 3, overlay=False)
    run._check_space(RAW_BASE, tmp_path, 3, overlay=True)  # overlays are small
    assert os.listdir(tmp_path) == []


@pytest.mark.appliance
def test_each_image_has_its_rows_hostname_and_a_record_naming_the_row(roll_out, images):
    hostnames = {"alice": "zvm-alice", "bob": "bobs-vm", "carol": "zvm-carol", "dave": "zvm-dave"}
    report = {u["name"]: u for u in json.loads((roll_out["out"] / "report.json").read_text())["users"]}
    for name, found in images.items():
        assert found["files"]["/etc/hostname"] == (hostnames[name] + "\n").encode(), name
        assert report[name]["hostname"] == hostnames[name]
        [entry] = found["state"].record.entries  # one seeding each (dave's image was made again from the base)
        assert (entry["batch_row"], entry["hostname"], entry["machine_id"]) == (
            name, hostnames[name], found["state"].machine_id)
        # run 1 was given --operator; run 2 (the command, for carol and dave) records user@host
        assert (entry["operator"] == "it@desk") == (name in ("alice", "bob")), (name, entry["operator"])
        written = found["files"]["/zvm-provision/history.jsonl"]
        for secret in (SETUP_KEY, roll_out["bob_hash"], roll_out["carol_hash"], "PRIVATE KEY",
                       found["files"]["/passwords/zvm"].decode().strip()):
            assert secret.encode() not in written, name


@pytest.mark.appliance
def test_two_rows_with_one_hostname_are_refused_before_any_copy(sample_disk_template: Path, tmp_path: Path):
    for name in ("erin", "frank"):
        (tmp_path / f"{name}.pub").write_text(public_line(comment=name) + "\n")
    manifest = tmp_path / "staff.csv"
    manifest.write_text("name,ssh_keys,hostname\nerin,erin.pub,shared-vm\nfrank,frank.pub,shared-vm\n")
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", "provision", "batch", str(manifest), "--base", str(sample_disk_template),
         "--out-dir", str(out), "--accel", "tcg"],
        capture_output=True, text=True, timeout=300, check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])},
    )
    assert result.returncode == 2, result.stderr
    assert "line 3: duplicate hostname 'shared-vm' (first used at line 2)" in result.stderr
    assert "nothing was created" in result.stderr
    assert not out.exists() and list(tmp_path.rglob("*.qcow2*")) == []
