#!/usr/bin/env bash
# Packages main.raw into a compressed qcow2 for distribution (raw images lose their sparseness in
# tar, scp and object stores).
set -euo pipefail
here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

usage() { say "usage: ${0##*/} [IN.raw [OUT.qcow2]]   (default main.raw zvm.qcow2)"; }
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
in=${1:-main.raw}
out=${2:-zvm.qcow2}

require_tool qemu-img "to convert the image" "qemu-utils (Debian/Ubuntu: apt install qemu-utils)"
[[ -f $in ]] || die "$in does not exist; build it first (${ZVM_SCRIPTS_DIR}/build-image.sh)"

tmp="$out.tmp.$$"
trap 'rm -f -- "$tmp"' EXIT
qemu-img convert -f raw -O qcow2 -c -o compat=1.1 -- "$in" "$tmp"
mv -f -- "$tmp" "$out"
trap - EXIT
say "wrote $out ($(du -h -- "$out" | cut -f1), 20 GiB virtual)"
