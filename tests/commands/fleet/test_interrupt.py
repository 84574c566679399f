"""Ctrl-C during `keys`, as batch's: the appliance finishes the image it is writing and shuts down cleanly, the
images not reached are left as they were and marked `interrupted` in the report, exit 130.

Two launches: `seed` makes one image key-only with two keys, copied twice; then `keys` over both (one
appliance), run through tests.support.held_writes so that it stops after its first write, where the terminal's
Ctrl-C (SIGINT to its process group) lands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from provision.core.credentials.sshkeys import public_key_fingerprint
from tests.commands.test_interrupts import TIMEOUT, sha256, wait_for
from tests.conftest import TEST_ACCEL
from tests.support.files import copy_disk
from tests.support.held_writes import HOLD_WRITES_ENV
from tests.support.keyfactory import public_line

pytestmark = pytest.mark.appliance

REPO = Path(__file__).resolve().parents[3]


def test_ctrl_c_finishes_the_image_being_written_and_leaves_the_rest(sample_disk_template: Path, tmp_path: Path):
    keys = tmp_path / "keys"
    leaver, stays = public_line(comment="leaver@laptop"), public_line(comment="stays@desk")
    keys.write_text(f"{leaver}\n{stays}\n")
    env = {**os.environ, "ZVM_PROVISION_ACCEL": TEST_ACCEL, "PYTHONPATH": str(REPO)}
    env.pop("ZVM_PROVISION_DEBUG", None)
    first = copy_disk(sample_disk_template, tmp_path / "seeded.qcow2")
    seeded = subprocess.run([sys.executable, "-m", "provision", str(first), "--no-password", "--ssh-key", str(keys),
                             "--yes"], capture_output=True, text=True, env=env, timeout=TIMEOUT, check=False)
    assert seeded.returncode == 0, seeded.stderr
    fleet = tmp_path / "fleet"
    fleet.mkdir()
    images = [copy_disk(first, fleet / f"{name}.qcow2") for name in ("a", "b")]
    before = {image: sha256(image) for image in images}
    hold, report = tmp_path / "hold", tmp_path / "report.json"
    hold.mkdir()
    with open(tmp_path / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.held_writes", "keys", str(fleet), "--remove-key", "leaver@laptop",
             "--report", str(report)],
            stdout=subprocess.PIPE, stderr=err, env={**env, HOLD_WRITES_ENV: str(hold)}, start_new_session=True,
        )  # fmt: skip
    stderr = lambda: (tmp_path / "stderr").read_text(errors="replace")  # noqa: E731
    wait_for((hold / "writing").exists, "the first write", proc)
    os.killpg(proc.pid, signal.SIGINT)
    wait_for(lambda: "stopping (Ctrl-C)" in stderr(), "the Ctrl-C to be noted", proc, 60)
    (hold / "resume").touch()
    proc.stdout.read()
    assert proc.wait(timeout=TIMEOUT) == 130, stderr()
    assert "1 image(s) changed, 1 not reached" in stderr()
    status = {Path(r["image"]).name: r for r in json.loads(report.read_text())["images"]}
    assert status["a.qcow2"]["status"] == "changed"
    assert [k["fingerprint"] for k in status["a.qcow2"]["authorized_keys"]] == [public_key_fingerprint(stays)]
    assert status["b.qcow2"]["status"] == "interrupted"
    assert sha256(images[1]) == before[images[1]]  # not reached: byte-identical
    assert sha256(images[0]) != before[images[0]]
