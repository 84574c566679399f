#!/usr/bin/env bash
# The boot test's seeding (nix/tests/boot.nix): a copy of the built image, seeded by zvm-provision with a
# test key pair and the test password, as a person would. tests/nix/test_nix_boot.py runs this very script
# on a sample disk, so the boot test cannot drift from what the tool accepts.
# usage: ZVM_TEST_PASSWORD=... seed-image.sh IMAGE.raw OUT_DIR
set -euo pipefail
image=$1
out=$2
mkdir -p "$out"
ssh-keygen -q -t ed25519 -N "" -C zvm-boot-test -f "$out/id_ed25519"
# zvm-provision refuses a password file others can read; mktemp makes it 0600 whatever the umask.
password_file=$(mktemp)
trap 'rm -f "$password_file"' EXIT
printf '%s\n' "$ZVM_TEST_PASSWORD" >"$password_file"
qemu-img convert -f raw -O qcow2 "$image" "$out/zvm.qcow2"
# A hostname, so that the seeded boots come up under it (boot.nix checks both seeded boots and an unseeded one).
zvm-provision seed "$out/zvm.qcow2" --password-file "$password_file" --ssh-key "$out/id_ed25519.pub" \
  --hostname zvm-boot-test --operator zvm-boot-test --yes --json >"$out/seed.json"
