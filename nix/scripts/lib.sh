# shellcheck shell=bash
# Shared helpers for the zvm scripts. Sourced, not run. Uses only bash builtins until a check passes,
# so a missing tool is reported clearly even with an almost empty PATH.

# Exit status when a prerequisite (nix with flakes, qemu, OVMF, qemu-img) is missing.
readonly EXIT_MISSING=3

ZVM_SCRIPTS_DIR=$(cd "${BASH_SOURCE[0]%/*}" && pwd)
ZVM_FLAKE_DIR=$(cd "$ZVM_SCRIPTS_DIR/.." && pwd)
# The flake reference the scripts build from: this checkout's nix/ directory unless told otherwise.
ZVM_FLAKE=${ZVM_FLAKE:-$ZVM_FLAKE_DIR}
export ZVM_SCRIPTS_DIR ZVM_FLAKE_DIR ZVM_FLAKE

say() { printf '%s\n' "$*" >&2; }
die() {
	say "error: $*"
	exit 1
}
missing() {
	say "error: $*"
	exit "$EXIT_MISSING"
}

# Nix 2.4+ with the nix-command and flakes features (enabled per call, so nix.conf need not say so).
NIX=(nix --extra-experimental-features "nix-command flakes")
require_nix_flakes() {
	if ! command -v nix >/dev/null 2>&1; then
		missing "nix is not installed (or not on PATH). Building the zvm image needs Nix with flakes:
  https://nixos.org/download  (then: nix --version should print 2.4 or newer)"
	fi
	if ! "${NIX[@]}" flake --help >/dev/null 2>&1; then
		missing "this nix ($(nix --version 2>/dev/null || echo unknown version)) has no flake support; Nix 2.4 or newer is needed"
	fi
}

require_tool() { # require_tool COMMAND WHAT-IT-IS-FOR PACKAGE-HINT
	if ! command -v "$1" >/dev/null 2>&1; then
		missing "$1 not found: it is needed $2. Install $3."
	fi
}

# Finds UEFI firmware for QEMU. Sets OVMF_CODE (and OVMF_VARS when the firmware is split) or fails.
# Honours OVMF_CODE/OVMF_VARS or OVMF_FD from the environment (the devShell sets them), then looks in
# the places Debian/Ubuntu, Fedora, Arch and NixOS (libvirt) install it, or OVMF_SEARCH_DIRS (colon-separated).
find_ovmf() {
	if [[ -n ${OVMF_CODE:-} ]]; then
		[[ -f $OVMF_CODE ]] || missing "OVMF_CODE=$OVMF_CODE does not exist"
		if [[ -n ${OVMF_VARS:-} && ! -f $OVMF_VARS ]]; then
			missing "OVMF_VARS=$OVMF_VARS does not exist"
		fi
		return 0
	fi
	if [[ -n ${OVMF_FD:-} ]]; then
		[[ -f $OVMF_FD ]] || missing "OVMF_FD=$OVMF_FD does not exist"
		OVMF_CODE=$OVMF_FD
		OVMF_VARS=
		return 0
	fi
	local dirs dir pair code vars
	IFS=: read -r -a dirs <<<"${OVMF_SEARCH_DIRS:-/usr/share/OVMF:/usr/share/edk2/ovmf:/usr/share/edk2/x64:/usr/share/edk2-ovmf/x64:/run/libvirt/nix-ovmf:/usr/share/qemu:/usr/share/ovmf}"
	for dir in "${dirs[@]}"; do
		for pair in "OVMF_CODE_4M.fd OVMF_VARS_4M.fd" "OVMF_CODE.4m.fd OVMF_VARS.4m.fd" "OVMF_CODE.fd OVMF_VARS.fd"; do
			code=${pair% *}
			vars=${pair#* }
			if [[ -f $dir/$code && -f $dir/$vars ]]; then
				OVMF_CODE=$dir/$code
				OVMF_VARS=$dir/$vars
				return 0
			fi
		done
		if [[ -f $dir/OVMF.fd ]]; then
			OVMF_CODE=$dir/OVMF.fd
			OVMF_VARS=
			return 0
		fi
	done
	missing "no OVMF (UEFI firmware for QEMU) found in ${dirs[*]}.
  Install it (Debian/Ubuntu: apt install ovmf; Fedora: dnf install edk2-ovmf; Arch: pacman -S edk2-ovmf),
  use the flake's devShell (nix develop ./nix), or set OVMF_CODE and OVMF_VARS (or OVMF_FD) to the firmware files."
}
