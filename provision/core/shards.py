"""Which slice of the manifest this run takes: `--shard K/N`, or `--shard auto` from the environment a job
engine gives each of its tasks. Pure: the caller passes the environment (cli.py reads os.environ).

- Kubernetes Indexed Job: JOB_COMPLETION_INDEX (0-based). Kubernetes does not tell a pod the Job's
  completions, so the count comes from --shard-count or ZVM_PROVISION_SHARDS (set it to `completions`).
- Slurm job array: SLURM_ARRAY_TASK_ID with SLURM_ARRAY_TASK_COUNT and SLURM_ARRAY_TASK_MIN. Task ids are the
  ones given to `sbatch --array` and need not start at 0 (`--array=1-8`) nor be consecutive (`--array=0-14:2`,
  SLURM_ARRAY_TASK_STEP): the shard is the task's position, (ID - MIN) / STEP. An array whose ids are not
  evenly spaced (`--array=1,2,9`) has no position a task can know alone, and is refused in every task: without
  SLURM_ARRAY_TASK_STEP the step is 1, so MAX must be MIN + COUNT - 1.
- GitHub Actions matrix: nothing in the environment says which matrix entry a job is; pass
  `--shard ${{ matrix.shard }}/N` (documented in the README).

A value that does not add up (an index past the count, two engines at once, a count given twice differently)
is refused: a wrong guess would make some images twice and others never.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from provision.core.manifest import parse_shard
from provision.errors import UsageError

COUNT_VARIABLE = "ZVM_PROVISION_SHARDS"
K8S_INDEX = "JOB_COMPLETION_INDEX"
SLURM_ID = "SLURM_ARRAY_TASK_ID"
SLURM_COUNT = "SLURM_ARRAY_TASK_COUNT"
SLURM_MIN = "SLURM_ARRAY_TASK_MIN"
SLURM_MAX = "SLURM_ARRAY_TASK_MAX"
SLURM_STEP = "SLURM_ARRAY_TASK_STEP"
MAX_SHARDS = 100_000
_NUMBER_RE = re.compile(r"[0-9]{1,9}", re.ASCII)

WHAT_TO_SET = (
    f"in a Kubernetes Indexed Job, set {COUNT_VARIABLE} to the Job's completions (Kubernetes sets {K8S_INDEX}); "
    "in Slurm, submit a job array (sbatch --array=0-7); elsewhere, and in a GitHub Actions matrix, pass "
    "--shard K/N (--shard ${{ matrix.shard }}/N)"
)


class ShardSource(StrEnum):
    GIVEN = "given"  # --shard K/N
    KUBERNETES = "kubernetes"
    SLURM = "slurm"


@dataclass(frozen=True)
class ShardChoice:
    index: int  # 1-based, as in --shard K/N
    count: int
    source: ShardSource
    evidence: tuple[tuple[str, str], ...] = ()  # the variables it was read from, as (name, value)


def choose_shard(text: str | None, shard_count: int | None, env: Mapping[str, str]) -> ShardChoice | None:
    """The slice this run takes (None: the whole manifest), from --shard, --shard-count and the environment."""
    if text is None:
        if shard_count is not None:
            raise UsageError("--shard-count goes with --shard auto", hint=WHAT_TO_SET)
        return None
    if text.strip() == "auto":
        return shard_from_environment(env, shard_count)
    index, count = parse_shard(text)
    if shard_count is not None and shard_count != count:
        raise UsageError(f"--shard {text} says {count} shards, --shard-count says {shard_count}")
    return ShardChoice(index, count, ShardSource.GIVEN)


def engine_ignored(text: str | None, env: Mapping[str, str]) -> str | None:
    """The job engine's index variable, when one is set but no --shard was given: then every task takes the
    whole manifest, and all but the first are refused by the locks (exit 4). Worth a word on the screen."""
    if text is not None:
        return None
    return next((name for name in (K8S_INDEX, SLURM_ID) if name in env), None)


def shard_from_environment(env: Mapping[str, str], shard_count: int | None = None) -> ShardChoice:
    """--shard auto: the Kubernetes Indexed Job's or the Slurm array's slice; UsageError when neither (or
    both) is there or the values do not add up, saying what to set."""
    kubernetes, slurm = K8S_INDEX in env, SLURM_ID in env
    if kubernetes and slurm:
        raise UsageError(
            f"--shard auto: both {K8S_INDEX} (Kubernetes) and {SLURM_ID} (Slurm) are set; "
            "which one slices the manifest is unclear",
            hint="pass --shard K/N instead",
        )
    if kubernetes:
        return _kubernetes(env, shard_count)
    if slurm:
        return _slurm(env, shard_count)
    raise UsageError(
        f"--shard auto found no job engine in the environment (neither {K8S_INDEX} nor {SLURM_ID} is set)",
        hint=WHAT_TO_SET,
    )


def _kubernetes(env: Mapping[str, str], shard_count: int | None) -> ShardChoice:
    index = _number(env, K8S_INDEX)
    counts = {}
    if shard_count is not None:
        counts["--shard-count"] = shard_count
    if COUNT_VARIABLE in env:
        counts[COUNT_VARIABLE] = _number(env, COUNT_VARIABLE)
    if not counts:
        raise UsageError(
            f"--shard auto: {K8S_INDEX}={index} (a Kubernetes Indexed Job), but how many shards there are is "
            "not known: Kubernetes does not tell a pod the Job's completions",
            hint=f"set {COUNT_VARIABLE} to the Job's completions in the pod's env, or pass --shard-count N",
        )
    if len(set(counts.values())) > 1:
        raise UsageError(
            f"--shard auto: --shard-count {shard_count} and {COUNT_VARIABLE}={counts[COUNT_VARIABLE]} disagree",
            hint="give the count once: the Job's completions",
        )
    count = next(iter(counts.values()))
    _check_count(count, next(iter(counts)))
    if index >= count:
        raise UsageError(
            f"--shard auto: {K8S_INDEX}={index} is out of range for {count} shard(s) (the index counts from 0)",
            hint=f"set {COUNT_VARIABLE} (or --shard-count) to the Job's completions",
        )
    evidence = [(K8S_INDEX, str(index))]
    if COUNT_VARIABLE in counts:
        evidence.append((COUNT_VARIABLE, str(count)))
    return ShardChoice(index + 1, count, ShardSource.KUBERNETES, tuple(evidence))


def _slurm(env: Mapping[str, str], shard_count: int | None) -> ShardChoice:
    missing = [name for name in (SLURM_COUNT, SLURM_MIN) if name not in env]
    if missing:
        raise UsageError(
            f"--shard auto: {SLURM_ID} is set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "not: the task's place in the array cannot be known",
            hint="run it as a task of `sbatch --array=...` (Slurm sets them), or pass --shard K/N",
        )
    task, count, first = _number(env, SLURM_ID), _number(env, SLURM_COUNT), _number(env, SLURM_MIN)
    _check_count(count, SLURM_COUNT)
    last = _number(env, SLURM_MAX) if SLURM_MAX in env else None
    # Without SLURM_ARRAY_TASK_STEP the step is 1: MIN, MAX and COUNT alone cannot tell --array=1,5,9 from the
    # list --array=1,2,9, so a step worked out from them would put task 9 of the list at shard 3 of 3.
    step = _number(env, SLURM_STEP) if SLURM_STEP in env else 1
    evidence = [(SLURM_ID, str(task)), (SLURM_MIN, str(first)), (SLURM_COUNT, str(count))]
    if SLURM_STEP in env:
        evidence.append((SLURM_STEP, str(step)))
    shown = ", ".join(f"{name}={value}" for name, value in evidence)
    uneven = step < 1 or (last is not None and last != first + (count - 1) * step)
    if uneven or (task - first) % step:
        raise UsageError(
            f"--shard auto: the Slurm array's task ids are not an evenly spaced range "
            f"({shown}{f', {SLURM_MAX}={last}' if last is not None else ''}), so this task's place in it is "
            "not known",
            hint="submit the array as a range, e.g. sbatch --array=0-7 (or 1-8, or 0-14:2)",
        )
    position = (task - first) // step
    if not 0 <= position < count:
        raise UsageError(f"--shard auto: the Slurm task is outside its array ({shown})")
    if shard_count is not None and shard_count != count:
        raise UsageError(
            f"--shard auto: --shard-count {shard_count} disagrees with the Slurm array's {SLURM_COUNT}={count}",
            hint="leave --shard-count out: the array says how many shards there are",
        )
    if COUNT_VARIABLE in env and _number(env, COUNT_VARIABLE) != count:
        raise UsageError(
            f"--shard auto: {COUNT_VARIABLE}={env[COUNT_VARIABLE].strip()} disagrees with the Slurm array's "
            f"{SLURM_COUNT}={count}",
            hint=f"unset {COUNT_VARIABLE}: the array says how many shards there are",
        )
    return ShardChoice(position + 1, count, ShardSource.SLURM, tuple(evidence))


def _number(env: Mapping[str, str], name: str) -> int:
    value = env[name].strip()
    if not _NUMBER_RE.fullmatch(value):
        shown = repr(value) if len(value) <= 20 else f"{len(value)} characters"
        raise UsageError(f"--shard auto: {name} must be a whole number, not {shown}")
    return int(value)


def _check_count(count: int, name: str) -> None:
    if not 1 <= count <= MAX_SHARDS:
        raise UsageError(f"--shard auto: {name}={count}: the number of shards must be between 1 and {MAX_SHARDS}")
