"""Images made to hand over, through the real command and appliance: `seed IMAGE --output OUT` (compressed,
converted, refused, interrupted) and `batch --format / --compress`.

Launches (15-60 s each under TCG), shared through module fixtures: seed --output --compress, inspect --check of
its output, seed --dry-run --output, seed --output with a failing qemu-img; batch --format vmdk (one
conversion made to fail), its resume (the vmdk images judged by report.json, the failed one made: one launch),
batch --format raw.
"""

from __future__ import annotations

import json
import os
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.command import zvm
from tests.support.files import copy_disk, sha256
from tests.support.keyfactory import public_line

PASSWORD = "hand-over password 1234"
# the image tool where this machine has it (found before any test puts a stand-in first on PATH)
REAL_QEMU_IMG = shutil.which("qemu-img") or "qemu-img"


def path_first(folder: Path) -> dict[str, str]:
    """PATH with `folder` (stand-in programs) first."""
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def qemu_info(path: Path) -> dict:
    out = subprocess.run([REAL_QEMU_IMG, "info", "--output=json", str(path)], check=True, capture_output=True,
                         text=True).stdout
    return json.loads(out)


def failing_qemu_img(folder: Path, output_format: str, target_contains: str = "") -> Path:
    """A qemu-img stand-in on PATH: a conversion to `output_format` whose target names `target_contains` writes
    part of its target, then fails, as a full disk or a crash would leave it; everything else is the real one."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "qemu-img"
    script.write_text(f"""#!{sys.executable}
import os, sys
args = sys.argv[1:]
if args[:1] == ["convert"] and "-O" in args and args[args.index("-O") + 1] == {output_format!r} \\
        and {target_contains!r} in os.path.basename(args[-1]):
    with open(args[-1], "wb") as handle:
        handle.write(b"half an image")
    sys.stderr.write("qemu-img: stand-in: error while writing: Input/output error\\n")
    sys.exit(1)
os.execv({REAL_QEMU_IMG!r}, [{REAL_QEMU_IMG!r}, *args])
""")
    script.chmod(0o755)
    return folder


def slow_qemu_img(folder: Path, ready: Path) -> Path:
    """A qemu-img stand-in on PATH whose conversions write part of their target, say so in `ready`, then wait
    (to be stopped by Ctrl-C); everything else is the real one."""
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / "qemu-img"
    script.write_text(f"""#!{sys.executable}
import os, sys, time
args = sys.argv[1:]
if args[:1] == ["convert"] and os.path.basename(args[-1]).startswith(".") and "converting" in args[-1]:
    with open(args[-1], "wb") as handle:
        handle.write(b"half an image")
    open({str(ready)!r}, "w").close()
    time.sleep(600)
