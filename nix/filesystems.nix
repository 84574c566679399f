# The zvm disk's mounts, all by filesystem label (the same disk may appear as vda, sda or nvme0n1).
# Pure, like contract.nix: modules/ephemeral.nix sets fileSystems from it, and tests/boot.nix hands the
# same set to the NixOS test framework (which replaces fileSystems with virtualisation.fileSystems).
let
  contract = import ./contract.nix { };
in
{
  "/" = {
    device = "none";
    fsType = "tmpfs";
    # mode=755: tmpfs defaults to 1777, and a world-writable / fails sshd StrictModes for
    # AuthorizedKeysFile /persist/home/%u/..., whose ownership walk reaches /.
    options = [
      "defaults"
      "size=25%"
      "mode=755"
    ];
  };

  "/nix" = {
    device = "/dev/disk/by-label/${contract.disk.nixLabel}";
    fsType = "ext4";
    neededForBoot = true;
  };

  # neededForBoot: mounted in the initrd, so the users activation script can read the password file,
  # /etc/machine-id can be bound before systemd starts, and impermanence's assertion holds.
  ${contract.mountPoint} = {
    inherit (contract) device fsType;
    neededForBoot = true;
  };

  # The ESP, where systemd-boot keeps one loader entry per generation (see modules/storage.nix).
  "/boot" = {
    device = "/dev/disk/by-label/${contract.disk.espLabel}";
    fsType = "vfat";
    options = [
      "fmask=0077"
      "dmask=0077"
    ];
  };
}
