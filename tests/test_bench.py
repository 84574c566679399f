"""scripts/bench.py: its arithmetic, and that its guestfish baseline does the same writes as zvm-provision (a
ratio against a baseline that does less, or other, work would mean nothing). Not a timing test: no duration
is asserted."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TEST_ACCEL

REPO = Path(__file__).resolve().parents[1]


def load_bench():
    spec = importlib.util.spec_from_file_location("bench", REPO / "scripts" / "bench.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_bench()


def test_the_ratio_is_the_median_of_the_ratios_within_each_pair_not_the_ratio_of_the_medians():
    row = {"part": "one image", "zvm_provision_s": [2.0, 4.0, 9.0], "guestfish_s": [1.0, 8.0, 3.0]}
    bench.summarise(row)
    assert row["ratios"] == [2.0, 0.5, 3.0]
    assert (row["ratio"], row["ratio_min"], row["ratio_max"]) == (2.0, 0.5, 3.0)  # medians alone: 4/3
    assert (row["median_s"], row["guestfish_median_s"]) == (4.0, 3.0)
    assert row["target"] == 1.0 and row["met"] is False


def test_a_part_without_a_baseline_is_judged_by_its_median_against_its_target():
    fast = {"part": "--help", "zvm_provision_s": [0.1, 0.5, 0.2]}
    slow = {"part": "wizard", "zvm_provision_s": [6.0, 4.0, 7.0]}
    bench.summarise(fast)
    bench.summarise(slow)
    assert (fast["median_s"], fast["met"]) == (0.2, True)
    assert (slow["median_s"], slow["met"]) == (6.0, False)


def test_pairs_alternate_which_side_runs_first():
    order: list[str] = []

    def side(name: str):
        def run(i: int) -> float:
            order.append(f"{name}{i}")
            return float(i)

        return run

    mine, theirs = bench.interleaved(3, side("zvm"), side("gf"))
    assert order == ["zvm0", "gf0", "gf1", "zvm1", "zvm2", "gf2"]
    assert mine == theirs == [0.0, 1.0, 2.0]


@pytest.mark.appliance
@pytest.mark.skipif(shutil.which("guestfish") is None, reason="guestfish (libguestfs-tools) is not installed")
def test_part_a_runs_and_its_guestfish_baseline_writes_what_zvm_provision_writes(
    sample_disk_template, open_readonly, tmp_path
):
    work = tmp_path / "bench"
    command = [sys.executable, str(REPO / "scripts" / "bench.py"), "--parts", "a", "--pairs", "1", "--json",
               "--base", str(sample_disk_template), "--work-dir", str(work), "--accel", TEST_ACCEL]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=dict(os.environ), timeout=900)
    assert result.returncode == 0, result.stderr
    rows = {row["part"]: row for row in json.loads(result.stdout)["results"]}
    assert set(rows) == {"one image", "one: after launch"}
    for row in rows.values():
        assert len(row["zvm_provision_s"]) == len(row["guestfish_s"]) == 1
        assert all(s > 0 for s in row["zvm_provision_s"] + row["guestfish_s"])

    from provision.core.layout import load_layout

    paths = [entry.path for entry in load_layout().entries]
    seen = {}
    for side in ("zvm", "gf"):
        with open_readonly(work / "one-0" / f"{side}.qcow2") as (_, fs):
            stats = fs.lstat_many(paths)
            seen[side] = {
                "entries": {p: (st.kind, st.uid, st.gid, st.mode) for p, st in stats.items() if st is not None},
                "hash": fs.read_file("/passwords/zvm"),
                "keys": fs.read_file("/home/zvm/.ssh/authorized_keys"),
            }
    zvm, gf = seen["zvm"]["entries"], seen["gf"]["entries"]
    assert {p: zvm.get(p) for p in gf} == gf  # every entry guestfish wrote, with the same kind, owner and mode
    # zvm-provision alone keeps a seeding record: the baseline does a little less than the tool, never more
    assert sorted(set(zvm) - set(gf)) == ["/zvm-provision/history.jsonl"]
    assert "/etc/ssh/ssh_host_ed25519_key" in gf and "/etc/machine-id" in gf
    assert seen["zvm"]["hash"] == seen["gf"]["hash"] and seen["zvm"]["hash"].startswith(b"$6$")
    assert seen["zvm"]["keys"] == seen["gf"]["keys"]


def test_three_sides_take_turns_going_first_and_each_sample_is_printed_as_it_is_taken(capsys):
    order: list[str] = []

    def side(name: str):
        def run(i: int) -> float:
            order.append(f"{name}{i}")
            return float(i)

        return run

    samples = bench.rotated(3, side("a"), side("b"), side("c"), label="real 8", names=("batch", "bound", "loop"))
    assert order == ["a0", "b0", "c0", "b1", "c1", "a1", "c2", "a2", "b2"]
    assert samples == [[0.0, 1.0, 2.0]] * 3
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 9 and lines[0].startswith("bench: real 8: round 1: batch 0.0 s (load ")


def test_the_peak_memory_of_a_process_tree_is_read_by_kind_from_proc():
    sleeper = subprocess.Popen([sys.executable, "-c", "import subprocess; subprocess.run(['sleep', '30'])"])
    try:
        kinds = {}
        for _ in range(50):  # until the child has started its own child (not a timing assertion: it waits for it)
            kinds = bench.tree_rss(sleeper.pid)
            if kinds["helpers"]:
                break
            subprocess.run(["sleep", "0.1"], check=True)
        assert kinds["tool"] > 1 << 20 and kinds["helpers"] > 0 and kinds["appliances"] == 0
    finally:
        sleeper.kill()
        sleeper.wait()


@pytest.mark.skipif(not all(shutil.which(t) for t in ("sgdisk", "mkfs.vfat", "mke2fs", "blkid")),
                    reason="sgdisk (gdisk), mkfs.vfat (dosfstools), mke2fs and blkid are needed")
def test_the_real_base_is_built_on_the_host_with_the_zvm_layout_and_a_reproducible_nix_store(tmp_path):
    """No appliance: the GPT is read as the tool reads it (guest.rawdisk), each filesystem by blkid at its
    offset; the file set is the same byte for byte on a second build."""
    from provision.guest.diskformat import probe_image
    from provision.guest.rawdisk import gpt_entries

    built = bench.build_real_base(tmp_path / "base.qcow2", 24 << 20, tmp_path / "work")
    info = probe_image(tmp_path / "base.qcow2")
    assert (info.format, info.backing_file) == ("qcow2", None) and built["nix_files_bytes"] == 24 << 20
    assert built["allocated_bytes"] >= 24 << 20  # the files are allocated, not sparse
    raw = tmp_path / "base.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(info.path), str(raw)], check=True)
    with open(raw, "rb") as handle:
        entries = gpt_entries(handle.read(1 << 20), raw.stat().st_size)
    assert entries is not None and len(entries) == 3
    found = []
    for _number, first, _size in entries:
        probe = subprocess.run(["blkid", "-p", "-O", str(first), "-o", "export", str(raw)], capture_output=True,
                               text=True, check=True).stdout
        fields = dict(line.split("=", 1) for line in probe.splitlines() if "=" in line)
        found.append((fields["TYPE"], fields["LABEL"]))
    assert found == [("vfat", "BOOT"), ("ext4", "nix"), ("ext4", "persist")]

    def listing(folder: Path) -> dict[str, bytes]:
        import hashlib

        return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).digest()
                for p in sorted(folder.rglob("*")) if p.is_file()}

    first_set, second_set = tmp_path / "one", tmp_path / "two"
    assert bench.store_files(first_set, 12 << 20) == bench.store_files(second_set, 12 << 20) == 12 << 20
    assert listing(first_set) == listing(second_set) and len(listing(first_set)) > 1


@pytest.mark.appliance
@pytest.mark.skipif(shutil.which("guestfish") is None, reason="guestfish (libguestfs-tools) is not installed")
def test_the_real_size_parts_run_on_a_small_base_and_report_memory_reflinks_and_the_space_refusal(
    sample_disk_template, tmp_path
):
    if os.geteuid() != 0:
        pytest.skip("part h and m loop-mount a btrfs: root only")
    work = tmp_path / "bench"
    command = [sys.executable, str(REPO / "scripts" / "bench.py"), "--parts", "s,g,h,m", "--pairs", "1", "--json",
               "--base", str(sample_disk_template), "--work-dir", str(work), "--accel", TEST_ACCEL,
               "--real-size", "0.03", "--real-sizes", "2", "--no-loop", "--reflink-size", "2", "--memory-sizes", "2"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=dict(os.environ), timeout=1800)
    assert result.returncode == 0, result.stderr
    rows = {row["part"]: row for row in json.loads(result.stdout)["results"]}
    assert {"real 2", "reflink 2", "memory 2"} <= set(rows) and any(p.startswith("space") for p in rows)
    assert "bench: real 2: round 1: batch" in result.stderr  # each sample printed as it was taken
    space = next(row for part, row in rows.items() if part.startswith("space"))
    assert space["exit"] == 1 and "not enough space" in space["message"]
    peaks = rows["memory 2"]["peak_rss"]
    assert peaks["tool"] > 0 and peaks["appliances"] > 0
    assert len(rows["reflink 2"]["used_growth_bytes"]) == 1
    assert not (work / "btrfs").is_mount()