os.execv({REAL_QEMU_IMG!r}, [{REAL_QEMU_IMG!r}, *args])
""")
    script.chmod(0o755)
    return folder


def ctrl_c_while_converting(image: Path, out: Path, key: Path, work: Path) -> subprocess.CompletedProcess[str]:
    """seed --output, with Ctrl-C sent to its process group (as a terminal does) while qemu-img converts."""
    ready = work / "converting.ready"
    env = {**os.environ, "ZVM_PROVISION_ACCEL": "tcg",
           "PATH": f"{slow_qemu_img(work / 'slow-bin', ready)}{os.pathsep}{os.environ['PATH']}"}
    child = subprocess.Popen([sys.executable, "-m", "provision", "seed", str(image), "--output", str(out),
                              "--no-password", "--ssh-key", str(key), "--yes"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 600
    while not ready.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    if child.poll() is None:
        os.killpg(child.pid, signal.SIGINT)
    stdout, stderr = child.communicate(timeout=120)
    ready.unlink(missing_ok=True)
    return subprocess.CompletedProcess(child.args, child.returncode, stdout, stderr)


def leftovers(folder: Path) -> list[str]:
    return sorted(name for name in os.listdir(folder) if name.startswith("."))


# -- seed IMAGE --output OUT ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def handed_over(sample_disk_template: Path, tmp_path_factory: pytest.TempPathFactory):
    work = tmp_path_factory.mktemp("handover")
    image = copy_disk(sample_disk_template, work / "image.qcow2")
    key = work / "alice.pub"
    key.write_text(public_line(comment="alice@laptop") + "\n")
    before = sha256(image)
    runs = {
        "compress": zvm("seed", str(image), "--output", str(work / "alice.qcow2"), "--compress", "--password-stdin",
                        "--ssh-key", str(key), "--json", stdin=PASSWORD.encode() + b"\n"),
        "dry-run": zvm("seed", str(image), "--output", str(work / "dry.vmdk"), "--dry-run", "--no-password",
                       "--ssh-key", str(key), "--json"),
        "failing": zvm("seed", str(image), "--output", str(work / "bob.vmdk"), "--no-password", "--ssh-key", str(key),
                       "--json", env=path_first(failing_qemu_img(work / "bin", "vmdk"))),
    }
    runs["ctrl-c"] = ctrl_c_while_converting(image, work / "carol.raw", key, work)
    runs["inspect"] = zvm("inspect", str(work / "alice.qcow2"), "--check")
    return {"work": work, "image": image, "before": before, "after": sha256(image), "runs": runs}


@pytest.mark.appliance
def test_seed_output_compress_writes_a_valid_compressed_qcow2_that_inspect_check_passes(handed_over):
    work, runs = handed_over["work"], handed_over["runs"]
    assert runs["compress"].returncode == 0, runs["compress"].stderr
    out = work / "alice.qcow2"
    info = qemu_info(out)
    assert info["format"] == "qcow2"
    assert info["format-specific"]["data"]["compression-type"] == "zstd"
    subprocess.run([REAL_QEMU_IMG, "check", str(out)], check=True, capture_output=True)
    compressed = subprocess.run([REAL_QEMU_IMG, "check", "--output=json", str(out)], check=True,
                                capture_output=True, text=True).stdout
    assert json.loads(compressed)["compressed-clusters"] > 0
    assert runs["inspect"].returncode == 0, runs["inspect"].stdout + runs["inspect"].stderr
    seeded = json.loads(runs["compress"].stdout)
    assert seeded["image"] == str(out) and seeded["source"] == str(handed_over["image"])
    assert seeded["output"] == {"format": "qcow2", "compressed": True, "size": out.stat().st_size,
                                "sha256": sha256(out)}
    assert PASSWORD not in runs["compress"].stdout + runs["compress"].stderr


@pytest.mark.appliance
def test_seed_output_leaves_the_input_byte_identical_and_no_temporary_file(handed_over):
    assert handed_over["after"] == handed_over["before"]
    assert leftovers(handed_over["work"]) == []


@pytest.mark.appliance
def test_seed_dry_run_with_output_writes_nothing(handed_over):
    run = handed_over["runs"]["dry-run"]
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["dry_run"] is True
    assert not (handed_over["work"] / "dry.vmdk").exists()


@pytest.mark.appliance
def test_a_failed_conversion_leaves_no_output_and_no_temporary_file(handed_over):
    run = handed_over["runs"]["failing"]
    assert run.returncode == 1, run.stdout + run.stderr
    assert "qemu-img could not write the vmdk image: qemu-img: stand-in: error while writing" in run.stderr
    assert not os.path.lexists(handed_over["work"] / "bob.vmdk")
    assert leftovers(handed_over["work"]) == []


@pytest.mark.appliance
def test_ctrl_c_while_converting_leaves_no_output_and_no_temporary_file(handed_over):
    run = handed_over["runs"]["ctrl-c"]
    assert run.returncode == 130, run.stdout + run.stderr
    assert "was not created" in run.stderr and "was not changed" in run.stderr
    assert not os.path.lexists(handed_over["work"] / "carol.raw")
    assert leftovers(handed_over["work"]) == []


def test_output_refusals_come_before_anything_is_read(tmp_path):
    """No launch: each is refused before IMAGE is probed (IMAGE does not even exist)."""
    existing = tmp_path / "taken.qcow2"
    existing.write_bytes(b"someone's file")
    key = tmp_path / "k.pub"
    key.write_text(public_line() + "\n")
    common = ["--no-password", "--ssh-key", str(key), "--yes"]
    taken = zvm("seed", str(tmp_path / "missing.qcow2"), "--output", str(existing), *common)
    assert taken.returncode == 2 and "already exists; it is never overwritten" in taken.stderr
    assert existing.read_bytes() == b"someone's file"
    lone = zvm("seed", str(tmp_path / "missing.qcow2"), "--compress", *common)
    assert lone.returncode == 2 and "give it a name with --output OUT" in lone.stderr
    clash = zvm("seed", str(tmp_path / "missing.qcow2"), "--output", str(tmp_path / "x.qcow2"), "--format", "vdi",
                *common)
    assert clash.returncode == 2 and "ends in .qcow2, but --format is vdi" in clash.stderr
    assert sorted(os.listdir(tmp_path)) == ["k.pub", "taken.qcow2"]


def test_hidden_files_a_killed_output_run_left_are_named_before_anything_is_read_and_left_alone(tmp_path):
    """A run killed outright (SIGKILL, power lost) cannot remove its working files; the next run to the same OUT
    names them (they may be large) but does not remove them: another run may be writing them right now."""
    from provision.commands.workcopy import WorkCopy

    def working_names(out, token):
        return WorkCopy(out, token).partial, WorkCopy(out, token).converting

    out = tmp_path / "alice[1].qcow2"  # glob characters in the name are taken literally
    stale = [*working_names(out, "0a1b2c3d4e5f"), *working_names(out, "ffffffffffff")]
    others = [*working_names(tmp_path / "bob.qcow2", "0a1b2c3d4e5f"), tmp_path / ".alice1.qcow2.partial-x"]
    for path in stale + others:
        path.write_bytes(b"half an image")
    key = tmp_path / "k.pub"
    key.write_text(public_line() + "\n")
    result = zvm("seed", str(tmp_path / "missing.qcow2"), "--output", str(out), "--no-password", "--ssh-key",
                 str(key), "--yes")
    assert result.returncode == 2, result.stderr  # IMAGE does not exist: refused before any launch
    note = next(line for line in result.stderr.splitlines() if "left behind" in line)
    assert sorted(name for name in os.listdir(tmp_path) if name in note) == sorted(p.name for p in stale)
    assert "unless another zvm-provision is writing alice[1].qcow2 now" in note
    assert all(path.read_bytes() == b"half an image" for path in stale + others)
    quiet = zvm("seed", str(tmp_path / "missing.qcow2"), "--output", str(tmp_path / "carol.qcow2"),
                "--no-password", "--ssh-key", str(key), "--yes")
    assert quiet.returncode == 2 and "left behind" not in quiet.stderr, quiet.stderr


# -- batch --format / --compress ------------------------------------------------------------------------


def write_manifest(folder: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        (folder / f"{name}.pub").write_text(public_line(comment=f"{name}@laptop") + "\n")
    manifest = folder / "staff.csv"
    manifest.write_text("name,ssh_keys\n" + "".join(f"{name},{name}.pub\n" for name in names))
    return manifest


def report_entries(out: Path) -> dict[str, dict]:
    return {u["name"]: u for u in json.loads((out / "report.json").read_text())["users"]}


@pytest.fixture(scope="module")
def batch_formats(sample_disk_template: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("formats")
    manifest = write_manifest(folder, ("alice", "bob", "carol"))
    base = str(sample_disk_template)
    vmdk_out, raw_out = folder / "vmdk", folder / "raw"
    stand_in = failing_qemu_img(folder / "bin", "vmdk", target_contains="carol")
    first = zvm("batch", str(manifest), "--base", base, "--out-dir", str(vmdk_out), "--format", "vmdk", "--json",
                env=path_first(stand_in))
    first_report = report_entries(vmdk_out)
    first_files = sorted(os.listdir(vmdk_out))
    resumed = zvm("batch", str(manifest), "--base", base, "--out-dir", str(vmdk_out), "--format", "vmdk", "--json")
    (folder / "one").mkdir()
    raw_manifest = write_manifest(folder / "one", ("dave",))
    raw = zvm("batch", str(raw_manifest), "--base", base, "--out-dir", str(raw_out), "--format", "raw", "--json")
    return {"vmdk": vmdk_out, "raw": raw_out, "first": first, "first_report": first_report,
            "first_files": first_files, "resumed": resumed, "raw_run": raw}


def assert_entry_matches_file(entry: dict, path: Path, fmt: str) -> None:
    assert entry["image"] == str(path)
    assert (entry["format"], entry["compressed"]) == (fmt, False)
    assert entry["size"] == path.stat().st_size
    assert entry["sha256"] == sha256(path)
    assert qemu_info(path)["format"] == fmt


@pytest.mark.appliance
def test_batch_format_vmdk_writes_vmdk_images_recorded_with_size_and_sha256(batch_formats):
    first, out = batch_formats["first"], batch_formats["vmdk"]
    assert first.returncode == 1, first.stderr  # carol's conversion failed
    report = batch_formats["first_report"]
    assert report["carol"]["status"] == "failed"
    assert "qemu-img could not write the vmdk image" in report["carol"]["error"]
    assert report["carol"]["sha256"] is None
    for name in ("alice", "bob"):
        assert report[name]["status"] == "seeded"
        assert_entry_matches_file(report[name], out / f"{name}.vmdk", "vmdk")


@pytest.mark.appliance
def test_batch_failed_conversion_leaves_no_final_name_and_no_temporary_copy(batch_formats):
    assert batch_formats["first_files"] == [
        ".zvm-provision-batch.key", ".zvm-provision-batch.lock", "alice.vmdk", "bob.vmdk", "initial-passwords.csv",
        "report.json"]


@pytest.mark.appliance
def test_batch_resume_judges_vmdk_images_by_their_recorded_sha256_and_makes_the_failed_one(batch_formats):
    resumed, out = batch_formats["resumed"], batch_formats["vmdk"]
    assert resumed.returncode == 0, resumed.stderr
    report = report_entries(out)
    assert {n: report[n]["status"] for n in ("alice", "bob", "carol")} == {
        "alice": "skipped", "bob": "skipped", "carol": "seeded"}
    for name in ("alice", "bob", "carol"):
        assert_entry_matches_file(report[name], out / f"{name}.vmdk", "vmdk")
    assert report["alice"]["sha256"] == batch_formats["first_report"]["alice"]["sha256"]
    assert report["alice"]["host_key"] == batch_formats["first_report"]["alice"]["host_key"]


@pytest.mark.appliance
def test_batch_format_raw_writes_raw_images_recorded_with_size_and_sha256(batch_formats):
    run, out = batch_formats["raw_run"], batch_formats["raw"]
    assert run.returncode == 0, run.stderr
    entry = report_entries(out)["dave"]
    assert entry["status"] == "seeded"
    assert_entry_matches_file(entry, out / "dave.raw", "raw")
    assert leftovers(out) == [".zvm-provision-batch.key", ".zvm-provision-batch.lock"]


@pytest.mark.parametrize("option", [["--compress"], ["--format", "raw"], ["--format", "vdi"]])
def test_batch_overlay_with_compress_or_another_format_is_a_usage_error_with_nothing_created(tmp_path, option):
    manifest = write_manifest(tmp_path, ("alice",))
    run = zvm("batch", str(manifest), "--base", str(tmp_path / "no-base.qcow2"), "--out-dir", str(tmp_path / "out"),
              "--overlay", *option)
    assert run.returncode == 2, run.stderr
    assert "--overlay makes qcow2 overlays backed by the base; it cannot be combined with" in run.stderr
    assert not (tmp_path / "out").exists()


# -- resume of vmdk/vdi images: judged by report.json (pure: no appliance, no qemu) ------------------------


def judge_user(tmp_path: Path, *, password_hash=None, setup_key=None):
    from provision.core.credentials.sshkeys import parse_authorized_keys
    from provision.core.manifest import User

    keys = tuple(parse_authorized_keys(public_line(comment="alice@laptop") + "\n", "alice.pub"))
    return User("alice", keys, password_hash, setup_key, None, "zvm-alice")


def recorded_entry(image: Path, user, **changes) -> dict:
    from provision.core.credentials.sshkeys import key_summary

    entry = {"name": "alice", "status": "seeded", "format": "vmdk", "compressed": False,
             "size": image.stat().st_size, "sha256": sha256(image), "password": "generated",
             "authorized_keys": [key_summary(k) for k in user.keys], "netbird_setup_key_given": False,
             "netbird_management_url": None, "host_key": {"type": "ssh-ed25519", "fingerprint": "SHA256:x",
                                                          "known_hosts": "zvm ssh-ed25519 AAAA"},
             "machine_id": "0" * 32, "hostname": "zvm-alice"}
    entry.update(changes)
    return entry


def judge(tmp_path: Path, user, **changes):
    from provision.commands.batch.model import UserResult
    from provision.commands.batch.resume import _judge_by_report
    from provision.core.outputformat import OutputFormat, OutputSpec

    image = tmp_path / "alice.vmdk"
    if not image.exists():
        image.write_bytes(b"a vmdk this tool wrote" * 100)
    result = UserResult(user, image)
    entry = None if changes.pop("no_entry", False) else recorded_entry(image, user, **changes)
    return _judge_by_report(entry, user, result, OutputSpec(OutputFormat.VMDK)), result


def test_a_vmdk_recorded_with_its_sha256_and_this_rows_keys_is_complete(tmp_path):
    problems, result = judge(tmp_path, judge_user(tmp_path))
    assert problems == []
    assert result.output is not None and result.output.sha256 == sha256(tmp_path / "alice.vmdk")
    assert result.machine_id == "0" * 32 and result.host_key["fingerprint"] == "SHA256:x"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"no_entry": True}, "report.json has no record of it"),
    ({"status": "failed"}, "report.json records it as 'failed'"),
    ({"format": "vdi"}, "does not record it as a vmdk image"),
    ({"sha256": "0" * 64}, "not the file report.json recorded"),
    ({"size": 1}, "not the file report.json recorded"),
    ({"authorized_keys": []}, "authorized keys differ"),
    ({"password": "given"}, "asks for a generated one"),
    ({"hostname": "zvm-bob"}, "hostname differs"),
])
def test_a_vmdk_that_does_not_match_its_record_or_row_is_made_again(tmp_path, changes, reason):
    problems, result = judge(tmp_path, judge_user(tmp_path), **changes)
    assert any(reason in p for p in problems), problems
    assert result.output is None


def test_a_vmdk_whose_row_gives_a_password_hash_is_made_again(tmp_path):
    from provision.secret import Secret

    problems, _ = judge(tmp_path, judge_user(tmp_path, password_hash=Secret("$6$x$y")), password="given")
    assert problems == ["its password hash cannot be checked without opening it (a vmdk image is not opened)"]


def test_a_qcow2_written_uncompressed_is_made_again_for_compress_and_the_reverse():
    from provision.commands.batch.resume import format_problems
    from provision.core.outputformat import OutputSpec

    compressed = OutputSpec(compress=True)
    assert format_problems(None, compressed) == []  # no record: inspect's verdict stands
    assert format_problems({"name": "alice"}, compressed) == [
        "it was written as qcow2; this run asks for compressed qcow2"]  # an entry from before --compress
    assert format_problems({"compressed": True}, OutputSpec()) == [
        "it was written as compressed qcow2; this run asks for qcow2"]
    assert format_problems({"compressed": True}, compressed) == []


def test_a_killed_runs_hidden_conversions_in_any_format_are_removed_before_the_next(tmp_path):
    from provision.commands.batch import run

    user = judge_user(tmp_path)
    stale = [tmp_path / ".alice.qcow2.partial", tmp_path / ".alice.vmdk.converting", tmp_path / ".alice.raw.converting"]
    for path in stale:
        path.write_bytes(b"half an image")
    kept = tmp_path / "alice.vmdk"
    kept.write_bytes(b"a whole image")
    run._remove_partials(tmp_path, [user])
    assert sorted(os.listdir(tmp_path)) == ["alice.vmdk"]
