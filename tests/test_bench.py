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
