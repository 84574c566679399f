"""Seed flags that change what lands in the image, each through the real command and appliance, on a disk the
real `sample-disk` command made: a flag the command ignored would fail these tests.

Launches, shared by one module fixture: sample-disk (1), two seedings with --no-host-keys, the second with
--replace-keys (2), `inspect IMAGE > file` (1), one read-back (1). The refusals before any launch run in this process.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from provision import __version__
from provision.core.layout import load_layout
from tests.support.command import in_process, zvm
from tests.support.files import sha256
from tests.support.keyfactory import public_line
from tests.support.persist import read_back

LAYOUT = load_layout()
AUTHORIZED_KEYS = "/home/zvm/.ssh/authorized_keys"
HOST_KEY = "/etc/ssh/ssh_host_ed25519_key"
assert {AUTHORIZED_KEYS, HOST_KEY} <= {entry.path for entry in LAYOUT.entries}


@pytest.fixture(scope="module")
def wired(tmp_path_factory):
    work = tmp_path_factory.mktemp("wired")
    disk = work / "made.qcow2"
    made = zvm("sample-disk", disk)
    alice, bob = work / "alice.pub", work / "bob.pub"
    alice.write_text(public_line(comment="alice@laptop") + "\n")
    bob.write_text(public_line(comment="bob@desk") + "\n")
    first = zvm(disk, "--no-password", "--ssh-key", alice, "--no-host-keys", "--json")
    second = zvm(disk, "--ssh-key", bob, "--replace-keys", "--no-host-keys", "--json")
    with open(work / "inspect.txt", "w") as listing:  # `inspect IMAGE > file`, on a narrow terminal's COLUMNS
        shown = zvm("inspect", disk, stdout=listing, env={"COLUMNS": "60"})
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(disk)], check=True,
                                     capture_output=True, text=True).stdout)
    return {"made": made, "info": info, "runs": [first, second], "back": read_back([disk])[0], "bob": bob,
            "inspect": shown, "listing": (work / "inspect.txt").read_text()}


@pytest.mark.appliance
def test_sample_disk_makes_a_qcow2_with_an_empty_persist_that_seeds(wired):
    assert wired["made"].returncode == 0, wired["made"].stderr
    assert wired["info"]["format"] == "qcow2"
    assert [run.returncode for run in wired["runs"]] == [0, 0], [run.stderr for run in wired["runs"]]


@pytest.mark.appliance
def test_no_host_keys_leaves_the_image_without_a_host_key(wired):
    stats = wired["back"]["stats"]
    assert stats[HOST_KEY] is None and stats[HOST_KEY + ".pub"] is None
    assert stats["/etc/machine-id"] is not None  # the run did seed the rest


@pytest.mark.appliance
def test_replace_keys_leaves_only_the_keys_given(wired):
    lines = wired["back"]["files"][AUTHORIZED_KEYS].decode().splitlines()
    assert [line.split()[-1] for line in lines if line.strip() and not line.startswith("#")] == ["bob@desk"]


def test_no_host_keys_with_new_host_keys_is_refused_before_the_image_is_read(tmp_path):
    image = tmp_path / "disk.qcow2"
    image.write_bytes(b"not opened")
    key = tmp_path / "alice.pub"
    key.write_text(public_line() + "\n")
    before = sha256(image)
    result = in_process(image, "--no-password", "--ssh-key", key, "--no-host-keys", "--new-host-keys")
    assert result.returncode == 2
    assert "--no-host-keys and --new-host-keys contradict each other" in result.stderr
    assert sha256(image) == before


def test_version_prints_the_package_version():
    result = zvm("--version")
    assert result.returncode == 0
    assert result.stdout == f"zvm-provision {__version__}\n"


@pytest.mark.appliance
def test_inspect_into_a_file_keeps_every_row_whole_so_a_fingerprint_can_be_copied(wired):
    """README: in a pipe or a file every line is as it is; the fingerprint copied into --remove-key is whole."""
    assert wired["inspect"].returncode == 0, wired["inspect"].stderr
    listed = subprocess.run(["ssh-keygen", "-lf", str(wired["bob"])], capture_output=True, text=True, check=True)
    fingerprint = listed.stdout.split()[1]
    rows = [line for line in wired["listing"].splitlines() if fingerprint in line]
    assert len(rows) == 1 and "bob@desk" in rows[0], wired["listing"]
