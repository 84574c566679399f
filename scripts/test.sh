#!/usr/bin/env bash
# Install what is needed, then run the whole test suite (the real libguestfs appliance included).
# Extra arguments go to pytest, e.g. `scripts/test.sh -m "not appliance"` for the fast subset.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
# Nested KVM hangs the appliance on these machines; tests use software emulation unless told otherwise.
export ZVM_PROVISION_ACCEL="${ZVM_PROVISION_ACCEL:-tcg}"
exec .venv/bin/python -m pytest "$@"
