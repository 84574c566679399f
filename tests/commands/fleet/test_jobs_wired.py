"""--jobs through the real commands (inspect IMAGE..., keys), and --debug after a failure inside the appliance.

`--jobs 2` over two images runs two appliances, one image each, where the automatic choice (too few disks for
a second appliance) runs one: each command says how it split the work, and both images are done. Launches, in
one module fixture: inspect (2), keys (2), seed on a disk without persist with and without --debug (2).
"""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.support.command import zvm
from tests.support.keyfactory import public_line

pytestmark = pytest.mark.appliance


@pytest.fixture(scope="module")
def runs(tmp_path_factory, make_disk_copy):
    work = tmp_path_factory.mktemp("jobs")
    disks = [make_disk_copy("first"), make_disk_copy("second")]
    key = work / "it.pub"
    key.write_text(public_line(comment="it@desk") + "\n")
    blank = work / "blank.qcow2"  # a disk image without partitions: the failure comes from inside the appliance
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(blank), "64M"], check=True)
    seed = [blank, "--no-password", "--ssh-key", key]
    return {
        "inspect": zvm("inspect", *disks, "--jobs", "2", "--json"),
        "keys": zvm("keys", *disks, "--add-key", key, "--jobs", "2", "--json"),
        "failed": zvm(*seed),
        "failed-debug": zvm(*seed, "--debug"),
    }


@pytest.mark.parametrize("command", ["inspect", "keys"])
def test_jobs_runs_that_many_appliances_and_every_image_is_reached(runs, command):
    run = runs[command]
    assert "2 image(s) in 2 appliance launch(es), 2 at a time" in run.stderr, run.stderr
    shown = json.loads(run.stdout)
    rows = shown if command == "inspect" else shown["images"]  # inspect's JSON is a list of rows
    assert len(rows) == 2


def test_inspect_with_jobs_reads_both_images(runs):
    assert runs["inspect"].returncode == 0, runs["inspect"].stderr


def test_keys_with_jobs_judges_both_images(runs):
    """Blank images have no password file yet: keys refuses to add a key there, each in its launch, in its own
    words (seed them first), never naming seed's password flags, which keys does not take."""
    rows = json.loads(runs["keys"].stdout)["images"]
    assert runs["keys"].returncode == 1
    assert [row["status"] for row in rows] == ["refused", "refused"]
    for row in rows:
        assert "no password file" in row["reason"] and "seed it first (zvm-provision seed)" in row["reason"], row
        assert "--password" not in row["reason"], row


def test_debug_after_a_failure_inside_the_appliance_adds_the_traceback_and_keeps_the_exit_code(runs):
    plain, debug = runs["failed"], runs["failed-debug"]
    assert plain.returncode == debug.returncode == 3, (plain.stderr, debug.stderr)
    assert "Traceback" not in plain.stderr
    assert "Traceback (most recent call last)" in debug.stderr
    first = plain.stderr.splitlines()[0]
    assert first.startswith("zvm-provision: error: ") and first in debug.stderr
