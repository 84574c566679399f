"""Reruns that tell the truth (issue 25), through the real command and the real appliance: resume makes an image
again when its row asks for something else than the image was made for (a changed Netbird setup key, a
password now generated, an overlay where a standalone image was made), and a redo that fails leaves the earlier
image AND its password row as they were (the new row used to replace it before seeding).

Three runs over one folder: the first makes alice, bob and carol; the second changes alice's setup key and bob's
password (carol's row is the same); the third asks for overlays while a qemu-img stand-in fails alice's.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

import pytest

from provision.core.layout import load_layout
from tests.commands.seed.test_output import REAL_QEMU_IMG, path_first
from tests.support import libxcrypt
from tests.support.command import zvm
from tests.support.files import sha256
from tests.support.keyfactory import public_line
from tests.support.persist import read_back

KEY_1 = "0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0"
KEY_2 = "1C2D3E4F-5061-7283-94A5-B6C7D8E9F0A1"
BOB_HASH = libxcrypt.crypt("bob's own Pa55word", "$6$rounds=5000$trUthfUlsAlt$")
HEADER = "name,ssh_keys,password_hash,netbird_setup_key,netbird_management_url,hostname\n"


def failing_overlay(folder: Path, name: str) -> dict[str, str]:
    """PATH with a qemu-img stand-in that fails to make `name`'s overlay; everything else is the real one."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "qemu-img"
    script.write_text(f"""#!{sys.executable}
import os, sys
args = sys.argv[1:]
if args[:1] == ["create"] and "-b" in args and os.path.basename(args[-1]).startswith(".{name}."):
    sys.stderr.write("qemu-img: stand-in: Could not create the overlay: Input/output error\\n")
    sys.exit(1)
os.execv({REAL_QEMU_IMG!r}, [{REAL_QEMU_IMG!r}, *args])
""")
    script.chmod(0o755)
    return path_first(folder)


def passwords(out: Path) -> dict[str, str]:
    with open(out / "initial-passwords.csv", newline="") as handle:
        return {row["name"]: row["password"] for row in csv.DictReader(handle)}


def users(out: Path) -> dict[str, dict]:
    return {u["name"]: u for u in json.loads((out / "report.json").read_text())["users"]}


@pytest.fixture(scope="module")
def reruns(sample_disk_template: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("reruns")
    for name in ("alice", "bob", "carol"):
        (folder / f"{name}.pub").write_text(public_line(comment=f"{name}@laptop") + "\n")
    manifest = folder / "staff.csv"
    out = folder / "out"
    common = ["--base", sample_disk_template, "--out-dir", out, "--jobs", "1"]
    seen = {}

    def run(name: str, rows: str, *extra: str, env: dict[str, str] | None = None) -> None:
        manifest.write_text(HEADER + rows)
        manifest.chmod(0o600)
        seen[name] = zvm("batch", manifest, *common, *extra, env=env)
        seen[f"{name}-users"] = users(out)
        seen[f"{name}-passwords"] = passwords(out)
        seen[f"{name}-sha256"] = {n: sha256(out / f"{n}.qcow2") for n in ("alice", "bob", "carol")}

    run("first", f"alice,alice.pub,,{KEY_1},,\nbob,bob.pub,{BOB_HASH},,,\ncarol,carol.pub,,,,\n")
    run("second", f"alice,alice.pub,,{KEY_2},,\nbob,bob.pub,,,,\ncarol,carol.pub,,,,\n")
    run("third", f"alice,alice.pub,,{KEY_2},,\nbob,bob.pub,,,,\ncarol,carol.pub,,,,\n", "--overlay",
        env=failing_overlay(folder / "bin", "alice"))
    hash_path = load_layout().role("password-hash").path
    seen["alice-hash"] = read_back([out / "alice.qcow2"])[0]["files"][hash_path].decode().strip()
    return seen


@pytest.mark.appliance
def test_the_first_run_makes_every_image(reruns):
    assert reruns["first"].returncode == 0, reruns["first"].stderr
    assert set(reruns["first-passwords"]) == {"alice", "carol"}


@pytest.mark.appliance
def test_a_changed_setup_key_and_a_password_now_generated_make_the_image_again(reruns):
    """Only the setup key's presence was checked, and a password hash counted as set whoever chose it: both
    images were skipped as complete, alice's with the old key, bob's with no password anyone was given."""
    assert reruns["second"].returncode == 0, reruns["second"].stderr
    made = reruns["second-users"]
    assert (made["alice"]["status"], made["bob"]["status"], made["carol"]["status"]) == (
        "seeded", "seeded", "skipped")
    assert "manifest row changed" in made["alice"]["redone"]
    assert "asks for a generated password" in made["bob"]["redone"]
    assert reruns["second-sha256"]["carol"] == reruns["first-sha256"]["carol"]
    assert set(reruns["second-passwords"]) == {"alice", "bob", "carol"}
    assert reruns["second-passwords"]["carol"] == reruns["first-passwords"]["carol"]
    for entry in made.values():  # keyed: never the secret, nor a plain hash of it
        assert entry["row_digest"].startswith("hmac-sha256:")
    report = json.dumps(made)
    assert KEY_2 not in report and KEY_2.lower() not in report


@pytest.mark.appliance
def test_standalone_images_are_made_again_when_overlays_are_asked_for(reruns):
    made = reruns["third-users"]
    for name in ("alice", "bob", "carol"):
        assert "this run asks for one" in (made[name]["redone"] or ""), made[name]
    assert (made["bob"]["status"], made["carol"]["status"]) == ("seeded", "seeded")
    assert made["bob"]["overlay_of"] is not None


@pytest.mark.appliance
def test_a_failed_redo_keeps_the_earlier_image_and_the_password_it_accepts(reruns):
    """The new generated password replaced alice's row before seeding; her redo failed, the earlier image stayed,
    and initial-passwords.csv handed over a password it does not accept."""
    third, made = reruns["third"], reruns["third-users"]
    assert third.returncode == 1, third.stderr
    assert made["alice"]["status"] == "failed" and "stand-in" in made["alice"]["error"]
    assert reruns["third-sha256"]["alice"] == reruns["second-sha256"]["alice"]  # the earlier image, as it was
    assert reruns["third-passwords"]["alice"] == reruns["second-passwords"]["alice"]
    assert reruns["third-passwords"]["bob"] != reruns["second-passwords"]["bob"]  # bob's new image is in place
    held = reruns["alice-hash"]
    assert libxcrypt.crypt(reruns["third-passwords"]["alice"], held) == held  # the image accepts the row
    # what the report says alice's image was made as is still the earlier image's (standalone), so a later
    # run without --overlay does not make it again, and one with --overlay does
    assert made["alice"]["overlay_of"] is None
    assert made["alice"]["row_digest"] == reruns["second-users"]["alice"]["row_digest"]


@pytest.mark.appliance
def test_the_folder_s_key_is_private(reruns, tmp_path):
    out = Path(reruns["first"].args[reruns["first"].args.index("--out-dir") + 1])
    key = out / ".zvm-provision-batch.key"
    assert os.lstat(key).st_mode & 0o777 == 0o600 and key.stat().st_size == 32
