"""commands.workcopy: one naming scheme for the hidden files of an image being made, and the places that look
for leftovers agreeing with it (seed --output's note, batch's clean-up, keys' copies, the fleet's folders); the
working copy -> convert -> final name sequence with the real qemu-img (no appliance)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from provision.commands.fleet import keys
from provision.commands.fleet.images import gather_images
from provision.commands.seed.output import leftovers_note
from provision.commands.workcopy import WorkCopy, remove_leftovers, tokened_leftovers
from provision.core.outputformat import OutputFormat, OutputSpec
from provision.errors import UsageError
from provision.guest.diskformat import probe_image


def test_the_hidden_names_are_the_final_name_and_the_stage():
    final = Path("/out/alice.vmdk")
    assert (WorkCopy(final).partial.name, WorkCopy(final).converting.name) == (
        ".alice.vmdk.partial", ".alice.vmdk.converting")
    assert (WorkCopy(final, "0a1b").partial.name, WorkCopy(final, "0a1b").converting.name) == (
        ".alice.vmdk.partial-0a1b", ".alice.vmdk.converting-0a1b")
    assert keys._partial(Path("/out/alice.qcow2")) == WorkCopy(Path("/out/alice.qcow2")).partial


def test_each_look_for_leftovers_finds_its_own_kind_only(tmp_path):
    """seed --output names only tokened files (an unlocked run's); batch removes only untokened ones (its locked
    folder's), in every format; the fleet never takes any of them for an image."""
    locked = [WorkCopy(tmp_path / f"alice{suffix}").partial for suffix in (".qcow2", ".raw")] + [
        WorkCopy(tmp_path / f"alice{suffix}").converting for suffix in (".vmdk", ".vdi")]
    seeds = [WorkCopy(tmp_path / "alice.qcow2", "0a1b").partial, WorkCopy(tmp_path / "alice.qcow2", "ff").converting]
    for path in [*locked, *seeds]:
        path.write_bytes(b"half an image")
    (tmp_path / "bob.qcow2").write_bytes(b"")
    assert tokened_leftovers(tmp_path / "alice.qcow2") == sorted(seeds)
    note = leftovers_note(tmp_path / "alice.qcow2")
    assert note is not None and all(p.name in note for p in seeds)
    assert gather_images([tmp_path]) == [tmp_path / "bob.qcow2"]
    remove_leftovers(tmp_path, "alice")
    assert sorted(os.listdir(tmp_path)) == sorted(["bob.qcow2", *(p.name for p in seeds)])


@pytest.fixture
def base(qemu_img, tmp_path) -> Path:
    path = tmp_path / "base.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "64M")
    return path


def formats(path: Path) -> tuple[str, str | None]:
    found = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(path)], check=True,
                                      capture_output=True, text=True).stdout)
    return found["format"], found.get("backing-filename")


def test_a_converted_copy_gets_its_final_name_and_no_hidden_file_is_left(base, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    work = WorkCopy(out / "alice.vdi", "0a1b")
    work.make(probe_image(base), overlay=True)
    assert formats(work.partial) == ("qcow2", str(base))
    work.finish(OutputSpec(OutputFormat.VDI), convert=True, replace=False)
    assert os.listdir(out) == ["alice.vdi"] and formats(out / "alice.vdi") == ("vdi", None)


def test_an_existing_final_name_is_replaced_or_never_touched_as_asked(base, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "alice.qcow2").write_bytes(b"there first")
    work = WorkCopy(out / "alice.qcow2", "0a1b")
    work.make(probe_image(base), overlay=False)
    with pytest.raises(UsageError, match="appeared while the image was made"):
        work.finish(OutputSpec(), convert=False, replace=False)
    assert os.listdir(out) == ["alice.qcow2"] and (out / "alice.qcow2").read_bytes() == b"there first"
    work = WorkCopy(out / "alice.qcow2")
    work.make(probe_image(base), overlay=False)
    work.finish(OutputSpec(), convert=False, replace=True)
    assert os.listdir(out) == ["alice.qcow2"] and formats(out / "alice.qcow2") == ("qcow2", None)
