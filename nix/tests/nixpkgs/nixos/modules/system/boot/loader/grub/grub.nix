# Mirrors boot.loader.grub.enable (nixos/modules/system/boot/loader/grub/grub.nix): on by default.
{ lib, ... }:
{
  options.boot.loader.grub.enable = lib.mkOption {
    type = lib.types.bool;
    default = true;
  };
}
