"""Each VM its own name, and a record of the seeding, through the command and the real appliance.

One image, four launches: a write that gives it a record already full (50 old entries) with a damaged line, as
a long-lived image might have; a refused run (no launch: a bad --hostname is refused before the image is
opened); a first seeding with --hostname and --operator; a second one that only renames the VM; then a fresh
read-only handle reads inspect's report and the written bytes. The pure rules are in tests/core/test_record.py.
"""

from __future__ import annotations

import json

import pytest

from provision.core.layout import load_layout
from provision.core.record import MAX_ENTRIES
from provision.guest.appliance import Appliance
from provision.guest.diskformat import probe_image
from provision.ui.render_inspect import report_to_json
from tests.conftest import TEST_ACCEL
from tests.support.command import zvm
from tests.support.files import copy_disk, sha256
from tests.support.keyfactory import public_line
from tests.support.persist import write_file
from tests.support.rendering import render_text

pytestmark = pytest.mark.appliance

LAYOUT = load_layout()
RECORD = LAYOUT.role("seed-record").path
HOSTNAME = LAYOUT.role("hostname").path
PASSWORD = "fleet password, not in any record 9!"
SETUP_KEY = "A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D"
OLD_ENTRIES = 50


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, sample_disk_template):
    work = tmp_path_factory.mktemp("fleet")
    disk = copy_disk(sample_disk_template, work / "vm.qcow2")
    old = [b'{"tool":"zvm-provision","time":"2026-01-01T00:00:%02dZ","n":%d}\n' % (n % 60, n)
           for n in range(OLD_ENTRIES)]
    damaged = b"".join(old[:3]) + b"this line was damaged\n" + b"".join(old[3:])
    with Appliance([probe_image(disk)], readonly=False, accel=TEST_ACCEL) as appliance:
        appliance.launch()
        with appliance.mount_persist(0, writable=True) as fs:
            fs.make_dir("/zvm-provision", 0, 0, 0o700)
            write_file(fs, RECORD, damaged, 0, 0, 0o600)
        appliance.close()

    key = work / "it.pub"
    key.write_text(public_line(comment="it@desk") + "\n")
    setup_key = work / "setup-key"
    setup_key.write_text(SETUP_KEY + "\n")
    setup_key.chmod(0o600)
    before = sha256(disk)
    refused = {bad: zvm(str(disk), "--no-password", "--ssh-key", str(key), "--hostname", bad)
               for bad in ("Alice_PC", "-alice", "a" * 64, "zvm.example.org")}
    refused_hash = sha256(disk)
    first = zvm(str(disk), "--password-stdin", "--ssh-key", str(key), "--netbird-setup-key-file", str(setup_key),
                "--hostname", "zvm-alice", "--operator", "it@desk", "--json", stdin=PASSWORD.encode() + b"\n")
    second = zvm(str(disk), "--hostname", "zvm-bob", "--operator", "helpdesk ticket 4711")  # the name alone

    from provision.guest.report import inspect_disk

    info = probe_image(disk)
    with Appliance([info], readonly=True, accel=TEST_ACCEL) as appliance:
        appliance.launch()
        report = inspect_disk(appliance, 0, info)
        with appliance.mount_persist(0) as fs:
            files = {path: fs.read_file(path) for path in (RECORD, HOSTNAME, "/passwords/zvm",
                                                           "/etc/ssh/ssh_host_ed25519_key")}
            stats = {path: fs.lstat(path) for path in (RECORD, HOSTNAME, "/zvm-provision")}
        appliance.close()
    return {"disk": disk, "before": before, "refused": refused, "refused_hash": refused_hash, "first": first,
            "second": second, "report": report, "files": files, "stats": stats}


def test_a_bad_hostname_is_refused_with_the_rule_and_the_image_is_byte_identical(fleet):
    for bad, run in fleet["refused"].items():
        assert run.returncode == 2, (bad, run.stderr)
        assert "lower-case letters a-z, digits and hyphens" in run.stderr and "--hostname" in run.stderr, run.stderr
    assert fleet["refused_hash"] == fleet["before"]


def test_seed_hostname_then_inspect_shows_it_with_its_owner_and_mode(fleet):
    assert fleet["first"].returncode == 0, fleet["first"].stderr
    assert fleet["second"].returncode == 0, fleet["second"].stderr
    assert "Hostname: zvm-bob" in fleet["second"].stdout
    assert fleet["files"][HOSTNAME] == b"zvm-bob\n"
    for path in (HOSTNAME, RECORD, "/zvm-provision"):
        entry, stat = LAYOUT.entry(path), fleet["stats"][path]
        assert (stat.kind, stat.uid, stat.gid, stat.mode) == (entry.kind, entry.uid, entry.gid, entry.mode), path
    report = fleet["report"]
    data = report_to_json(report)
    assert data["hostname"] == {"state": "seeded", "value": "zvm-bob", "boots_as": "zvm-bob"}
    assert data["contract_ok"] is True, data["problems"]
    text = render_text(report, width=160)
    assert "zvm-bob (seeded)" in text
    assert "by helpdesk ticket 4711 with zvm-provision" in text and f"({MAX_ENTRIES} seedings recorded)" in text


def test_the_record_is_appended_per_seeding_and_keeps_the_last_50(fleet):
    first = json.loads(fleet["first"].stdout)
    assert first["record"]["entries"] == MAX_ENTRIES
    assert "1 unreadable line(s)" in first["record"]["warning"]  # the damaged line: said, not fatal
    assert "note:" not in fleet["second"].stdout  # the first seeding already dropped the damaged line
    lines = fleet["files"][RECORD].decode().splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == MAX_ENTRIES
    # the two oldest went (one per seeding), the damaged line went, the rest are kept byte for byte
    assert [e.get("n") for e in entries[:-2]] == list(range(2, OLD_ENTRIES))
    assert "this line was damaged" not in fleet["files"][RECORD].decode()
    alice, bob = entries[-2:]
    assert alice == first["record"]["entry"]
    assert (alice["operator"], alice["hostname"], alice["password"], alice["netbird_setup_key"]) == (
        "it@desk", "zvm-alice", "set", True)
    assert (bob["operator"], bob["hostname"], bob["password"], bob["netbird_setup_key"]) == (
        "helpdesk ticket 4711", "zvm-bob", "kept", False)
    assert bob["machine_id"] == alice["machine_id"] == first["machine_id"]
    assert bob["host_key"] == alice["host_key"] == first["host_key"]["fingerprint"]
    assert alice["time"].endswith("Z") and alice["time"] <= bob["time"]
    data = report_to_json(fleet["report"])["record"]
    assert data["count"] == MAX_ENTRIES and data["entries"][-1]["operator"] == "helpdesk ticket 4711"


def test_the_written_record_holds_no_secret(fleet):
    written = fleet["files"][RECORD]
    hashed = fleet["files"]["/passwords/zvm"].decode().strip()
    private = fleet["files"]["/etc/ssh/ssh_host_ed25519_key"].decode()
    assert hashed.startswith("$6$") and private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    for secret in (PASSWORD, hashed, hashed.rsplit("$", 1)[1], SETUP_KEY, SETUP_KEY.lower(), SETUP_KEY[:8],
                   *private.splitlines()[1:-1]):
        assert secret.encode() not in written, secret[:10]
    for run in (fleet["first"], fleet["second"]):
        assert PASSWORD not in run.stdout + run.stderr and SETUP_KEY not in run.stdout + run.stderr
