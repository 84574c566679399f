"""--shard auto: the slice read from the variables each job engine sets (core.shards), as a table."""

from __future__ import annotations

import pytest

from provision.core.shards import ShardSource, choose_shard, engine_ignored, shard_from_environment
from provision.errors import ExitCode, UsageError

K8S = ShardSource.KUBERNETES
SLURM = ShardSource.SLURM


def slurm(task: int, count: int, first: int, **extra: str) -> dict[str, str]:
    env = {"SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": str(count), "SLURM_ARRAY_TASK_MIN": str(first)}
    return {**env, **{f"SLURM_ARRAY_TASK_{k.upper()}": v for k, v in extra.items()}}


@pytest.mark.parametrize(
    ("env", "shard_count", "expected"),
    [
        # Kubernetes Indexed Job: the index counts from 0, the count comes from us
        ({"JOB_COMPLETION_INDEX": "0", "ZVM_PROVISION_SHARDS": "3"}, None, (1, 3, K8S)),
        ({"JOB_COMPLETION_INDEX": "2", "ZVM_PROVISION_SHARDS": "3"}, None, (3, 3, K8S)),
        ({"JOB_COMPLETION_INDEX": "7"}, 8, (8, 8, K8S)),
        ({"JOB_COMPLETION_INDEX": " 1 ", "ZVM_PROVISION_SHARDS": "4"}, 4, (2, 4, K8S)),  # both, agreeing
        # Slurm: --array=0-7 (as biowulf's 21.08 shows: MIN 0, MAX 7, STEP 1, COUNT 8)
        (slurm(0, 8, 0, max="7", step="1"), None, (1, 8, SLURM)),
        (slurm(7, 8, 0, max="7", step="1"), None, (8, 8, SLURM)),
        # --array=1-8: ids start at 1; task 1 is the first shard, not the second
        (slurm(1, 8, 1, max="8"), None, (1, 8, SLURM)),
        (slurm(8, 8, 1, max="8"), None, (8, 8, SLURM)),
        # --array=10-16:2 (10, 12, 14, 16): the step Slurm gives
        (slurm(14, 4, 10, max="16", step="2"), None, (3, 4, SLURM)),
        (slurm(3, 1, 3, max="3"), None, (1, 1, SLURM)),  # an array of one
        (slurm(2, 4, 0), 4, (3, 4, SLURM)),  # no MAX: an older Slurm; --shard-count agreeing
        ({**slurm(2, 4, 0), "ZVM_PROVISION_SHARDS": "4"}, None, (3, 4, SLURM)),
    ],
)
def test_the_slice_from_each_engine(env, shard_count, expected):
    choice = shard_from_environment(env, shard_count)
    assert (choice.index, choice.count, choice.source) == expected


def test_the_evidence_names_the_variables_read():
    choice = shard_from_environment({"JOB_COMPLETION_INDEX": "2", "ZVM_PROVISION_SHARDS": "8"})
    assert choice.evidence == (("JOB_COMPLETION_INDEX", "2"), ("ZVM_PROVISION_SHARDS", "8"))
    choice = shard_from_environment(slurm(3, 8, 1, max="8"))
    assert choice.evidence == (("SLURM_ARRAY_TASK_ID", "3"), ("SLURM_ARRAY_TASK_MIN", "1"),
                               ("SLURM_ARRAY_TASK_COUNT", "8"))


