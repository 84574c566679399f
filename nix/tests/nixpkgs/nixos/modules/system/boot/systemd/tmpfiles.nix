# Mirrors systemd.tmpfiles.rules (nixos/modules/system/boot/systemd/tmpfiles.nix).
{ lib, ... }:
{
  options.systemd.tmpfiles.rules = lib.mkOption {
    type = lib.types.listOf lib.types.str;
    default = [ ];
  };
}
