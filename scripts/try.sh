#!/usr/bin/env bash
# Install what is needed, create a sample zvm disk, and seed it.
# On a terminal the wizard asks the questions; without one it seeds with a demo key and a locked password.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"
disk="${1:-sample.qcow2}"
[ -e "$disk" ] || zvm-provision sample-disk "$disk" --size 20G
if [ -t 0 ] && [ -t 1 ]; then
  zvm-provision "$disk"
else
  mkdir -p demo
  [ -e demo/id_ed25519.pub ] || ssh-keygen -q -t ed25519 -N '' -C demo@zvm -f demo/id_ed25519
  zvm-provision "$disk" --no-password --ssh-key demo/id_ed25519.pub
fi
zvm-provision inspect "$disk"
