"""`seed IMAGE --output OUT` in every format OUT's suffix names (raw, vmdk, vdi), through the real command and
appliance: each output is opened by qemu-img as that format and read back, seeded; IMAGE stays byte-identical.

Launches, in one module fixture: three seedings (one per format) and one read-back of all three.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tests.support.command import zvm
from tests.support.files import copy_disk, sha256
from tests.support.keyfactory import public_line
from tests.support.persist import read_back

pytestmark = pytest.mark.appliance

FORMATS = ("raw", "vmdk", "vdi")
AUTHORIZED_KEYS = "/home/zvm/.ssh/authorized_keys"


def qemu_img(*args: str) -> str:
    tool = shutil.which("qemu-img")
    assert tool is not None, "qemu-img is not installed"
    return subprocess.run([tool, *args], check=True, capture_output=True, text=True).stdout


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, sample_disk_template):
    work = tmp_path_factory.mktemp("formats")
    source = copy_disk(sample_disk_template, work / "base.qcow2")
    before = sha256(source)
    key = work / "alice.pub"
    key.write_text(public_line(comment="alice@formats") + "\n")
    runs = {fmt: zvm("seed", source, "--output", work / f"alice.{fmt}", "--no-password", "--ssh-key", key, "--json")
            for fmt in FORMATS}
    infos = {fmt: json.loads(qemu_img("info", "--output=json", str(work / f"alice.{fmt}")))
             for fmt in FORMATS if runs[fmt].returncode == 0}
    readable = []  # raw is read as it is; vmdk and vdi through a qcow2 copy qemu-img converts them to
    for fmt in FORMATS:
        if fmt in infos:
            path = work / f"alice.{fmt}"
            if fmt != "raw":
                path = work / f"alice-{fmt}.qcow2"
                qemu_img("convert", "-f", fmt, "-O", "qcow2", str(work / f"alice.{fmt}"), str(path))
            readable.append((fmt, path))
    back = dict(zip([fmt for fmt, _ in readable], read_back([path for _, path in readable]), strict=True))
    return {"runs": runs, "infos": infos, "back": back, "source_unchanged": sha256(source) == before}


@pytest.mark.parametrize("fmt", FORMATS)
def test_seed_output_writes_the_format_its_suffix_names_and_it_holds_the_seeding(outputs, fmt):
    run = outputs["runs"][fmt]
    assert run.returncode == 0, run.stderr
    assert outputs["infos"][fmt]["format"] == fmt
    keys = outputs["back"][fmt]["files"][AUTHORIZED_KEYS].decode()
    assert "alice@formats" in keys
    assert outputs["back"][fmt]["stats"]["/etc/ssh/ssh_host_ed25519_key"] is not None


def test_seed_output_leaves_image_byte_identical_in_every_format(outputs):
    assert outputs["source_unchanged"]
