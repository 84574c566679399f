# tmpfs root; the Nix store and the persist filesystem mounted by label; the allowlist that survives a reboot,
# generated from the persist contract (persist-layout.json, through ../contract.nix).
{ ... }:
let
  contract = import ../contract.nix { };
in
{
  fileSystems."/" = {
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

  fileSystems."/nix" = {
    device = "/dev/disk/by-label/${contract.disk.nixLabel}";
    fsType = "ext4";
    neededForBoot = true;
  };

  # neededForBoot: mounted in the initrd, so the users activation script can read the password file,
  # /etc/machine-id can be bound before systemd starts, and impermanence's assertion holds.
  fileSystems.${contract.mountPoint} = {
    inherit (contract) device fsType;
    neededForBoot = true;
  };

  environment.persistence.${contract.mountPoint} = {
    hideMounts = true;
    inherit (contract.persistence) directories files users;
  };
}
