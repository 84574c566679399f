# Mirrors the options of nixos/modules/virtualisation/qemu-vm.nix that tests/boot.nix sets. The NixOS
# test framework adds this module to every node; it replaces fileSystems with virtualisation.fileSystems.
{ lib, config, options, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.virtualisation = {
    directBoot.enable = mkOption {
      type = types.bool;
      default = true;
    };
    mountHostNixStore = mkOption {
      type = types.bool;
      default = true;
    };
    useEFIBoot = mkOption {
      type = types.bool;
      default = false;
    };
    memorySize = mkOption {
      type = types.ints.positive;
      default = 1024;
    };
    # The very declaration of fileSystems, as there.
    fileSystems = options.fileSystems;
  };
  # mkVMOverride there.
  config.fileSystems = lib.mkOverride 10 config.virtualisation.fileSystems;
}
