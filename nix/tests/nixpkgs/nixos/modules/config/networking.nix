# Mirrors networking.hostName (nixos/modules/tasks/network-interfaces.nix).
{ lib, ... }:
{
  options.networking.hostName = lib.mkOption {
    default = "nixos";
    type = lib.types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
  };
}
