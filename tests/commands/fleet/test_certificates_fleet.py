"""Certificates over a fleet, through the real commands and the real appliance: `batch --host-ca` signs every
copy's own host key (its hostname, its serial) and hands over one `@cert-authority` line; `keys --host-ca`
renews them all in one launch (new serials, the new validity), and `keys --user-ca` rotates the trusted user CA;
`inspect --json` reads the result back. One batch launch, one keys launch, one inspect launch."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta

import pytest

from tests.support.command import zvm
from tests.support.keyfactory import public_line
from tests.support.openssh import keygen

pytestmark = pytest.mark.appliance

DOMAIN = "corp.example"


@pytest.fixture(scope="module")
def fleet(sample_disk_template, tmp_path_factory):
    work = tmp_path_factory.mktemp("fleet-certs")
    for name in ("ada", "bob"):
        (work / f"{name}.pub").write_text(public_line(comment=f"{name}@laptop") + "\n")
    manifest = work / "staff.csv"
    manifest.write_text("name,ssh_keys,hostname\nada,ada.pub,vm-ada\nbob,bob.pub,vm-bob\n")
    host_ca = keygen(work / "host_ca", "host-ca")
    old_user_ca, new_user_ca = keygen(work / "user_ca_2025", "ca-2025"), keygen(work / "user_ca_2026", "ca-2026")
    out = work / "out"
    runs = {"batch": zvm("batch", manifest, "--base", sample_disk_template, "--out-dir", out, "--host-ca", host_ca,
                         "--host-domain", DOMAIN, "--user-ca", f"{old_user_ca}.pub")}
    runs["renew"] = zvm("keys", out, "--host-ca", host_ca, "--host-domain", DOMAIN, "--host-cert-validity", "4w",
                        "--user-ca", f"{new_user_ca}.pub", "--json")
    runs["inspect"] = zvm("inspect", out / "ada.qcow2", "--json")
    runs["check"] = zvm("inspect", out / "bob.qcow2", "--check")
    return {"work": work, "out": out, "runs": runs, "host_ca": host_ca}


def test_batch_signs_each_copy_and_hands_over_one_line(fleet):
    run = fleet["runs"]["batch"]
    assert run.returncode == 0, run.stderr
    report = json.loads((fleet["out"] / "report.json").read_text())
    certs = {row["name"]: row["host_certificate"] for row in report["users"]}
    assert certs["ada"]["principals"] == ["vm-ada", f"vm-ada.{DOMAIN}"]
    assert certs["bob"]["principals"] == ["vm-bob", f"vm-bob.{DOMAIN}"]
    assert certs["ada"]["serial"] != certs["bob"]["serial"]
    ca = (fleet["work"] / "host_ca.pub").read_text().split()
    line = f"@cert-authority *.{DOMAIN} {ca[0]} {ca[1]}"
    assert certs["ada"]["cert_authority"] == certs["bob"]["cert_authority"] == line
    assert run.stdout.count(line) == 1


def test_keys_renews_every_host_certificate_and_rotates_the_user_ca(fleet):
    run = fleet["runs"]["renew"]
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["counts"]["changed"] == 2
    before = {row["name"]: row["host_certificate"]["serial"]
              for row in json.loads((fleet["out"] / "report.json").read_text())["users"]}
    renewed = {row["image"].rsplit("/", 1)[1]: row["host_certificate"] for row in report["images"]}
    assert renewed["ada.qcow2"]["serial"] not in before.values()
    assert renewed["ada.qcow2"]["principals"] == ["vm-ada", f"vm-ada.{DOMAIN}"]  # the image's own hostname
    inspected = json.loads(fleet["runs"]["inspect"].stdout)["certificates"]
    host = inspected["host_certificate"]
    assert host["serial"] == renewed["ada.qcow2"]["serial"] and host["problems"] == []
    until = datetime.fromisoformat(host["valid_before"]) - datetime.fromisoformat(host["valid_after"])
    assert timedelta(weeks=4) < until <= timedelta(weeks=4, minutes=6)
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(fleet["host_ca"]) + ".pub"], capture_output=True,
                                 text=True, check=True).stdout.split()[1]
    assert host["ca_fingerprint"] == fingerprint
    assert [ca["comment"] for ca in inspected["trusted_user_cas"]] == ["ca-2026"]
    assert inspected["principals"] == ["zvm"]


def test_inspect_check_warns_near_expiry_and_no_private_ca_key_reaches_a_report(fleet):
    check = fleet["runs"]["check"]
    assert check.returncode == 0, check.stdout + check.stderr
    # 4 weeks is within 30 days of expiry: the image meets the contract, and --check warns (exit 0)
    lines = check.stdout.splitlines()
    assert lines[0].startswith("OK:") and lines[1].startswith("WARNING: expires on ")
    assert lines[1].endswith("within 30 days")
    secret = "".join(fleet["host_ca"].read_text().splitlines()[1:-1])[-60:]  # the end holds the private part
    texts = [run.stdout + run.stderr for run in fleet["runs"].values()]
    texts += [path.read_text() for path in fleet["out"].glob("*.json")]
    assert not any(secret in text for text in texts)
