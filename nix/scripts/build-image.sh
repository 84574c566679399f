#!/usr/bin/env bash
# Builds the zvm disk image (main.raw: sparse, 20 GiB virtual) from the flake and copies it to OUT
# (default ./main.raw).
set -euo pipefail
here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

usage() { say "usage: ${0##*/} [OUT.raw]   (flake: \$ZVM_FLAKE, default $ZVM_FLAKE_DIR)"; }
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
out=${1:-main.raw}

require_nix_flakes

tmp=$(mktemp -d)
trap 'rm -rf -- "$tmp"' EXIT
link=$tmp/image
say "building $ZVM_FLAKE#image ..."
"${NIX[@]}" build "$ZVM_FLAKE#image" --out-link "$link"
[[ -f $link/main.raw ]] || die "the build has no main.raw (got: $(ls "$link"))"

# Keep the holes: a plain copy would write all 20 GiB.
rm -f -- "$out"
cp --sparse=always -- "$link/main.raw" "$out"
chmod u+w -- "$out"
say "wrote $out ($(du -h --apparent-size -- "$out" | cut -f1) virtual, $(du -h -- "$out" | cut -f1) on disk)"
say "next: seed it with zvm-provision $out, then ${ZVM_SCRIPTS_DIR}/start.sh $out"
