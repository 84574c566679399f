# Mirrors the options of nixos/modules/system/boot/loader/systemd-boot/systemd-boot.nix the flake sets.
{ lib, ... }:
{
  options.boot.loader.systemd-boot = {
    enable = lib.mkOption {
      type = lib.types.bool;
      default = false;
    };
    editor = lib.mkOption {
      type = lib.types.bool;
      default = true;
    };
    # null: every generation not yet garbage-collected keeps its entry (kernel + initrd on the ESP).
    configurationLimit = lib.mkOption {
      type = lib.types.nullOr lib.types.int;
      default = null;
    };
  };
}
