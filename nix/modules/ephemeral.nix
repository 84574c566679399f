# tmpfs root; the Nix store, the persist filesystem and the ESP mounted by label (../filesystems.nix); the
# allowlist that survives a reboot, generated from the persist contract (persist-layout.json, via ../contract.nix).
{ ... }:
let
  contract = import ../contract.nix { };
in
{
  fileSystems = import ../filesystems.nix;

  environment.persistence.${contract.mountPoint} = {
    hideMounts = true;
    inherit (contract.persistence) directories files users;
  };
}
