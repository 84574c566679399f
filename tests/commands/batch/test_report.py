"""`zvm-provision batch-report` on shard reports and password files written here as batch --shard writes them
(the real command, in a process of its own); and the out-dir lock between processes.

test_rollout.py runs real shards through the appliance and merges what they wrote.
"""

from __future__ import annotations

import csv
import hashlib
import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from provision.commands.batch.lock import OutputLock, lock_offset
from provision.core.manifest import shard_slice
from provision.errors import ImageInUseError
from tests.support.command import command_env, zvm

ROOT = Path(__file__).resolve().parents[3]
ROWS = ["alice", "bob", "carol", "dave"]
SHA = "5e" * 32


def batch_report(*args: str | Path) -> subprocess.CompletedProcess:
    return zvm("batch-report", *args, timeout=60)


def write_shard(folder: Path, index: int, count: int, *, users=None, sha=SHA, status="seeded",
                passwords: dict[str, str] | None = None) -> None:
    names = list(shard_slice(ROWS, index, count)) if users is None else users
    data = {
        "base": "/srv/zvm/zvm.qcow2", "overlay": False, "interrupted": False,
        "manifest": {"path": "/srv/zvm/staff.csv", "sha256": sha, "rows": ROWS},
        "shard": {"index": index, "count": count},
        "users": [{"name": n, "image": str(folder / f"{n}.qcow2"), "status": status,
                   "password": "generated" if passwords and n in passwords else "given"} for n in names],
    }
    folder.mkdir(exist_ok=True)
    (folder / f"report-{index}-of-{count}.json").write_text(json.dumps(data))
    if passwords:
        path = folder / f"initial-passwords-{index}-of-{count}.csv"
        with open(path, "w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows([("name", "password"), *passwords.items()])
        path.chmod(0o600)


def test_shards_in_one_folder_merge_into_report_json_and_a_private_passwords_file(tmp_path):
    write_shard(tmp_path, 1, 2, passwords={"alice": "alice-pw"})
    write_shard(tmp_path, 2, 2, passwords={"dave": "dave,pw \"quoted\""})
    result = batch_report(tmp_path)
    assert result.returncode == 0, result.stderr
    merged = json.loads((tmp_path / "report.json").read_text())
    assert [u["name"] for u in merged["users"]] == ROWS
    assert merged["manifest"]["sha256"] == SHA and merged["shard"] is None
    passwords = tmp_path / "initial-passwords.csv"
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    assert passwords.read_text() == 'name,password\nalice,alice-pw\ndave,"dave,pw ""quoted"""\n'
    assert "4 rows from 2 shards, each row once" in result.stdout
    assert "initial-passwords-1-of-2.csv" in result.stdout  # the shards' files are named, to delete after
    assert "alice-pw" not in result.stdout + result.stderr


def test_shards_in_several_folders_need_out_dir(tmp_path):
    write_shard(tmp_path / "a", 1, 2)
    write_shard(tmp_path / "b", 2, 2)
    refused = batch_report(tmp_path / "a", tmp_path / "b")
    assert refused.returncode == 2 and "--out-dir" in refused.stderr
    merged = batch_report(tmp_path / "a", tmp_path / "b", "--out-dir", tmp_path / "all")
    assert merged.returncode == 0, merged.stderr
    assert [u["name"] for u in json.loads((tmp_path / "all" / "report.json").read_text())["users"]] == ROWS


@pytest.mark.parametrize(
    ("shards", "words"),
    [
        ([(1, 2, {}), ], ["no report from shard 2 of 2 (its rows: carol, dave)"]),
        ([(1, 2, {"users": ["alice", "bob", "carol"]}), (2, 2, {})], ["row 'carol' is in 2 reports"]),
        ([(1, 2, {"users": ["alice"]}), (2, 2, {})], ["1 row of the manifest in no report: bob"]),
        ([(1, 2, {}), (2, 2, {"sha": "00" * 32})], ["the reports disagree on the manifest"]),
        ([(1, 2, {}), (2, 3, {})], ["the reports disagree on the number of shards"]),
    ],
)
def test_shards_that_do_not_add_up_exit_1_naming_why_and_write_nothing(tmp_path, shards, words):
    for index, count, extra in shards:
        write_shard(tmp_path, index, count, **extra)
    result = batch_report(tmp_path)
    assert result.returncode == 1, result.stderr
    assert "the shard reports do not add up to the manifest; nothing was written" in result.stderr
    for word in words:
        assert word in result.stderr
    assert not (tmp_path / "report.json").exists()


def test_failed_images_are_named_and_exit_1_but_the_report_is_written(tmp_path):
    write_shard(tmp_path, 1, 2)
    write_shard(tmp_path, 2, 2, status="failed")
    result = batch_report(tmp_path)
    assert result.returncode == 1
    assert "2 images not complete" in result.stdout and "failed      carol  (shard 2 of 2)" in result.stdout
    assert (tmp_path / "report.json").exists()


def test_a_folder_without_shard_reports_is_a_usage_error(tmp_path):
    (tmp_path / "report.json").write_text("{}")
    result = batch_report(tmp_path)
    assert result.returncode == 2 and "no shard report (report-K-of-N.json)" in result.stderr


def test_a_bad_or_renamed_report_is_named(tmp_path):
    write_shard(tmp_path, 1, 2)
    write_shard(tmp_path, 2, 2)
    (tmp_path / "report-2-of-2.json").rename(tmp_path / "report-2-of-3.json")
    (tmp_path / "report-3-of-3.json").write_text("not json")
    result = batch_report(tmp_path)
    assert result.returncode == 1
    assert f"{tmp_path / 'report-2-of-3.json'}: says it is shard 2 of 2; was it renamed?" in result.stderr
    assert f"{tmp_path / 'report-3-of-3.json'}: not JSON" in result.stderr


def test_a_shard_passwords_file_others_can_read_is_refused(tmp_path):
    write_shard(tmp_path, 1, 1, passwords={"alice": "pw-alice"})
    (tmp_path / "initial-passwords-1-of-1.csv").chmod(0o644)
    result = batch_report(tmp_path)
    assert result.returncode == 1
    assert "every user can read it" in result.stderr and "chmod go-rwx" in result.stderr
    assert not (tmp_path / "initial-passwords.csv").exists() and "pw-alice" not in result.stderr


# -- the lock, between processes ---------------------------------------------------------------------


class Holder:
    """Another process holding DIR's lock bytes for `files`, as a running batch does."""

    def __init__(self, folder: Path, files: list[str]) -> None:
        code = ("import sys; from pathlib import Path; from provision.commands.batch.lock import OutputLock\n"
                f"with OutputLock(Path({str(folder)!r}), {files!r}):\n"
                "    print('held', flush=True); sys.stdin.read()")
        self.process = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=command_env())
        assert self.process.stdout.readline() == "held\n"

    def __enter__(self) -> Holder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


