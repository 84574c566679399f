#!/usr/bin/env bash
# Builds the system and the image twice and compares them.
#  - The system (nixosConfigurations.zvm's toplevel) must be reproducible: the second build is a
#    `nix build --rebuild` of the toplevel derivation, which fails if its output is not bit-for-bit
#    identical, and the two closures (every store path the system refers to) must be the same list.
#    Exit 1 if either differs.
#  - main.raw is compared too (sha256 + cmp), but a difference is only reported: ext4 inode timestamps
#    are written by the kernel at build time (see nix/README.md). ZVM_STRICT_IMAGE=1 makes it fatal.
set -euo pipefail
here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

[[ ${1:-} == -h || ${1:-} == --help ]] && { say "usage: ${0##*/}   (flake: \$ZVM_FLAKE, default $ZVM_FLAKE_DIR)"; exit 0; }

require_nix_flakes
require_tool sha256sum "to hash the images" "coreutils"

work=$(mktemp -d)
trap 'rm -rf -- "$work"' EXIT
status=0

say "[1/4] building the system closure"
"${NIX[@]}" build "$ZVM_FLAKE#toplevel" --out-link "$work/toplevel"
top1=$(readlink -f "$work/toplevel")
"${NIX[@]}" path-info --recursive "$top1" | sort >"$work/closure-1"

say "[2/4] rebuilding the toplevel and comparing it and its closure"
if "${NIX[@]}" build --rebuild "$ZVM_FLAKE#toplevel" --out-link "$work/toplevel-2"; then
	top2=$(readlink -f "$work/toplevel-2")
	"${NIX[@]}" path-info --recursive "$top2" | sort >"$work/closure-2"
	if [[ $top1 == "$top2" ]] && cmp -s "$work/closure-1" "$work/closure-2"; then
		say "closure: reproducible ($top1, $(wc -l <"$work/closure-1") paths)"
	else
		say "closure: DIFFERS: $top1 vs $top2"
		diff "$work/closure-1" "$work/closure-2" >&2 || true
		status=1
	fi
else
	say "closure: DIFFERS: nix build --rebuild found outputs that are not bit-for-bit identical (see above)"
	status=1
fi

say "[3/4] building the image"
"${NIX[@]}" build "$ZVM_FLAKE#image" --out-link "$work/image"
img1=$(readlink -f "$work/image")/main.raw
hash1=$(sha256sum -- "$img1" | cut -d' ' -f1)

say "[4/4] rebuilding the image"
img2=
if "${NIX[@]}" build --rebuild --keep-failed "$ZVM_FLAKE#image" --out-link "$work/image-2"; then
	img2=$img1 # --rebuild succeeded: the new output was identical and was discarded
elif [[ -f "$(readlink -f "$work/image").check/main.raw" ]]; then
	img2="$(readlink -f "$work/image").check/main.raw"
fi
if [[ -z $img2 ]]; then
	say "image: could not obtain a second build to compare"
	[[ ${ZVM_STRICT_IMAGE:-0} == 1 ]] && status=1
else
	hash2=$(sha256sum -- "$img2" | cut -d' ' -f1)
	say "image: sha256 $hash1 (first)"
	say "image: sha256 $hash2 (second)"
	if [[ $hash1 == "$hash2" ]] && cmp -s -- "$img1" "$img2"; then
		say "image: byte-identical"
	else
		say "image: differs ($(cmp -- "$img1" "$img2" 2>&1 | head -n1 || true)); expected (ext4 timestamps), the closure is what to audit"
		[[ ${ZVM_STRICT_IMAGE:-0} == 1 ]] && status=1
	fi
fi

if [[ $status == 0 ]]; then say "reproducible: yes"; else say "reproducible: NO"; fi
exit "$status"
