"""Files the tool creates that hold secrets (issue 25): private from their creation whatever the umask, and never
written through a link planted under a working file's name, through the real command (batch, keys --out-dir,
seed --output) and the real qemu-img.

qemu-img is watched by a stand-in on PATH that runs the real one: for every file it is given inside the test's
folders it records the mode before qemu-img starts and after it ends (before the tool could chmod anything), and
the umask the tool ran it under. One batch run, one keys run and one seed --output run share the module.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provision.commands.workcopy import WorkCopy
from provision.core.outputformat import OutputFormat, OutputSpec
from provision.errors import UsageError
from provision.guest.diskformat import probe_image
from tests.support.command import zvm
from tests.support.keyfactory import public_line

REAL_QEMU_IMG = shutil.which("qemu-img") or "qemu-img"
SENTINEL = b"outside DIR: never to be written through\n"
PASSWORD = "Private-Files-Pa55word-7d1e"


def watching_qemu_img(folder: Path, watched: Path, log: Path) -> dict[str, str]:
    """PATH with a qemu-img stand-in first that logs, per run, the umask and each watched file's mode."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "qemu-img"
    script.write_text(f"""#!{sys.executable} -I
import json, os, stat, subprocess, sys
args = sys.argv[1:]
def modes():
    found = {{}}
    for arg in args:
        if arg.startswith({str(watched)!r}) and os.path.lexists(arg):
            st = os.lstat(arg)
            found[arg] = [stat.S_IMODE(st.st_mode), stat.S_ISLNK(st.st_mode)]
    return found
mask = os.umask(0); os.umask(mask)
before = modes()
code = subprocess.run([{REAL_QEMU_IMG!r}, *args]).returncode
with open({str(log)!r}, "a") as fh:
    fh.write(json.dumps({{"args": args, "umask": mask, "before": before, "after": modes()}}) + "\\n")
sys.exit(code)
""")
    script.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)  # the command's process inherits it
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture(scope="module")
def runs(sample_disk_template: Path, tmp_path_factory: pytest.TempPathFactory):
    top = tmp_path_factory.mktemp("private")
    watched = top / "w"
    watched.mkdir()
    log = top / "qemu-img.jsonl"
    env = watching_qemu_img(top / "bin", watched, log)
    key = top / "alice.pub"
    key.write_text(public_line(comment="alice@laptop") + "\n")
    manifest = top / "staff.csv"
    manifest.write_text("name,ssh_keys,password_hash,netbird_setup_key,netbird_management_url,hostname\n"
                        f"alice,{key},,,,\n")
    outside = top / "outside"
    outside.mkdir()
    batch_out = watched / "new" / "batch"  # two folders the run creates
    seed_out = watched / "seeded"
    seed_out.mkdir()
    with umask(0o000):
        with ThreadPoolExecutor(2) as pool:
            batch = pool.submit(zvm, "batch", manifest, "--base", sample_disk_template, "--out-dir", batch_out,
                                "--format", "raw", "--jobs", "1", env=env)
            seed = pool.submit(zvm, "seed", sample_disk_template, "--output", seed_out / "alice.vmdk",
                               "--password-stdin", "--ssh-key", key, "--yes", stdin=PASSWORD + "\n", env=env)
            result = {"batch": batch.result(), "seed": seed.result()}
        # keys --out-dir into a folder where a link named like its working file points outside
        keys_out = watched / "keys"
        keys_out.mkdir()
        planted = outside / "target"
        planted.write_bytes(SENTINEL)
        os.symlink(planted, keys_out / ".alice.qcow2.partial")
        image = batch_out / "alice.raw"  # batch's image: it has a way in for keys to keep
        added = top / "it.pub"
        added.write_text(public_line(comment="it@desk") + "\n")
        with umask(0o022):
            result["keys"] = zvm("keys", image, "--add-key", added, "--out-dir", keys_out, env=env)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    return {"top": top, "runs": result, "calls": calls, "batch_out": batch_out, "seed_out": seed_out,
            "keys_out": keys_out, "planted": planted, "watched": watched}


