#!/usr/bin/env bash
# Checks that the system and the image build bit for bit the same twice.
#
# Comparing store paths or closures proves nothing: they are input-addressed, so two evaluations of the
# same flake give the same paths whether or not the builds are reproducible. What can fail is a rebuild:
# `nix build --rebuild` builds a derivation again and fails when the new output differs from the first.
#  - toplevel (nixosConfigurations.zvm's system): rebuilt; a difference makes this script fail (exit 1).
#  - image (main.raw): rebuilt and its sha256 compared. Known to differ (ext4 inode times, the registration
#    times in the Nix database; see nix/README.md): reported, and fatal only with ZVM_STRICT_IMAGE=1.
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

say "[1/4] building the system (toplevel)"
"${NIX[@]}" build "$ZVM_FLAKE#toplevel" --out-link "$work/toplevel"

say "[2/4] rebuilding it: nix fails if the output is not bit-for-bit the same"
if "${NIX[@]}" build --rebuild "$ZVM_FLAKE#toplevel" --out-link "$work/toplevel-2"; then
	say "system: reproducible ($(readlink -f "$work/toplevel"))"
else
	say "system: NOT reproducible (or the rebuild failed): see nix's message above"
	status=1
fi

say "[3/4] building the image"
"${NIX[@]}" build "$ZVM_FLAKE#image" --out-link "$work/image"
first=$(readlink -f "$work/image")
hash1=$(sha256sum -- "$first/main.raw" | cut -d' ' -f1)

say "[4/4] rebuilding the image"
image_same=no
if "${NIX[@]}" build --rebuild --keep-failed "$ZVM_FLAKE#image" --out-link "$work/image-2"; then
	image_same=yes # nix compared the outputs and found them identical
	hash2=$hash1
elif [[ -f $first.check/main.raw ]]; then
	hash2=$(sha256sum -- "$first.check/main.raw" | cut -d' ' -f1)
	[[ $hash1 == "$hash2" ]] && image_same=yes
else
	hash2="(no second build)"
fi
say "image: sha256 $hash1 (first)"
say "image: sha256 $hash2 (second)"
if [[ $image_same == yes ]]; then
	say "image: byte-identical"
else
	say "image: differs (known: ext4 inode times and Nix database registration times; see nix/README.md)"
	[[ ${ZVM_STRICT_IMAGE:-0} == 1 ]] && status=1
fi

if [[ $status == 0 ]]; then say "reproducible: yes"; else say "reproducible: NO"; fi
exit "$status"
