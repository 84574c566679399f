#!/usr/bin/env bash
# Writes nix/OPTIONS.md, the reference of the options zvm's modules declare, from the declarations
# themselves (nix/tests/eval-modules.nix, with the offline inputs: $ZVM_NIX_INPUTS or ../shared/nix-inputs).
# tests/nix/test_nix_modules.py fails when the file is not what this writes.
set -euo pipefail
cd "$(dirname "$0")/../.."
inputs=${ZVM_NIX_INPUTS:-$(cd .. && pwd)/shared/nix-inputs}
[ -d "$inputs" ] || inputs=/work/shared/nix-inputs
NIX_PATH= nix-instantiate --eval --strict --json \
  -E "(import ./nix/tests/eval-modules.nix { inputs = $inputs; }).optionsDoc" 2>/dev/null |
  python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin))' >nix/OPTIONS.md
echo "wrote nix/OPTIONS.md"
