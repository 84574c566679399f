"""A sharded roll-out as the README shows it, run here: the Kubernetes Indexed Job, the Slurm array and the
GitHub Actions matrix of the README, their command lines read from it, each shard a separate process with
the variables its engine sets, all three at the same time into one folder, then the README's batch-report.

The README's paths are mapped into a temporary folder: /data and /srv/zvm (the shared volume) to it, and
/manifest (the Kubernetes Secret) to its manifest/ folder, laid out as Kubernetes mounts a Secret (the files
are links into a ..data folder; the files are mode 0400). Shard 1 runs as the Indexed Job's pod 0 (its
JOB_COMPLETION_INDEX, and ZVM_PROVISION_SHARDS from the Job's env), shard 2 as the Slurm array's second
task (--array=1-3: its id is 2), shard 3 as the matrix's entry shard: 3. One appliance launch per shard,
three at once (TCG); the base is the session's sample disk, copied.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from provision.core.credentials.passwords import hash_password
from tests.support.command import command_env
from tests.support.files import copy_disk
from tests.support.keyfactory import public_line

ROOT = Path(__file__).resolve().parents[3]
README = (ROOT / "README.md").read_text(encoding="utf-8")
NAMES = ("alice", "bob", "carol")


def base_env() -> dict[str, str]:
    """command_env(), read at each run (the test's own HOME), less the shard variables: only those each
    shard is given below."""
    env = command_env()
    for name in [n for n in env if n.startswith(("SLURM_", "JOB_COMPLETION", "ZVM_PROVISION_SHARDS"))]:
        del env[name]
    return env


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, re.DOTALL)


def kubernetes_jobs() -> tuple[dict, dict]:
    (block,) = [b for b in readme_blocks("yaml") if "completionMode: Indexed" in b]
    shards, report = yaml.safe_load_all(block)
    return shards, report


def github_workflow() -> dict:
    (block,) = [b for b in readme_blocks("yaml") if "matrix:" in b]
    return yaml.safe_load(block)


def slurm_script() -> str:
    (block,) = [b for b in readme_blocks("sh") if "#SBATCH --array=" in b]
    return block


class Paths:
    """The README's paths, mapped into `root` (longest prefix first)."""

    def __init__(self, root: Path) -> None:
        self.prefixes = [("/srv/zvm", root), ("/manifest", root / "manifest"), ("/data", root)]

    def arg(self, word: str) -> str:
        for prefix, there in self.prefixes:
            if word == prefix or word.startswith(prefix + "/"):
                return str(there) + word[len(prefix):]
        return word

    def command(self, words: list[str]) -> list[str]:
        assert words[0] == "zvm-provision", words
        return [sys.executable, "-m", "provision", *(self.arg(w) for w in words[1:])]


def kubernetes_secret(folder: Path, files: dict[str, str]) -> None:
    """A Secret volume as the kubelet mounts it: files in a timestamped folder, ..data links to it, and each
    name a link through ..data; the files have the volume's defaultMode (0400)."""
    stamp = folder / "..2026_11_29_12_00_00.000000001"
    stamp.mkdir(parents=True)
    for name, text in files.items():
        (stamp / name).write_text(text)
        (stamp / name).chmod(0o400)
    (folder / "..data").symlink_to(stamp.name)
    for name in files:
        (folder / name).symlink_to(f"..data/{name}")


def lock_holders(lock_file: Path) -> set[int]:
    """The processes holding a record lock on `lock_file` now (/proc/locks, by inode)."""
    try:
        inode = lock_file.stat().st_ino
    except FileNotFoundError:
        return set()
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[1] == "POSIX" and fields[5].endswith(f":{inode}"):
            holders.add(int(fields[4]))
    return holders


@pytest.fixture(scope="module")
def rollout(sample_disk_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("shared")
    paths = Paths(root)
    copy_disk(sample_disk_template, root / "zvm.qcow2")
    bob_hash = hash_password("bob's own password, given", rounds=5000).reveal()
    manifest = "name,ssh_keys,password_hash\n" + "".join(
        f"{n},{n}.pub,{bob_hash if n == 'bob' else ''}\n" for n in NAMES)
    kubernetes_secret(root / "manifest", {"staff.csv": manifest,
                                          **{f"{n}.pub": public_line(comment=f"{n}@laptop") + "\n" for n in NAMES}})

    # shard 1: the Indexed Job's pod with index 0
    job, report_job = kubernetes_jobs()
    assert job["spec"]["completionMode"] == "Indexed"
    count = job["spec"]["completions"]
    assert count == len(NAMES) == job["spec"]["parallelism"]
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    pod_env = {e["name"]: e["value"] for e in container["env"]}
    assert pod_env["ZVM_PROVISION_SHARDS"] == str(count)
    (secret,) = [v for v in pod["volumes"] if "secret" in v]
    assert secret["secret"]["defaultMode"] == 0o400
    kubernetes = (paths.command(["zvm-provision", *container["args"]]),
                  {**base_env(), **pod_env, "JOB_COMPLETION_INDEX": "0"})

    # shard 2: the Slurm array's second task
    script = slurm_script()
    first, last = map(int, re.search(r"#SBATCH --array=([0-9]+)-([0-9]+)\n", script).groups())
    ids = list(range(first, last + 1))
    assert len(ids) == count
    (line,) = [line for line in script.splitlines() if line.startswith("zvm-provision ")]
    slurm = (paths.command(shlex.split(line)), {
        **base_env(), "SLURM_ARRAY_TASK_ID": str(ids[1]), "SLURM_ARRAY_TASK_MIN": str(first),
        "SLURM_ARRAY_TASK_MAX": str(last), "SLURM_ARRAY_TASK_COUNT": str(len(ids)), "SLURM_ARRAY_TASK_STEP": "1",
        "SLURM_ARRAY_JOB_ID": "4242", "SLURM_JOB_ID": "4244"})

    # shard 3: the matrix entry shard: 3
    workflow = github_workflow()
    matrix = workflow["jobs"]["shard"]["strategy"]["matrix"]["shard"]
    assert matrix == list(range(1, count + 1))
    (step,) = workflow["jobs"]["shard"]["steps"]
    github = (paths.command(shlex.split(step["run"].replace("${{ matrix.shard }}", str(matrix[2])))),
              {**base_env(), "GITHUB_ACTIONS": "true"})

    out = root / "out"
    shards = [subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=root)
              for command, env in (kubernetes, slurm, github)]
    most_at_once: set[int] = set()
    intruders = {}
    deadline = time.monotonic() + 1500
    while any(p.poll() is None for p in shards) and time.monotonic() < deadline:
        holders = lock_holders(out / ".zvm-provision-batch.lock")
        if len(holders) > len(most_at_once):
            most_at_once = holders
        if len(holders) == 3 and not intruders:  # every shard holds its rows: the same shard again, a whole run
            # the same shard again, and a whole run (--shard forgotten)
            for name, extra, env in (("same shard", ["--shard", "1/3"], base_env()),
                                     ("whole run", [], {**base_env(), "JOB_COMPLETION_INDEX": "1"})):
                intruders[name] = subprocess.run(
                    paths.command(["zvm-provision", "batch", "/manifest/staff.csv", "--base", "/data/zvm.qcow2",
                                   "--out-dir", "/data/out", *extra]),
                    env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        time.sleep(0.1)
    outputs = []
    for process in shards:
        stdout, stderr = process.communicate(timeout=60)
        outputs.append((process.returncode, stdout, stderr))

    (report_step,) = workflow["jobs"]["report"]["steps"]
    report_command = paths.command(shlex.split(report_step["run"]))
    report_args = report_job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert paths.command(["zvm-provision", *report_args]) == report_command  # the Job and the workflow agree
    report = subprocess.run(report_command, env=base_env(), capture_output=True, text=True, timeout=120,
                            stdin=subprocess.DEVNULL)
    return {"root": root, "out": out, "shards": outputs, "at_once": most_at_once,
            "pids": {p.pid for p in shards}, "intruders": intruders, "report": report,
            "report_command": report_command}


@pytest.mark.appliance
def test_the_readme_shards_run_at_once_into_one_folder_and_each_says_where_its_slice_came_from(rollout):
    for code, _, stderr in rollout["shards"]:
        assert code == 0, stderr
    (_, _, k8s), (_, _, slurm), (_, _, github) = rollout["shards"]
    assert "batch: shard 1 of 3 from the Kubernetes Indexed Job (JOB_COMPLETION_INDEX=0, ZVM_PROVISION_SHARDS=3)" \
        in k8s
    assert ("batch: shard 2 of 3 from the Slurm job array (SLURM_ARRAY_TASK_ID=2, SLURM_ARRAY_TASK_MIN=1, "
            "SLURM_ARRAY_TASK_COUNT=3, SLURM_ARRAY_TASK_STEP=1)") in slurm
    assert "from the" not in github  # --shard 3/3 given: nothing was read from the environment
    # all three held their rows at the same moment
    assert rollout["at_once"] == rollout["pids"]
    out = rollout["out"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".zvm-provision-batch.key", ".zvm-provision-batch.lock", "alice.qcow2", "bob.qcow2", "carol.qcow2",
        "initial-passwords-1-of-3.csv", "initial-passwords-3-of-3.csv", "initial-passwords.csv",
        "report-1-of-3.json", "report-2-of-3.json", "report-3-of-3.json", "report.json"]
    for index, name in enumerate(NAMES, 1):
        shard = json.loads((out / f"report-{index}-of-3.json").read_text())
        assert shard["shard"] == {"index": index, "count": 3}
        assert [u["name"] for u in shard["users"]] == [name]


@pytest.mark.appliance
def test_a_run_over_rows_a_shard_holds_is_refused_while_it_runs(rollout):
    out = rollout["out"]
    same, whole = rollout["intruders"]["same shard"], rollout["intruders"]["whole run"]
    assert same.returncode == 4, same.stderr
    assert (f"another zvm-provision run (batch, keys or batch-report) is writing to {out}: alice.qcow2, "
            "report-1-of-3.json, initial-passwords-1-of-3.csv") in same.stderr
    assert whole.returncode == 4, whole.stderr
    assert "JOB_COMPLETION_INDEX is set, but without --shard this run takes the whole manifest" in whole.stderr
    assert (f"another zvm-provision run (batch, keys or batch-report) is writing to {out}: alice.qcow2, bob.qcow2, "
            "carol.qcow2") in whole.stderr


@pytest.mark.appliance
def test_batch_report_merges_every_row_exactly_once_with_the_passwords_kept_private(rollout):
    result = rollout["report"]
    assert result.returncode == 0, result.stderr
    out = rollout["out"]
    assert f"3 rows from 3 shards, each row once. Report: {out / 'report.json'}" in result.stdout
    merged = json.loads((out / "report.json").read_text())
    manifest = rollout["root"] / "manifest" / "staff.csv"
    assert merged["manifest"]["sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()
    assert merged["manifest"]["rows"] == list(NAMES)
    assert [u["name"] for u in merged["users"]] == list(NAMES)  # each row once, in manifest order
    assert {u["status"] for u in merged["users"]} == {"seeded"}
    assert len({u["host_key"]["fingerprint"] for u in merged["users"]}) == 3  # three images, three host keys
    assert [(s["index"], s["count"]) for s in merged["shards"]] == [(1, 3), (2, 3), (3, 3)]

    passwords = out / "initial-passwords.csv"
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    rows = passwords.read_text().splitlines()
    shard_rows = [(out / f"initial-passwords-{k}-of-3.csv").read_text().splitlines()[1] for k in (1, 3)]
    assert rows == ["name,password", *shard_rows]  # alice and carol generated; bob gave his own hash
    assert [r.split(",")[0] for r in rows[1:]] == ["alice", "carol"]
    for k in (1, 3):
        assert stat.S_IMODE((out / f"initial-passwords-{k}-of-3.csv").stat().st_mode) == 0o600


@pytest.mark.appliance
def test_batch_report_names_a_missing_shard_and_writes_nothing(rollout, tmp_path):
    out = rollout["out"]
    before = (out / "report.json").read_bytes()
    shutil.move(out / "report-2-of-3.json", tmp_path / "report-2-of-3.json")
    try:
        result = subprocess.run(rollout["report_command"], env=base_env(), capture_output=True, text=True,
                                timeout=120)
    finally:
        shutil.move(tmp_path / "report-2-of-3.json", out / "report-2-of-3.json")
    assert result.returncode == 1, result.stderr
    assert "no report from shard 2 of 3 (its rows: bob)" in result.stderr
    assert (out / "report.json").read_bytes() == before


def test_shard_auto_without_a_job_engine_is_refused_before_anything_is_made(tmp_path):
    """Exit 2 with what to set; the out dir is not even created."""
    (tmp_path / "alice.pub").write_text(public_line() + "\n")
    (tmp_path / "staff.csv").write_text("name,ssh_keys\nalice,alice.pub\n")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "base.qcow2"), "64M"], check=True)
    for env, words in (({}, "found no job engine"),
                       ({"JOB_COMPLETION_INDEX": "3", "ZVM_PROVISION_SHARDS": "3"}, "JOB_COMPLETION_INDEX=3 is out")):
        result = subprocess.run(
            [sys.executable, "-m", "provision", "batch", str(tmp_path / "staff.csv"), "--base",
             str(tmp_path / "base.qcow2"), "--out-dir", str(tmp_path / "out"), "--shard", "auto"],
            env={**base_env(), **env}, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr and "hint:" in result.stderr
        assert not (tmp_path / "out").exists()