@pytest.mark.parametrize(
    ("env", "shard_count", "words"),
    [
        ({}, None, "found no job engine"),
        ({"GITHUB_ACTIONS": "true"}, None, "found no job engine"),  # a matrix says nothing: --shard K/N
        ({"ZVM_PROVISION_SHARDS": "4"}, None, "found no job engine"),  # a count alone is no index
        ({"JOB_COMPLETION_INDEX": "2"}, None, "how many shards there are is not known"),
        ({"JOB_COMPLETION_INDEX": "3", "ZVM_PROVISION_SHARDS": "3"}, None, "JOB_COMPLETION_INDEX=3 is out of range"),
        ({"JOB_COMPLETION_INDEX": "1", "ZVM_PROVISION_SHARDS": "4"}, 3, "disagree"),
        ({"JOB_COMPLETION_INDEX": "-1", "ZVM_PROVISION_SHARDS": "4"}, None, "must be a whole number, not '-1'"),
        ({"JOB_COMPLETION_INDEX": "", "ZVM_PROVISION_SHARDS": "4"}, None, "must be a whole number"),
        ({"JOB_COMPLETION_INDEX": "0", "ZVM_PROVISION_SHARDS": "0"}, None, "between 1 and"),
        ({"JOB_COMPLETION_INDEX": "0", "ZVM_PROVISION_SHARDS": "four"}, None, "whole number, not 'four'"),
        ({"JOB_COMPLETION_INDEX": "0", "SLURM_ARRAY_TASK_ID": "0"}, None, "both"),
        ({"SLURM_ARRAY_TASK_ID": "3"}, None, "SLURM_ARRAY_TASK_COUNT and SLURM_ARRAY_TASK_MIN are not"),
        ({"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}, None, "SLURM_ARRAY_TASK_MIN is not"),
        (slurm(9, 8, 1, max="8"), None, "outside its array"),  # an id past the range
        (slurm(0, 8, 1), None, "outside its array"),  # below MIN
        (slurm(2, 5, 1, max="31"), None, "not an evenly spaced range"),  # --array=1,2,9,22,31
        # --array=1,2,9: every task refused (task 9 used to run as shard 3 of 3, a step of 4 guessed from MAX)
        (slurm(1, 3, 1, max="9"), None, "not an evenly spaced range"),
        (slurm(2, 3, 1, max="9"), None, "not an evenly spaced range"),
        (slurm(9, 3, 1, max="9"), None, "not an evenly spaced range"),
        (slurm(9, 3, 1, max="9", step="1"), None, "not an evenly spaced range"),
        (slurm(14, 4, 10, max="16"), None, "not an evenly spaced range"),  # 10-16:2 or 10,11,12,16: no STEP
        (slurm(3, 4, 0, step="2", max="6"), None, "not an evenly spaced range"),  # 3 is not on 0-6:2
        (slurm(1, 4, 0, step="0"), None, "not an evenly spaced range"),
        (slurm(1, 8, 1, max="8"), 4, "--shard-count 4 disagrees"),
        ({**slurm(1, 8, 1, max="8"), "ZVM_PROVISION_SHARDS": "4"}, None, "ZVM_PROVISION_SHARDS=4 disagrees"),
    ],
)
def test_refusals_say_what_to_set(env, shard_count, words):
    with pytest.raises(UsageError) as caught:
        shard_from_environment(env, shard_count)
    assert words in caught.value.message
    assert caught.value.exit_code == ExitCode.USAGE


def test_no_engine_hint_names_every_way():
    with pytest.raises(UsageError) as caught:
        shard_from_environment({})
    hint = caught.value.hint or ""
    for words in ("ZVM_PROVISION_SHARDS", "JOB_COMPLETION_INDEX", "sbatch --array", "--shard ${{ matrix.shard }}/N"):
        assert words in hint


def test_choose_shard_given_auto_or_none():
    assert choose_shard(None, None, {"JOB_COMPLETION_INDEX": "1"}) is None  # no --shard: the whole manifest
    given = choose_shard("2/4", None, {"JOB_COMPLETION_INDEX": "0", "ZVM_PROVISION_SHARDS": "9"})
    assert (given.index, given.count, given.source) == (2, 4, ShardSource.GIVEN)  # K/N wins over the environment
    auto = choose_shard("auto", 5, {"JOB_COMPLETION_INDEX": "4"})
    assert (auto.index, auto.count) == (5, 5)
    with pytest.raises(UsageError, match="--shard-count goes with --shard auto"):
        choose_shard(None, 4, {})
    with pytest.raises(UsageError, match="says 4 shards, --shard-count says 3"):
        choose_shard("1/4", 3, {})
    with pytest.raises(UsageError, match="K/N"):
        choose_shard("automatic", None, {})


def test_an_engine_whose_index_is_not_used_is_worth_a_word():
    assert engine_ignored(None, {"JOB_COMPLETION_INDEX": "0"}) == "JOB_COMPLETION_INDEX"
    assert engine_ignored(None, {"SLURM_ARRAY_TASK_ID": "4"}) == "SLURM_ARRAY_TASK_ID"
    assert engine_ignored(None, {"GITHUB_ACTIONS": "true"}) is None
    assert engine_ignored("auto", {"JOB_COMPLETION_INDEX": "0"}) is None
    assert engine_ignored("1/2", {"SLURM_ARRAY_TASK_ID": "4"}) is None
