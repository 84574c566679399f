#!/usr/bin/env python3
"""One-line breakages of nix/, each of the kind that breaks zvm at first use, applied one at a time to a copy
of the repository; tests/nix must fail for each. Prints one line per mutation and how many were caught.

    .venv/bin/python nix/tests/mutations.py            # all (about 10 s each)
    .venv/bin/python nix/tests/mutations.py NAME...    # some
    .venv/bin/python nix/tests/mutations.py --list

A mutation in UNCATCHABLE is one the offline checks cannot see (it would show only in a build or a boot on a
connected machine); nix/README.md lists each by name. It is run and reported like the others, and the run
fails if one of them starts being caught (move it) or a catchable one is missed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COPIED = ("nix", "provision", "tests", "pyproject.toml", "README.md")


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str  # relative to nix/
    old: str  # occurs exactly once in the file
    new: str
    breaks: str  # what breaks at first use


MUTATIONS = [
    # --- the package: nix build .#zvm-provision, nix run
    Mutation("import-check-moved-module", "package.nix", '"provision.core.layout"', '"provision.layout"',
             "build: pythonImportsCheck names a module that does not exist"),
    Mutation("import-check-typo", "package.nix", '"provision.cli"', '"provision.clii"', "build: import check"),
    Mutation("wrapper-without-qemu", "package.nix", "lib.makeBinPath [ qemu ]", "lib.makeBinPath [ ]",
             "seed: qemu-img is not found"),
    Mutation("wrapper-without-appliance", "package.nix", '"--set-default LIBGUESTFS_PATH ${libguestfs-appliance}"',
             '"--set-default LIBGUESTFS_CACHEDIR /tmp"', "seed: libguestfs finds no appliance"),
    Mutation("no-guestfs-dependency", "package.nix", "    python3Packages.guestfs\n", "",
             "run: import guestfs fails"),
    # --- the boot test: nix build .#checks.x86_64-linux.boot
    Mutation("boot-forces-filesystems", "tests/boot.nix", "fileSystems = import ../filesystems.nix;",
             "fileSystems = lib.mkForce (import ../filesystems.nix);", "boot test: /tmp/shared is gone, copy_from_host fails"),
    Mutation("boot-default-filesystems", "tests/boot.nix", "useDefaultFilesystems = false;", "",
             "boot test: two root filesystems"),
    Mutation("boot-copy-to-wrong-path", "tests/boot.nix", '"${seeded}/id_ed25519", "/root/id_ed25519"',
             '"${seeded}/id_ed25519", "/root/.ssh/id_ed25519"', "boot test: the key is not where ssh -i looks"),
    Mutation("boot-copies-public-key", "tests/boot.nix", 'zvm.copy_from_host("${seeded}/id_ed25519",',
             'zvm.copy_from_host("${seeded}/id_ed25519.pub",', "boot test: logs in with the public half"),
    Mutation("boot-seeded-disk-never-booted", "tests/boot.nix", 'os.environ["NIX_DISK_IMAGE"] = disk',
             'os.environ["NIX_DISK_IMAGE"] = unseeded_disk', "boot test: the seeded checks run on the unseeded disk"),
    Mutation("boot-host-nix-store", "tests/boot.nix", "mountHostNixStore = false;", "mountHostNixStore = true;",
             "boot test: the host's store hides the image's"),
    # --- login and the promises of the seed
    Mutation("password-login", "modules/hardening.nix", "PasswordAuthentication = false;",
             "PasswordAuthentication = true;", "login: passwords accepted over SSH"),
    Mutation("sudo-on", "modules/hardening.nix", "security.sudo.enable = false;", "security.sudo.enable = true;",
             "promise: no sudo"),
    Mutation("keys-in-homedir", "modules/hardening.nix", "authorizedKeysFiles = [ contract.authorizedKeysFile ];",
             "authorizedKeysFiles = [ ];", "login: the seeded key is not read"),
    Mutation("zvm-in-wheel", "modules/user.nix", "extraGroups = [ ];", 'extraGroups = [ "wheel" ];',
             "promise: zvm is not in wheel"),
    Mutation("password-file-elsewhere", "modules/user.nix", "hashedPasswordFile = contract.passwordFile;",
             'hashedPasswordFile = "/etc/zvm-password";', "login: the seeded password is not read"),
    Mutation("persist-not-in-initrd", "filesystems.nix", "    inherit (contract) device fsType;\n    neededForBoot = true;",
             "    inherit (contract) device fsType;\n    neededForBoot = false;", "boot: binds and password before /persist"),
    Mutation("world-writable-root", "filesystems.nix", '"mode=755"', '"mode=1777"', "login: sshd StrictModes refuses keys"),
    Mutation("no-persistence", "modules/ephemeral.nix", "inherit (contract.persistence) directories files;",
             "inherit (contract.persistence) directories;", "promise: the machine-id is not kept"),
    Mutation("no-impermanence", "flake.nix", "zvmModules = [\n        impermanence.nixosModules.impermanence\n",
             "zvmModules = [\n",
             "build: environment.persistence does not exist"),
    Mutation("module-without-impermanence", "flake.nix", "                impermanence.nixosModules.impermanence\n",
             "", "another flake's build: nixosModules.ephemeral needs environment.persistence"),
    Mutation("host-without-hardening", "hosts/zvm/default.nix", "hardening.enable = true;", "hardening.enable = false;",
             "promise: sudo, password login"),
    Mutation("no-serial-console", "modules/console.nix", '"console=ttyS0,115200"', '"console=ttyS1,115200"',
             "start: no login prompt on the terminal"),
    Mutation("hostname-before-etc", "modules/hostname.nix", 'deps = [ "etc" ];', "deps = [ ];",
             "promise: the seeded hostname is overwritten by the etc snippet"),
    Mutation("netbird-without-condition", "modules/netbird.nix",
             "unitConfig.ConditionPathExists = contract.netbird.setupKeyFile;", "",
             "boot: the enrolment runs (and fails) without a setup key"),
    # --- updates
    Mutation("updates-boot-only", "modules/updates.nix", 'operation = "switch";', 'operation = "boot";',
             "update: nothing changes until a reboot"),
    Mutation("updates-reboot", "modules/updates.nix", "allowReboot = false;", "allowReboot = true;",
             "update: VMs reboot under their users"),
    Mutation("updates-not-hourly", "modules/updates.nix", 'dates = "hourly";', 'dates = "monthly";',
             "update: a fix takes a month"),
    Mutation("image-without-decision", "modules/image.nix",
             "system.build.image = lib.mkIf (!updateDecided) (lib.mkForce noImageWithoutUpdateDecision);", "",
             "publish: an image nobody decided the updates of"),
    Mutation("updates-unquoted-flake", "modules/updates.nix", "flake = ''\"$(cat \"$RUNTIME_DIRECTORY/flake\")\"'';",
             "flake = cfg.flakeUrl;", "update: a URL with & runs nixos-rebuild without #zvm and its ref"),
    Mutation("updates-moving-ref", "modules/update-source.sh", 'write_out "$base?$joined#$fragment"', 'write_out "$url"',
             "update: switches to the moving ref, not the revision that was verified"),
    Mutation("updates-tag-unverified", "modules/update-source.sh",
             'verify verify-tag "$object" >/dev/null 2>&1 || fail', 'true || fail',
             "update: a release tag nobody signed is switched to"),
    Mutation("updates-old-release-under-the-name", "modules/update-source.sh",
             'if [ "$name" != "${ref#refs/tags/}" ]; then', "if false; then",
             "update: an older signed release moved under the ref's name is switched to"),
    # --- Netbird
    Mutation("netbird-socket-to-everyone", "modules/netbird.nix",
             'systemd.services.${client.service.name}.serviceConfig.RuntimeDirectoryMode = "0700";', "",
             "security: zvm steers the root Netbird daemon through its socket"),
    Mutation("netbird-retries-forever", "modules/netbird.nix", 'TimeoutStartSec = "15min";', 'Restart = "on-failure";',
             "enrolment: a revoked key is tried every 30 s for ever"),
    Mutation("netbird-key-kept", "modules/netbird.nix", 'if ! rm -f -- "$persisted_key"; then', "if ! true; then",
             "security: the setup key stays on persist after its use"),
    # --- the image
    Mutation("gcroot-dangling", "modules/image.nix", "ln -sfn /nix/var/nix/profiles $out/gcroots/profiles", "true",
             "GC: an invalid root on every run"),
    Mutation("store-in-wrong-place", "modules/image.nix", 'nixStorePrefix = "/store";', 'nixStorePrefix = "/nix/store";',
             "boot: the store is at /nix/nix/store"),
    Mutation("sector-4096", "modules/image.nix", "sectorSize = 512;", "sectorSize = 4096;", "boot: OVMF does not boot it"),
    Mutation("boot-entries-fill-esp", "modules/storage.nix", "entries = 5;", "entries = 50;",
             "update: the ESP fills up"),
    # --- only on a connected machine (nix/README.md, "checked only on a connected machine")
    Mutation("relax-deps-off", "package.nix", "pythonRelaxDeps = true;", "pythonRelaxDeps = false;",
             "build: pyproject bounds checked against 25.11's versions"),
    Mutation("boot-without-efi", "tests/boot.nix", "useEFIBoot = true;", "useEFIBoot = false;",
             "boot test: SeaBIOS cannot boot the EFI-only image"),
    # caught by tests/nix/test_nix_lock.py against the narHash public locks give; whether Nix 2.31 computes
    # the same is known only on a connected machine (nix/README.md)
    Mutation("nixpkgs-narhash", "flake.lock", '"narHash": "sha256-Ti+ZBvW6yrWWAg2szExVTwCd4qOJ3KlVr1tFHfyfi8Q="',
             '"narHash": "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="', "update: the nixpkgs tarball does not match"),
]

UNCATCHABLE = {"relax-deps-off"}
# The two blockers of issue 19: a mutation that puts each back (the default suite runs these two).
BLOCKERS = ("import-check-moved-module", "boot-forces-filesystems")


def apply(root: Path, mutation: Mutation) -> None:
    path = root / "nix" / mutation.file
    text = path.read_text()
    count = text.count(mutation.old)
    if count != 1:
        raise SystemExit(f"{mutation.name}: {mutation.old!r} occurs {count} times in nix/{mutation.file}")
    path.write_text(text.replace(mutation.old, mutation.new))


def caught(mutation: Mutation) -> bool:
    """Whether tests/nix fails on a copy of the repository with MUTATION applied."""
    return first_failure(mutation) is not None


def first_failure(mutation: Mutation) -> str | None:
    """The first test of tests/nix that fails on a copy of the repository with MUTATION applied, or None."""
    with tempfile.TemporaryDirectory(prefix="zvm-mutation-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        for name in COPIED:
            source = REPO / name
            if source.is_dir():
                shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
            else:
                shutil.copy2(source, root / name)
        apply(root, mutation)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "tests/nix", "-x", "-q", "-m", "not appliance", "-p", "no:cacheprovider",
             # it checks that each mutation still applies, so it fails for every one: it must not count
             "--ignore=tests/nix/test_nix_mutations.py"],
            cwd=root, capture_output=True, text=True, timeout=900,
            # tests/nix/test_nix_mutations.py must not start mutation runs from inside one
            env={**os.environ, "ZVM_NIX_MUTATION": mutation.name},
        )
        if result.returncode == 0:
            return None
        failed = [line.split()[1] for line in result.stdout.splitlines() if line.startswith(("FAILED ", "ERROR "))]
        return failed[0] if failed else f"pytest exit {result.returncode}: {result.stdout[-300:]}"


def main(argv: list[str]) -> int:
    if argv == ["--list"]:
        for m in MUTATIONS:
            print(f"{m.name:32} nix/{m.file:24} {m.breaks}")
        return 0
    chosen = [m for m in MUTATIONS if not argv or m.name in argv]
    unknown = set(argv) - {m.name for m in MUTATIONS}
    if unknown:
        raise SystemExit(f"unknown mutations: {sorted(unknown)}")
    surprises = []
    hits = 0
    for mutation in chosen:
        failure = first_failure(mutation)
        hit = failure is not None
        hits += hit
        expected = mutation.name not in UNCATCHABLE
        print(f"{'caught' if hit else 'MISSED'}  {mutation.name:32} {mutation.breaks}"
              + (f"\n        by {failure}" if hit else ""), flush=True)
        if hit != expected:
            surprises.append(mutation.name)
    print(f"{hits} of {len(chosen)} caught; expected missed (connected machine only): "
          f"{sorted(UNCATCHABLE & {m.name for m in chosen})}")
    if surprises:
        print(f"not as expected: {surprises}")
    return 1 if surprises else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
