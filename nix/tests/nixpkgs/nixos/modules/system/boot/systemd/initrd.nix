# Mirrors the options of nixos/modules/system/boot/systemd/initrd.nix that impermanence sets.
{ lib, ... }:
let
  unitOptions = import ../../../../lib/systemd-unit-options.nix { inherit lib; };
  inherit (lib) mkOption types;
in
{
  options.boot.initrd.systemd = {
    enable = mkOption {
      type = types.bool;
      default = false;
    };
    mounts = mkOption {
      type = types.listOf (types.submodule unitOptions.initrdMount);
      default = [ ];
    };
    suppressedUnits = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
  };
}
