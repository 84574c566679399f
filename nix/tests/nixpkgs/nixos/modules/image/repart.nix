# Mirrors nixos/modules/image/repart.nix (with nixStorePrefix, nixpkgs 24.11 and later) and image/file-options.nix:
# the image options the flake sets, image.baseName/fileName from name and version, the UEFI label-length
# assertion and warning (image.repart.assertions/warnings: checked when system.build.image is evaluated, not
# with the system's assertions), and system.build.image (here a stand-in derivation holding the partitions).
{ lib, config, options, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.image.repart;
  GPTMaxLabelLength = 36;
  partitionOptions = {
    options = {
      storePaths = mkOption {
        type = types.listOf types.path;
        default = [ ];
      };
      nixStorePrefix = mkOption {
        type = types.path;
        default = "/nix/store";
      };
      contents = mkOption {
        type = types.attrsOf (types.submodule { options.source = mkOption { type = types.path; }; });
        default = { };
      };
      repartConfig = mkOption {
        type = types.attrsOf (
          types.oneOf [
            types.str
            types.int
            types.bool
            (types.listOf types.str)
          ]
        );
      };
    };
  };
in
{
  options.image = {
    baseName = mkOption { type = types.str; };
    extension = mkOption { type = types.str; };
    fileName = mkOption {
      type = types.str;
      default = "${config.image.baseName}.${config.image.extension}";
    };
    repart = {
      name = mkOption { type = types.str; };
      version = mkOption {
        type = types.nullOr types.str;
        default = null;
      };
      seed = mkOption {
        type = types.nullOr types.str;
        default = "0867da16-f251-457d-a9e8-c31f9a3c220b";
      };
      sectorSize = mkOption {
        type = types.nullOr types.int;
        default = 512;
      };
      mkfsOptions = mkOption {
        type = types.attrsOf (types.listOf types.str);
        default = { };
      };
      partitions = mkOption {
        type = types.attrsOf (types.submodule partitionOptions);
        default = { };
      };
      assertions = mkOption {
        type = options.assertions.type;
        default = [ ];
        internal = true;
      };
      warnings = mkOption {
        type = options.warnings.type;
        default = [ ];
        internal = true;
      };
    };
  };

  config = {
    image.baseName = cfg.name + lib.optionalString (cfg.version != null) "_${cfg.version}";
    image.extension = "raw";
    image.repart.assertions = lib.mapAttrsToList (file: p: {
      assertion = p.repartConfig ? Label -> builtins.stringLength p.repartConfig.Label <= GPTMaxLabelLength;
      message = "The partition label of ${file} is longer than the maximum label length supported by UEFI (${toString GPTMaxLabelLength}).";
    }) cfg.partitions;
    # Room to count up a version in the label (systemd-sysupdate A/B updates).
    image.repart.warnings = lib.concatLists (
      lib.mapAttrsToList (
        file: p:
        lib.optional (
          p.repartConfig ? Label && builtins.stringLength p.repartConfig.Label >= GPTMaxLabelLength - 2
        ) "The partition label of ${file} is ${toString (builtins.stringLength p.repartConfig.Label)} characters long; the suggested maximum is ${toString (GPTMaxLabelLength - 2)}."
      ) cfg.partitions
    );
    system.build.image = lib.asserts.checkAssertWarn cfg.assertions cfg.warnings (
      pkgs.runCommand cfg.name { passthru.partitions = cfg.partitions; } ""
    );
  };
}
