# Mirrors security.sudo.enable (nixos/modules/security/sudo.nix): on by default.
{ lib, ... }:
{
  options.security.sudo.enable = lib.mkOption {
    type = lib.types.bool;
    default = true;
  };
}
