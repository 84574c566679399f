"""Release signers (--update-signer) through the command and the real appliance: the allow-list lands on persist
as the persist contract says (owner 0:0, mode 0644, git's allowed_signers format) and inspect shows it, in text
and JSON; an image without one says that its updates are not verified; `keys --update-signer` replaces the
list. Five launches: inspect of the blank copy, the seeding, inspect (JSON), keys, inspect again. The file's bytes and the image-side verification are
checked in tests/core/test_plan.py and tests/nix/test_nix_updates.py."""

from __future__ import annotations

import json
import subprocess

import pytest

from provision.core.layout import load_layout
from tests.support.command import zvm
from tests.support.files import copy_disk, sha256
from tests.support.keyfactory import public_line

pytestmark = pytest.mark.appliance

SIGNERS = load_layout().role("update-signers")


@pytest.fixture(scope="module")
def signed(tmp_path_factory, sample_disk_template):
    work = tmp_path_factory.mktemp("signers")
    disk = copy_disk(sample_disk_template, work / "vm.qcow2")
    login = work / "it.pub"
    login.write_text(public_line(comment="it@desk") + "\n")
    release = work / "release.pub"
    release.write_text(public_line(comment="release@example.org") + "\n")
    deputy = work / "deputy.pub"
    deputy.write_text(public_line(comment="deputy release key") + "\n")
    private = work / "id_ed25519"
    private.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n")
    before = sha256(disk)
    refused = zvm(str(disk), "--no-password", "--ssh-key", str(login), "--update-signer", str(private))
    refused_hash = sha256(disk)
    blank = zvm("inspect", str(disk))
    seeded = zvm(str(disk), "--no-password", "--ssh-key", str(login), "--update-signer", str(release),
                 "--update-signer", str(deputy), "--yes")
    inspected = zvm("inspect", str(disk), "--json")
    changed = zvm("keys", str(disk), "--update-signer", str(deputy), "--json")  # the fleet's way
    after = zvm("inspect", str(disk), "--json")
    return {"before": before, "refused": refused, "refused_hash": refused_hash, "blank": blank, "seeded": seeded,
            "inspected": inspected, "keys": (release, deputy), "changed": changed, "after": after}


def test_a_private_key_as_signer_is_refused_before_the_image_is_opened(signed):
    assert signed["refused"].returncode == 2
    assert "private key" in signed["refused"].stderr
    assert signed["refused_hash"] == signed["before"]


def test_an_image_without_signers_says_its_updates_are_not_verified(signed):
    assert signed["blank"].returncode in (0, 1), signed["blank"].stderr
    assert "updates are not verified" in " ".join(signed["blank"].stdout.split())


def test_the_signers_land_with_the_contracts_owner_and_mode_and_inspect_lists_them(signed):
    assert signed["seeded"].returncode == 0, signed["seeded"].stderr
    report = json.loads(signed["inspected"].stdout)
    (entry,) = [p for p in report["paths"] if p["path"] == SIGNERS.path]
    assert entry["status"] == "ok"
    assert entry["actual"]["owner"] == "0:0" and entry["actual"]["mode"] == "0644" == f"{SIGNERS.mode:04o}"
    assert report["updates"]["state"] == "verified"
    fingerprints = [fingerprint(path) for path in signed["keys"]]
    assert [(s["principal"], s["fingerprint"]) for s in report["updates"]["signers"]] == [
        ("release@example.org", fingerprints[0]), ("release-signer", fingerprints[1])]


def fingerprint(path) -> str:
    """What ssh-keygen -l says of the key file (the real program is the judge of a fingerprint)."""
    return subprocess.run(["ssh-keygen", "-l", "-f", str(path)], capture_output=True, text=True,
                          check=True).stdout.split()[1]


def test_keys_replaces_the_release_signers_and_leaves_the_login_keys(signed):
    assert signed["changed"].returncode == 0, signed["changed"].stderr
    before = json.loads(signed["inspected"].stdout)
    after = json.loads(signed["after"].stdout)
    assert [s["fingerprint"] for s in after["updates"]["signers"]] == [fingerprint(signed["keys"][1])]
    (entry,) = [p for p in after["paths"] if p["path"] == SIGNERS.path]
    assert entry["status"] == "ok"
    assert after["authorized_keys"] == before["authorized_keys"]
