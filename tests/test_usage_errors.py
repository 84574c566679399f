"""A mistyped command and click's usage errors, through the command's main(): one line on stderr, as every other
error, plus at most a hint line pointing to --help (README, "Exit codes"). In this process, as main() runs in
`python -m provision`; the last test shows the real entry point gives the same words and exit codes."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest

from tests.support.command import in_process, zvm


def run_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """In this process (the last test shows the real entry point gives the same), in `folder`."""
    with contextlib.chdir(folder):
        return in_process(*args)


@pytest.mark.parametrize(("typed", "meant"), [
    ("insepct", "inspect"), ("inpsect", "inspect"), ("sampledisk", "sample-disk"), ("bacth", "batch"),
    ("batch-reprot", "batch-report"), ("sed", "seed"),
])
def test_a_mistyped_command_is_named_with_the_command_meant(tmp_path, typed, meant):
    result = run_in(tmp_path, typed, "a.qcow2")
    assert result.returncode == 2, result
    assert result.stderr == f"zvm-provision: error: {typed}: no such file; did you mean `{meant}`?\n"
    assert result.stdout == ""


def test_an_existing_file_named_like_a_command_is_still_the_image_to_seed(tmp_path):
    (tmp_path / "insepct").write_bytes(b"not a disk image")
    result = run_in(tmp_path, "insepct", "--no-password", "--ssh-key", "none.pub")
    assert "did you mean" not in result.stderr, result


def test_a_word_close_to_no_command_is_an_image_name(tmp_path):
    result = run_in(tmp_path, "disk.qcow2", "--yes")
    assert "did you mean" not in result.stderr, result


@pytest.mark.parametrize(("args", "words"), [
    (("inspect",), "missing argument 'IMAGE'"),
    (("inspect", "a.qcow2", "--bogus"), "no such option: --bogus"),
    (("seed", "a.qcow2", "b.qcow2"), "got unexpected extra argument(s) (b.qcow2)"),
    (("batch", "staff.csv", "--out-dir", "x"), "missing option '--base'"),
    (("batch", "m.csv", "--base", "b.qcow2", "--out-dir", "o", "--jobs", "many"), "'--jobs'"),
    (("sample-disk",), "missing argument 'OUT'"),
    (("batch-report",), "missing argument 'DIR'"),
])
def test_a_usage_error_is_one_line_and_a_hint_to_help(tmp_path, args, words):
    result = run_in(tmp_path, *args)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("zvm-provision: error: ") and words in lines[0], lines
    command = args[0]
    assert lines[1] == f"hint: `zvm-provision {command} --help` shows how to use it", lines


def test_no_arguments_still_show_the_help(tmp_path):
    result = run_in(tmp_path)
    assert "Usage: zvm-provision [OPTIONS] COMMAND [ARGS]..." in result.stdout + result.stderr
    assert "Exit codes:" in result.stdout + result.stderr


def test_shell_completion_after_a_word_close_to_a_command_is_no_error(tmp_path):
    """Completion parses what is typed so far: a first word like `insepct` must not stop it with the hint."""
    (tmp_path / "id_ed25519.pub").write_text("x")
    env = {"_ZVM_PROVISION_COMPLETE": "complete_bash", "COMP_WORDS": "zvm-provision insepct --ssh-key id",
           "COMP_CWORD": "3"}
    result = zvm(cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result
    assert result.stdout.split() == ["id_ed25519.pub"]


@pytest.mark.parametrize("command", [(), ("seed",)])
def test_a_scripted_run_on_a_missing_image_reports_the_missing_image_first(tmp_path, command):
    """Issue 18: with no terminal and no flags, a missing image is the first thing to report, not the flags."""
    result = run_in(tmp_path, *command, "missing.qcow2")
    assert result.returncode == 2, result
    assert result.stderr == "zvm-provision: error: missing.qcow2: no such file\n"
    assert not (tmp_path / "missing.qcow2").exists()


@pytest.mark.parametrize("args", [
    ("insepct", "a.qcow2"), ("inspect",), ("seed", "a.qcow2", "b.qcow2"), ("missing.qcow2",),
    ("batch", "m.csv", "--base", "b.qcow2", "--out-dir", "o", "--jobs", "many"),
], ids=["mistyped", "missing-argument", "extra-argument", "missing-image", "bad-value"])
def test_the_real_entry_point_maps_usage_errors_as_the_in_process_runs_above(tmp_path, args):
    """`python -m provision` in a process of its own: the same exit code, stdout and stderr, to the letter.
    (Not the help: CliRunner formats it at a fixed width.)"""
    real = zvm(*args, cwd=tmp_path)
    with contextlib.chdir(tmp_path):
        here = in_process(*args)
    assert (real.returncode, real.stdout, real.stderr) == (here.returncode, here.stdout, here.stderr)
    assert real.returncode == 2 and real.stderr, real


@pytest.mark.parametrize(("args", "command", "said"), [
    (("sample-disk", "nodir/x.qcow2"), "sample-disk", "nodir: no such folder"),
    (("inspect", "nodir/"), "inspect", "nodir: no such file"),
    (("seed", "x.qcow2", "--output", "nodir/x.qcow2", "--no-password", "--ssh-key", "k.pub"), "seed",
     "nodir: no such folder (for --output)"),
])
def test_a_folder_that_does_not_exist_is_exit_2_as_help_and_readme_say(tmp_path, args, command, said):
    from provision.errors import ExitCode, exit_codes_of

    (tmp_path / "x.qcow2").write_bytes(b"never opened")
    (tmp_path / "k.pub").write_text("never read\n")
    result = run_in(tmp_path, *args)
    assert result.returncode == 2, result
    assert said in result.stderr and result.stderr.count("\n") <= 2
    assert list(tmp_path.iterdir()) and not (tmp_path / "nodir").exists()
    meanings = exit_codes_of(command)
    assert "does not exist" in meanings[ExitCode.USAGE]
    assert "folder" not in meanings[ExitCode.FAILURE]


@pytest.mark.parametrize("task", [1, 2, 9])
def test_a_slurm_list_array_is_refused_in_every_task(tmp_path, task):
    """sbatch --array=1,2,9: Slurm sets ID, MIN 1, MAX 9, COUNT 3 (no step): no task knows its place."""
    (tmp_path / "staff.csv").write_text("name,ssh_keys\nalice,alice.pub\nbob,alice.pub\ncarol,alice.pub\n")
    (tmp_path / "alice.pub").write_text("never read\n")
    (tmp_path / "base.qcow2").write_bytes(b"never opened")
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "9",
           "SLURM_ARRAY_TASK_COUNT": "3"}
    with contextlib.chdir(tmp_path):
        result = in_process("batch", "staff.csv", "--base", "base.qcow2", "--out-dir", "out", "--shard", "auto",
                            env=env)
    assert result.returncode == 2, result
    assert "not an evenly spaced range" in result.stderr
    assert not (tmp_path / "out").exists()


def test_shard_count_gives_a_kubernetes_indexed_job_its_count(tmp_path):
    """--shard auto --shard-count N through the command: the shard is named from the index and N (before the
    base is read); without --shard-count the count is not known and the run is refused."""
    (tmp_path / "staff.csv").write_text("name,ssh_keys\nalice,k.pub\nbob,k.pub\ncarol,k.pub\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "k@x", "-f", str(tmp_path / "k")], check=True)
    (tmp_path / "base.qcow2").write_bytes(b"junk\n")  # refused before any launch: the test needs none
    args = ("batch", "staff.csv", "--base", "base.qcow2", "--out-dir", "out", "--shard", "auto")
    env = {"JOB_COMPLETION_INDEX": "1"}
    with contextlib.chdir(tmp_path):
        counted = in_process(*args, "--shard-count", "3", env=env)
        uncounted = in_process(*args, env=env)
    assert "batch: shard 2 of 3 from the Kubernetes Indexed Job (JOB_COMPLETION_INDEX=1)" in counted.stderr
    assert counted.returncode == 3 and "too small to be a disk image" in counted.stderr
    assert uncounted.returncode == 2 and "how many shards there are is not known" in uncounted.stderr
