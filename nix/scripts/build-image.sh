#!/usr/bin/env bash
# Builds the zvm disk image (main.raw: sparse, 20 GiB virtual) from the flake and copies it to OUT
# (default ./main.raw). An existing OUT may be a seeded image: it is replaced only with --force.
set -euo pipefail
here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

usage() { say "usage: ${0##*/} [--force] [OUT.raw]   (flake: \$ZVM_FLAKE, default $ZVM_FLAKE_DIR)"; }
force=0
case ${1:-} in
-h | --help) usage; exit 0 ;;
--force) force=1; shift ;;
esac
out=${1:-main.raw}

# Checked before building: a seeded image holds a password hash, keys and a host key that exist nowhere else.
if [[ -e $out && $force != 1 ]]; then
	die "$out exists (it may be seeded: password, keys, host key); not replacing it.
  Boot it with ${ZVM_SCRIPTS_DIR}/start.sh $out, build to another name, or pass --force to replace it."
fi

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
