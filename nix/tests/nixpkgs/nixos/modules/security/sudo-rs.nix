# Mirrors security.sudo-rs.enable (nixos/modules/security/sudo-rs.nix).
{ lib, ... }:
{
  options.security.sudo-rs.enable = lib.mkOption {
    type = lib.types.bool;
    default = false;
  };
}
