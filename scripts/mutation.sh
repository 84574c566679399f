#!/usr/bin/env bash
# Mutation testing with mutmut 3 (not part of scripts/test.sh): mutate provision/core/ and the seed command's
# option wiring (pyproject.toml's [tool.mutmut]), run the fast tests that cover each mutant, print the score.
#   scripts/mutation.sh                          every module in [tool.mutmut]'s only_mutate (hours under TCG load)
#   scripts/mutation.sh 'provision.core.shards.*' 'provision.commands.seed.options.*'    some modules
# Surviving mutants: .venv/bin/mutmut results; one of them: .venv/bin/mutmut show NAME.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
.venv/bin/python -c "import mutmut" 2>/dev/null \
  || .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,mutation]'
rm -rf mutants  # mutmut's working copy: a stale one would mix runs
.venv/bin/mutmut run --max-children "${ZVM_MUTATION_CHILDREN:-2}" "$@" || true  # its exit code is not a verdict
.venv/bin/python scripts/mutation_score.py
