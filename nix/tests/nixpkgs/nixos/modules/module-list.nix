# The stand-ins for nixpkgs' nixos/modules/module-list.nix: only the modules whose options this flake or
# impermanence set or read. image/repart.nix, profiles/qemu-guest.nix and virtualisation/qemu-vm.nix are
# not here, as they are not in nixpkgs' list either (the flake imports the first two through
# modulesPath; the NixOS test framework adds the third).
[
  ./misc/assertions.nix
  ./misc/nixpkgs.nix
  ./misc/extra-arguments.nix
  ./misc/version.nix
  ./config/users-groups.nix
  ./config/nix.nix
  ./config/networking.nix
  ./config/locale.nix
  ./config/shells-environment.nix
  ./security/sudo.nix
  ./security/sudo-rs.nix
  ./services/misc/nix-gc.nix
  ./services/networking/ssh/sshd.nix
  ./system/activation/top-level.nix
  ./system/activation/activation-script.nix
  ./system/etc/etc.nix
  ./system/boot/kernel.nix
  ./system/boot/stage-1.nix
  ./system/boot/systemd.nix
  ./system/boot/systemd/initrd.nix
  ./system/boot/systemd/tmpfiles.nix
  ./system/boot/loader/loader.nix
  ./system/boot/loader/efi.nix
  ./system/boot/loader/grub/grub.nix
  ./system/boot/loader/systemd-boot/systemd-boot.nix
  ./tasks/filesystems.nix
  # Real nixpkgs modules, evaluated as they are (each names its source revision).
  ../../vendored/auto-upgrade.nix
  ../../vendored/netbird.nix
  ./misc/vendored-support.nix
]
