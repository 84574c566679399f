"""`zvm-provision inspect` and `--check` through the command and the real libguestfs appliance, sharing launches:
one launch seeds two copies of a blank disk (one then damaged), one inspects the blank and the seeded copy
together, and two run the command itself in a subprocess. The pure report is tested in tests/core.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from provision import __version__
from provision.core.apply import apply_plan, verify_plan
from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.core.disk import ImageInfo, Partition
from provision.core.contractcheck import check_image_contract
from provision.core.layout import load_layout
from provision.core.plan import build_plan
from provision.core.request import PasswordChoice, SeedRequest
from provision.core.state import read_state
from provision.secret import Secret
from provision.ui.render_inspect import report_to_json
from tests.support.command import zvm
from tests.support.crowd import CROWD_FILES, crowd_tarball
from tests.support.files import sha256
from tests.support.keyfactory import public_line
from tests.support.persist import ASKED_FOR_ROLES
from tests.support.rendering import render_text

LAYOUT = load_layout()
HASH = "$6$rounds=1000$saltsalt$" + "a" * 86
SETUP_KEY = "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"
INFO = ImageInfo(Path("disk.qcow2"), "qcow2", 1 << 30, 1 << 20, 3, None, False)
PARTITIONS = [Partition("/dev/sda3", "persist", "ext4", 1 << 29)]


# ------------------------------------------------------------------------------------------------
# The command line without the appliance: usage errors


def test_usage_errors_exit_2_before_the_image_is_opened(tmp_path, capsys):
    from provision.cli import main  # the command's entry point: its one error handler gives the exit code

    def exit_code(*args: str) -> int:
        with pytest.raises(SystemExit) as stopped:
            main(list(args))
        return stopped.value.code

    assert exit_code("inspect") == 2
    assert exit_code("inspect", "--accel", "bogus", str(tmp_path / "x.qcow2")) == 2
    assert exit_code("inspect", str(tmp_path / "absent.qcow2")) == 2
    assert exit_code("inspect", "--help") == 0


# ------------------------------------------------------------------------------------------------
# Through the real appliance (launches: sample disk 1, seeding 1, subprocess 2, shared inspection 1)

SECRET_PASSWORD = "correct horse battery staple 7Q!"
ACCEL = os.environ.get("ZVM_PROVISION_ACCEL", "tcg")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """A blank sample disk and two copies of it, both seeded (each with its own identity); the second then
    damaged: authorized_keys made world-writable, the password file removed, a symlink planted."""
    from provision.commands.sample_disk import create_sample_disk
    from provision.commands.seed.apply import fresh_material
    from provision.core.credentials.passwords import hash_password
    from provision.guest.appliance import Appliance
    from provision.guest.diskformat import probe_image

    folder = tmp_path_factory.mktemp("inspect")
    blank, seeded, damaged = folder / "blank.qcow2", folder / "seeded.qcow2", folder / "damaged.qcow2"
    crowded = folder / "crowded.qcow2"
    create_sample_disk(blank, "128M", accel=ACCEL)
    for copy in (seeded, damaged, crowded):
        shutil.copyfile(blank, copy)
    crowd = crowd_tarball(folder / "crowd.tar")

    password_hash = hash_password(SECRET_PASSWORD, rounds=5000)
    keys = tuple(parse_authorized_keys(public_line(comment="alice@laptop") + "\n", "test"))
    secrets = [SECRET_PASSWORD, password_hash.reveal(), SETUP_KEY]
    disks = [probe_image(seeded), probe_image(damaged), probe_image(crowded)]
    with Appliance(disks, readonly=False, accel=ACCEL) as appliance:
        appliance.launch()
        for index in (0, 1, 2):
            fresh = fresh_material()
            private = fresh.host_key.private_openssh.reveal()
            secrets += [private, *private.splitlines()[1:-1]]
            request = SeedRequest(
                password=PasswordChoice.from_hash(password_hash), keys=keys, netbird_setup_key=Secret(SETUP_KEY),
                netbird_management_url="https://netbird.example.org", hostname=f"zvm-copy-{index}",
                operator="it@desk",
            )
            with appliance.mount_persist(index) as fs:
                plan = build_plan(request, read_state(fs, LAYOUT), LAYOUT, fresh)
                apply_plan(plan, fs)
                verify_plan(plan, fs)
                if index == 1:
                    fs.set_owner_mode("/home/zvm/.ssh/authorized_keys", 1000, 100, 0o666)
                    fs.remove("/passwords/zvm")
                    appliance.handle.ln_s("/etc/shadow", "/home/zvm/.ssh/rc")  # PersistFS makes no links
                if index == 2:
                    appliance.handle.tar_in(str(crowd), "/etc")  # one round trip for the whole crowd
        appliance.close()
    return {"blank": blank, "seeded": seeded, "damaged": damaged, "crowded": crowded, "secrets": secrets}


def assert_no_secret(text: str, secrets: list[str]) -> None:
    for secret in secrets:
        assert secret not in text
    assert SETUP_KEY[:8] not in text


@pytest.mark.appliance
def test_cli_json_of_a_seeded_image_changes_not_one_byte_and_shows_no_secret(images):
    image = images["seeded"]
    before = sha256(image)
    result = zvm("inspect", "--json", str(image))
    assert result.returncode == 0, result.stderr
    assert sha256(image) == before
    assert_no_secret(result.stdout + result.stderr, images["secrets"])
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1 and data["contract_ok"] is True, data["problems"]
    assert data["image"]["format"] == "qcow2"
    assert [p["label"] for p in data["partitions"] if p["persist"]] == ["persist"]
    # every path but the certificate files, which only --host-ca and --user-ca write
    assert all(p["status"] == ("absent" if p["role"] in ASKED_FOR_ROLES else "ok") for p in data["paths"]), data["paths"]
    assert data["password"] == {"state": "set", "algorithm": "sha512-crypt", "rounds": 5000}
    assert [k["comment"] for k in data["authorized_keys"]["keys"]] == ["alice@laptop"]
    assert data["host_key"]["state"] == "present" and data["host_key"]["known_hosts"].startswith("zvm-copy-0 ssh-ed25519 ")
    assert data["machine_id"]["state"] == "valid"
    assert data["netbird"] == {"setup_key": "present", "management_url": "https://netbird.example.org"}
    assert data["unexpected"] == [] and "/var/log" in data["walk"]["not_examined"]
    assert data["hostname"] == {"state": "seeded", "value": "zvm-copy-0", "boots_as": "zvm-copy-0"}
    assert data["record"]["count"] == 1 and data["record"]["last"].startswith("seeded ")
    assert data["record"]["last"].endswith(f" by it@desk with zvm-provision {__version__}")


@pytest.mark.appliance
def test_cli_text_names_the_images_own_hostname_in_the_known_hosts_line(images):
    """Each image has its own hostname: the line to paste into known_hosts names it, not the built-in `zvm`."""
    result = zvm("inspect", str(images["seeded"]))
    assert result.returncode == 0, result.stderr
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert "known_hosts line (replace 'zvm-copy-0' with the VM's address):" in lines, result.stdout
    assert [line for line in lines if " ssh-ed25519 AAAA" in line][0].startswith("zvm-copy-0 ssh-ed25519 ")


@pytest.mark.appliance
@pytest.mark.parametrize("name, expected", [
    ("damaged", [
        "DRIFT: 3 problems",
        "  /passwords/zvm: missing",
        "  /home/zvm/.ssh/authorized_keys: mode 0666 (world-writable), expected 0600",
        "  /home/zvm/.ssh/rc: symlink (not named by the contract) -> /etc/shadow",
    ]),
    # the symlink comes after more unexpected entries than the screen lists: it is judged all the same
    ("crowded", [
        "DRIFT: 1 problem",
        "  /etc/zzz/link: symlink (not named by the contract) -> /etc/shadow",
    ]),
])
def test_cli_check_names_each_drift_and_exits_1(images, name, expected):
    image = images[name]
    before = sha256(image)
    result = zvm("inspect", "--check", str(image))
    assert sha256(image) == before
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == expected
    assert_no_secret(result.stdout + result.stderr, images["secrets"])


@pytest.mark.appliance
def test_inspect_blank_and_seeded_copies_in_one_read_only_launch(images):
    from provision.guest.report import inspect_disk
    from provision.guest.appliance import Appliance
    from provision.guest.diskformat import probe_image

    names = ("blank", "seeded", "damaged", "crowded")
    hashes = {name: sha256(images[name]) for name in names}
    infos = [probe_image(images[name]) for name in names]
    with Appliance(infos, readonly=True, accel=ACCEL) as appliance:
        appliance.launch()
        reports = dict(zip(names, (inspect_disk(appliance, i, info) for i, info in enumerate(infos)), strict=True))
        appliance.close()
    assert {name: sha256(images[name]) for name in names} == hashes

    blank = reports["blank"]
    problems = check_image_contract(blank)
    assert {"/passwords/zvm: missing", "/home/zvm/.ssh/authorized_keys: missing", "/etc/machine-id: missing"} <= set(
        problems)
    text = render_text(blank)
    assert "missing" in text and "Drift from the contract" in text
    data = report_to_json(blank)
    assert data["contract_ok"] is False and data["password"]["state"] == "missing"
    assert data["host_key"]["state"] == "missing" and data["netbird"]["setup_key"] == "missing"
    assert data["unexpected"] == []  # lost+found is ext4's own

    seeded_text = render_text(reports["seeded"])
    assert "meets the persist contract" in seeded_text and "set, sha512-crypt, 5000 rounds" in seeded_text
    assert_no_secret(seeded_text + json.dumps(report_to_json(reports["seeded"])), images["secrets"])

    # Identity of copies: two copies of one base, each seeded, differ in machine-id and host key.
    seeded, damaged = reports["seeded"], reports["damaged"]
    assert seeded.machine_id.value and damaged.machine_id.value
    assert seeded.machine_id.value != damaged.machine_id.value
    assert seeded.host_key.fingerprint != damaged.host_key.fingerprint

    # The crowded copy: its symlink comes after more unexpected entries than the screen lists.
    from provision.core.inspection import MAX_LISTED

    crowded = reports["crowded"]
    order = [u.path for u in crowded.unexpected]
    assert len(order) == CROWD_FILES + 3 and order.index("/etc/zzz/link") >= MAX_LISTED
    assert check_image_contract(crowded) == ["/etc/zzz/link: symlink (not named by the contract) -> /etc/shadow"]
