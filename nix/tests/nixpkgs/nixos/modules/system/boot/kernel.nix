# Mirrors the options of nixos/modules/system/boot/kernel.nix that the flake uses or reads, and the
# loglevel= parameter that module puts first on every kernel command line.
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.boot = {
    kernelPackages = mkOption {
      type = types.raw;
      default = pkgs.linuxPackages;
    };
    kernelParams = mkOption {
      type = types.listOf (
        types.strMatching ''([^"[:space:]]|"[^"]*")+''
        // {
          name = "kernelParam";
          description = "string, with spaces inside double quotes";
        }
      );
      default = [ ];
    };
    consoleLogLevel = mkOption {
      type = types.int;
      default = 4;
    };
    kernelModules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    initrd.availableKernelModules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    initrd.kernelModules = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
  };
  config.boot.kernelParams = [ "loglevel=${toString config.boot.consoleLogLevel}" ];
}
