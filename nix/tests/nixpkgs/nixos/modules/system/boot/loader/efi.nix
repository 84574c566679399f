# Mirrors nixos/modules/system/boot/loader/efi.nix.
{ lib, ... }:
{
  options.boot.loader.efi = {
    canTouchEfiVariables = lib.mkOption {
      type = lib.types.bool;
      default = false;
    };
    efiSysMountPoint = lib.mkOption {
      type = lib.types.str;
      default = "/boot";
    };
  };
}
