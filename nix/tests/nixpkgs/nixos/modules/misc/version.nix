# Mirrors nixos/modules/misc/version.nix (system.stateVersion).
{ lib, ... }:
{
  options.system.stateVersion = lib.mkOption {
    type = lib.types.str;
  };
}