def test_runs_owning_different_files_share_a_folder_and_the_same_file_is_refused(tmp_path):
    with Holder(tmp_path, ["alice.qcow2", "bob.qcow2", "report-1-of-2.json"]):
        with OutputLock(tmp_path, ["carol.qcow2", "dave.qcow2", "report-2-of-2.json"]):
            pass  # the other shard: no image in common
        with pytest.raises(ImageInUseError) as caught, OutputLock(tmp_path, ["ALICE.qcow2", "carol.qcow2"]):
            pass
    assert caught.value.message == (f"another zvm-provision run (batch, keys or batch-report) is writing to "
                                    f"{tmp_path}: ALICE.qcow2")
    with OutputLock(tmp_path, ["alice.qcow2"]):
        pass  # the holder is gone: its bytes with it
    # as batch --help and README's exit-code table say it (they said "the same --out-dir")
    from provision.errors import ExitCode, exit_codes_of
    assert "the lock is per file: the shards of one roll-out share the folder" in exit_codes_of("batch")[
        ExitCode.IMAGE_IN_USE]


def test_batch_report_waits_for_no_shard_it_merges_exit_4_while_one_still_writes(tmp_path):
    write_shard(tmp_path, 1, 2)
    write_shard(tmp_path, 2, 2)
    with Holder(tmp_path, ["report-2-of-2.json"]):
        result = batch_report(tmp_path)
    assert result.returncode == 4, result.stderr
    assert "report-2-of-2.json" in result.stderr and not (tmp_path / "report.json").exists()
    assert batch_report(tmp_path).returncode == 0


