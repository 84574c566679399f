#!/usr/bin/env bash
# Boots IMAGE (default main.raw), building it first only when it does not exist yet: an existing image may
# be seeded, and rebuilding it would boot an unseeded one.
set -euo pipefail
here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

usage() { say "usage: ${0##*/} [IMAGE]   (default main.raw; built first if missing)"; }
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
image=${1:-main.raw}

if [[ -e $image ]]; then
	say "booting the existing $image (not rebuilt; ${ZVM_SCRIPTS_DIR}/build-image.sh --force $image rebuilds it)"
else
	"$BASH" "$ZVM_SCRIPTS_DIR/build-image.sh" "$image"
	say "note: $image is not seeded yet; stop the VM and run zvm-provision $image for a password and keys"
fi
exec "$BASH" "$ZVM_SCRIPTS_DIR/start.sh" "$image"
