#!/usr/bin/env bash
# Boots a zvm image (main.raw or a qcow2) under QEMU with OVMF (UEFI).
# Environment: ZVM_MEM (MiB, default 4096), ZVM_CPUS (default 2), ZVM_SSH_PORT (host port forwarded to the
# VM's sshd, default 2222), ZVM_ACCEL (auto|kvm|tcg, default auto), OVMF_CODE/OVMF_VARS or OVMF_FD (firmware files; searched for otherwise).
set -euo pipefail
here=${BASH_SOURCE[0]%/*}
[[ $here == "${BASH_SOURCE[0]}" ]] && here=.
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

usage() { say "usage: ${0##*/} [IMAGE]   (default main.raw)"; }
[[ ${1:-} == -h || ${1:-} == --help ]] && { usage; exit 0; }
image=${1:-main.raw}

require_tool qemu-system-x86_64 "to run the VM" "QEMU (Debian/Ubuntu: apt install qemu-system-x86)"
find_ovmf
[[ -f $image ]] || die "$image does not exist; build it first (${ZVM_SCRIPTS_DIR}/build-image.sh)"

case $image in
*.qcow2) format=qcow2 ;;
*) format=raw ;;
esac

case ${ZVM_ACCEL:-auto} in
kvm) accel=(-accel kvm -cpu host) ;;
tcg) accel=(-accel tcg) ;;
auto)
	if [[ -r /dev/kvm && -w /dev/kvm ]]; then
		accel=(-accel kvm -cpu host)
	else
		say "note: /dev/kvm is not usable; falling back to software emulation (slow)"
		accel=(-accel tcg)
	fi
	;;
*) die "ZVM_ACCEL must be auto, kvm or tcg (got ${ZVM_ACCEL})" ;;
esac

firmware=()
if [[ -n ${OVMF_VARS:-} ]]; then
	# UEFI variables are writable: each image gets its own copy next to it.
	vars="${image%.*}.ovmf_vars.fd"
	[[ -f $vars ]] || cp -- "$OVMF_VARS" "$vars"
	chmod u+w -- "$vars"
	firmware=(
		-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE"
		-drive "if=pflash,format=raw,unit=1,file=$vars"
	)
else
	firmware=(-bios "$OVMF_CODE")
fi

say "booting $image ($format) with $OVMF_CODE; ssh -p ${ZVM_SSH_PORT:-2222} zvm@localhost"
exec qemu-system-x86_64 \
	"${accel[@]}" \
	-machine q35 \
	-m "${ZVM_MEM:-4096}" \
	-smp "${ZVM_CPUS:-2}" \
	"${firmware[@]}" \
	-drive "file=$image,format=$format,if=virtio" \
	-nic "user,model=virtio-net-pci,hostfwd=tcp:127.0.0.1:${ZVM_SSH_PORT:-2222}-:22" \
	-nographic
