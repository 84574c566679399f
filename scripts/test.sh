#!/usr/bin/env bash
# Install what is needed, then run the whole test suite (the real libguestfs appliance included).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not appliance"` for the fast subset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
# Every run ends with one line: how many tests were skipped over all passes, and why (scripts/skipline.py).
ZVM_SKIP_LOG=$(mktemp)
export ZVM_SKIP_LOG
trap '.venv/bin/python scripts/skipline.py "$ZVM_SKIP_LOG"; rm -f "$ZVM_SKIP_LOG"' EXIT
# Nested KVM hangs the appliance on these machines; tests use software emulation unless told otherwise.
export ZVM_PROVISION_ACCEL="${ZVM_PROVISION_ACCEL:-tcg}"
# Two workers (pytest-xdist), a test file each at a time so a module's fixtures are built once: one worker's
# appliance runs overlap the other's work on these 2-core machines (README, "Tests", has the timings).
.venv/bin/python -m pytest -n 2 --dist loadfile "$@"

# nixpkgs 25.11 packages the tool with Python 3.13, for which Debian 12 has no libguestfs binding: where a
# Python 3.13 is found, the tests that need no appliance run on it too (the binding's own tests skip there).
python313() {
  local candidate
  for candidate in "${ZVM_PROVISION_PYTHON313:-}" python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3.13; do
    [ -n "$candidate" ] && "$candidate" -c 'import sys; assert sys.version_info[:2] == (3, 13)' 2>/dev/null \
      && { echo "$candidate"; return; }
  done
}
if [ $# -eq 0 ] && PY313=$(python313) && [ -n "$PY313" ]; then
  if ! .venv-3.13/bin/python -c "import provision, pytest, hypothesis, xdist" 2>/dev/null; then
    echo "==> installing zvm-provision into .venv-3.13"
    "$PY313" -m venv .venv-3.13
    .venv-3.13/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
  fi
  echo "==> the tests that need no appliance, on $(.venv-3.13/bin/python --version)"
  .venv-3.13/bin/python -m pytest -n 2 --dist loadfile -m "not appliance" -p no:cacheprovider -q
else
  echo "==> no Python 3.13 found (or pytest arguments given): the Python 3.13 pass is skipped"
fi
