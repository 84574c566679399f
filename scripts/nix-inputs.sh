#!/usr/bin/env bash
# Fetch exactly the inputs nix/flake.lock pins (each tarball's NAR hash checked against the lock's narHash by
# Nix itself) into the cache the tests in tests/nix use: .nix-inputs/ at the repository's root, or DEST.
# Needs nix-instantiate and a network that reaches GitHub; offline, tests/nix use ../shared/nix-inputs.
#   scripts/nix-inputs.sh [DEST]
# ZVM_NIX_INPUTS_URL (default https://github.com) is where OWNER/REPO/archive/REV.tar.gz is fetched from.
set -euo pipefail
cd "$(dirname "$0")/.."
LOCK="${ZVM_NIX_LOCK:-$PWD/nix/flake.lock}"
DEST="${1:-$PWD/.nix-inputs}"
BASE="${ZVM_NIX_INPUTS_URL:-https://github.com}"
command -v nix-instantiate >/dev/null || { echo "nix-instantiate is not installed (Debian: apt install nix-bin)" >&2; exit 1; }

# builtins.fetchTarball with the lock's narHash: a tarball whose unpacked tree hashes otherwise is refused.
# shellcheck disable=SC2016  # a Nix expression, not shell
paths=$(NIX_PATH="" nix-instantiate --eval --strict --json --argstr lock "$LOCK" --argstr base "$BASE" -E '
  { lock, base }:
  let
    nodes = (builtins.fromJSON (builtins.readFile lock)).nodes;
    fetch = name:
      let l = nodes.${name}.locked; in
      if l.type != "github" then throw "flake.lock: ${name} is not a github input (${l.type})"
      else builtins.fetchTarball { url = "${base}/${l.owner}/${l.repo}/archive/${l.rev}.tar.gz"; sha256 = l.narHash; };
  in { impermanence = fetch "impermanence"; nixpkgs = fetch "nixpkgs"; }' 2> >(grep -v "nixbld" >&2))
read -r impermanence nixpkgs < <(python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["impermanence"], d["nixpkgs"])' <<<"$paths")

# Copied out of the store (a garbage collection must not empty the cache), then put in place at once.
mkdir -p "$(dirname "$DEST")"
work=$(mktemp -d "$(dirname "$DEST")/.nix-inputs.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -R "$impermanence" "$work/impermanence"
mkdir "$work/nixpkgs-lib"
cp -R "$nixpkgs/lib" "$work/nixpkgs-lib/lib"
[ ! -e "$nixpkgs/COPYING" ] || cp "$nixpkgs/COPYING" "$work/nixpkgs-lib/"
chmod -R u+w "$work"
rm -rf "$DEST"
mv "$work" "$DEST"
echo "the locked inputs are in $DEST (tests/nix find them there; ZVM_NIX_INPUTS=$DEST names them too)"
