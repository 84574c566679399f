# tmpfs root; the Nix store, the persist filesystem and the ESP mounted by label (../filesystems.nix); the
# allowlist that survives a reboot, generated from the persist contract (persist-layout.json, via ../contract.nix).
{ config, lib, ... }:
let
  contract = import ../contract.nix { };
  persistence = config.environment.persistence.${contract.mountPoint};

  # The seeding record is for root under the persist mount only: no bind may put it (or a directory holding
  # it) into the running system's tree, where the allowlist lives.
  record = lib.removePrefix contract.mountPoint contract.seedRecord;
  covers = path: record == path || lib.hasPrefix "${path}/" record;
  persisted =
    map (d: d.dirPath) persistence.directories
    ++ map (f: f.filePath) persistence.files
    ++ lib.concatMap (u: map (d: d.dirPath) u.directories ++ map (f: f.filePath) u.files) (
      lib.attrValues persistence.users
    );
in
{
  # For zvm.user.enable: the contract's per-user entries are zvm's, kept only where that user exists.
  imports = [ ./user.nix ];

  fileSystems = import ../filesystems.nix;

  environment.persistence.${contract.mountPoint} = {
    hideMounts = true;
    inherit (contract.persistence) directories files;
    users = lib.mkIf config.zvm.user.enable contract.persistence.users;
  };

  assertions = [
    {
      assertion = !lib.any covers persisted;
      message = "${contract.seedRecord}, the seeding record, must stay outside the allowlist, but ${
        lib.concatStringsSep ", " (lib.filter covers persisted)
      } is persisted (persist-layout.json or environment.persistence)";
    }
  ];
}