@pytest.mark.appliance
@pytest.mark.parametrize("name", ["batch", "seed", "keys"])
def test_each_command_succeeds(runs, name):
    run = runs["runs"][name]
    assert run.returncode == 0, (name, run.stdout, run.stderr)


@pytest.mark.appliance
def test_images_and_working_files_are_0600_before_and_after_qemu_img_writes_them(runs):
    """Every file qemu-img was given under the output folders was there, 0600 and not a link, before it
    started (created by the tool, exclusively) and still 0600 when it ended; qemu-img ran under umask 077."""
    # create and convert write their last argument; rebase rewrites the overlay (last) and points it at the copy
    # its commit writes into (-b), so both are checked. batch seeds an overlay (.seeding) and, --format raw,
    # converts it (.converting); seed --output's overlay is its .partial-TOKEN; keys copies into .partial.
    writes = [c for c in runs["calls"] if c["args"][0] in ("create", "convert", "rebase", "commit")]
    targets = [[c["args"][-1], *([c["args"][c["args"].index("-b") + 1]] if c["args"][0] == "rebase" else [])]
               for c in writes]
    named = [t for ts in targets for t in ts]
    assert all(t.startswith(str(runs["watched"])) for t in named), named  # never the base, never elsewhere
    for stage in (".seeding", ".partial", ".converting"):
        assert any(stage in t for t in named), (stage, named)
    for call, files in zip(writes, targets):
        assert call["umask"] == 0o077, call
        for target in files:
            assert call["before"].get(target) == [0o600, False], call
            assert call["after"].get(target) == [0o600, False], call


@pytest.mark.appliance
def test_outputs_and_passwords_are_0600_and_created_folders_0700_under_umask_000(runs):
    batch_out, seed_out, keys_out = runs["batch_out"], runs["seed_out"], runs["keys_out"]
    assert mode(batch_out) == 0o700 and mode(batch_out.parent) == 0o700
    assert mode(batch_out / "alice.raw") == 0o600
    assert mode(batch_out / "initial-passwords.csv") == 0o600
    assert mode(seed_out / "alice.vmdk") == 0o600
    assert mode(keys_out / "alice.qcow2") == 0o600
    left = [p for folder in (batch_out, seed_out, keys_out) for p in folder.iterdir()
            if ".partial" in p.name or ".converting" in p.name]
    assert left == []


@pytest.mark.appliance
def test_keys_out_dir_never_writes_through_a_link_planted_as_its_working_file(runs):
    keys_out = runs["keys_out"]
    assert runs["planted"].read_bytes() == SENTINEL  # the link's target: untouched
    assert not (keys_out / "alice.qcow2").is_symlink()
    assert stat.S_ISREG(os.lstat(keys_out / "alice.qcow2").st_mode)
    assert probe_image(keys_out / "alice.qcow2").format == "qcow2"


# -- the working copy itself, with the real qemu-img (no appliance) --------------------------------------


@pytest.fixture
def base(qemu_img, tmp_path) -> Path:
    path = tmp_path / "base.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(path), "16M")
    return path


@pytest.mark.parametrize("stage", ["partial", "converting"])
@pytest.mark.parametrize("token", ["", "0a1b"])  # batch and keys hold the lock; seed --output has a token
def test_a_link_planted_under_a_working_name_is_never_written_through(base, tmp_path, stage, token):
    out = tmp_path / "out"
    out.mkdir()
    target = tmp_path / "target"
    target.write_bytes(SENTINEL)
    work = WorkCopy(out / "alice.raw", token)
    os.symlink(target, getattr(work, stage))
    with pytest.raises(UsageError, match="never reused or written through"):
        work.make(probe_image(base), overlay=True)
        work.finish(OutputSpec(OutputFormat.RAW), convert=True, replace=False)
    assert target.read_bytes() == SENTINEL
    assert not (out / "alice.raw").exists()


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_a_working_copy_is_0600_whatever_the_umask(base, tmp_path, mask):
    work = WorkCopy(tmp_path / "alice.qcow2", "0a1b")
    with umask(mask):
        work.make(probe_image(base), overlay=False)
    assert mode(work.partial) == 0o600