def test_batch_report_is_exit_4_while_a_shard_that_has_not_reported_yet_still_runs(tmp_path):
    """README: batch-report while shards still run exits 4, also for a shard whose report is not there yet."""
    write_shard(tmp_path, 2, 3)
    write_shard(tmp_path, 3, 3)
    running = list(shard_slice(ROWS, 1, 3))
    with Holder(tmp_path, [f"{name}.qcow2" for name in running] + ["report-1-of-3.json",
                                                                   "initial-passwords-1-of-3.csv"]):
        result = batch_report(tmp_path)
    assert result.returncode == 4, result.stderr
    assert "report-1-of-3.json" in result.stderr and not (tmp_path / "report.json").exists()
    gone = batch_report(tmp_path)  # shard 1 stopped without a report: the shards do not add up
    assert gone.returncode == 1 and "no report from shard 1 of 3" in gone.stderr


def test_lock_offsets_are_distinct_and_case_blind():
    offsets = {lock_offset(f"user{n}.qcow2") for n in range(5000)}
    assert len(offsets) == 5000 and all(0 <= o < 2**62 for o in offsets)
    assert lock_offset("Alice.qcow2") == lock_offset("alice.qcow2") != lock_offset("report.json")


def test_one_folder_given_twice_is_read_once(tmp_path):
    write_shard(tmp_path, 1, 1)
    result = batch_report(tmp_path, f"{tmp_path}/../{tmp_path.name}", "--out-dir", tmp_path)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------------------------
# The images are checked against the sizes and sha256 the shards recorded: report.json certifies only those


def write_images(folder: Path, index: int, count: int) -> dict[str, Path]:
    """A shard's report whose entries record each image's size and sha256, as batch writes them."""
    write_shard(folder, index, count)
    report_path = folder / f"report-{index}-of-{count}.json"
    data = json.loads(report_path.read_text())
    images = {}
    for entry in data["users"]:
        image = folder / f"{entry['name']}.qcow2"
        image.write_bytes(f"image of {entry['name']}\n".encode() * 1000)
        entry.update(format="qcow2", compressed=False, size=image.stat().st_size,
                     sha256=hashlib.sha256(image.read_bytes()).hexdigest())
        images[entry["name"]] = image
    report_path.write_text(json.dumps(data))
    return images


def edit_entry(folder: Path, index: int, count: int, name: str, **fields) -> None:
    report_path = folder / f"report-{index}-of-{count}.json"
    data = json.loads(report_path.read_text())
    next(entry for entry in data["users"] if entry["name"] == name).update(fields)
    report_path.write_text(json.dumps(data))


def test_images_that_match_their_shards_reports_are_merged(tmp_path):
    write_images(tmp_path, 1, 2)
    write_images(tmp_path, 2, 2)
    result = batch_report(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "4 images checked against the shards' sizes and sha256" in result.stdout


def test_a_changed_sha256_a_changed_image_and_a_missing_one_exit_1_naming_each_and_nothing_is_written(tmp_path):
    images = {**write_images(tmp_path, 1, 2), **write_images(tmp_path, 2, 2)}
    edit_entry(tmp_path, 1, 2, "alice", sha256="0" * 64)  # the report lies
    with open(images["bob"], "ab") as handle:  # the image changed after the shard recorded it
        handle.write(b"more")
    images["dave"].unlink()
    result = batch_report(tmp_path)
    assert result.returncode == 1, result.stderr
    assert (f"alice: {images['alice']} does not match report-1-of-2.json (its sha256 is not the "
            "recorded 000000000000...)") in result.stderr
    assert f"bob: {images['bob']} does not match report-1-of-2.json (its size is 13004 bytes, not the recorded " \
           "13000)" in result.stderr
    assert f"dave: {images['dave']} is missing (report-2-of-2.json records it)" in result.stderr
    assert "carol" not in result.stderr
    assert not (tmp_path / "report.json").exists()
    skipped = batch_report(tmp_path, "--no-verify")  # a huge roll-out may skip the check, knowingly
    assert skipped.returncode == 0, skipped.stderr
    assert "not checked (--no-verify)" in skipped.stdout


def test_batch_report_s_error_is_one_line_its_problems_one_indented_line_each_then_one_hint(tmp_path):
    """README ("Exit codes"): the error's line, the problems found between it and the hint, one line each."""
    write_shard(tmp_path, 1, 3)
    result = batch_report(tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "zvm-provision: error: the shard reports do not add up to the manifest; nothing was written:"
    assert lines[-1].startswith("hint: ") and sum(line.startswith("hint: ") for line in lines) == 1
    problems = lines[1:-1]
    assert problems and all(line.startswith("  ") for line in problems)
    assert any("no report from shard 2 of 3" in line for line in problems)
    assert any("no report from shard 3 of 3" in line for line in problems)
