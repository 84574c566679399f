# Mirrors the options of nixos/modules/system/boot/stage-1.nix that the flake and impermanence use:
# fileSystems.<name>.neededForBoot and boot.initrd.postMountCommands.
{ lib, ... }:
{
  options = {
    fileSystems = lib.mkOption {
      type = lib.types.attrsOf (
        lib.types.submodule {
          options.neededForBoot = lib.mkOption {
            type = lib.types.bool;
            default = false;
          };
        }
      );
    };
    boot.initrd.postMountCommands = lib.mkOption {
      type = lib.types.lines;
      default = "";
    };
  };
}
