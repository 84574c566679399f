# Mirrors nixos/modules/config/nix.nix: nix.enable, nix.package, nix.envVars and nix.settings (a
# submodule whose freeform values are "Nix config atoms" or lists of them, with a few typed settings).
{ lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  confAtom =
    types.nullOr (
      types.oneOf [
        types.bool
        types.int
        types.float
        types.str
        types.path
        types.package
      ]
    )
    // {
      description = "Nix config atom (null, bool, int, float, str, path or package)";
    };
in
{
  options.nix = {
    enable = mkOption {
      type = types.bool;
      default = true;
    };
    package = mkOption {
      type = types.package;
      default = pkgs.nix;
    };
    envVars = mkOption {
      type = types.attrs;
      internal = true;
      default = { };
    };
    settings = mkOption {
      default = { };
      type = types.submodule {
        freeformType = types.attrsOf (types.either confAtom (types.listOf confAtom));
        options = {
          allowed-users = mkOption {
            type = types.listOf types.str;
            default = [ "*" ];
          };
          trusted-users = mkOption {
            type = types.listOf types.str;
            default = [ ];
          };
          auto-optimise-store = mkOption {
            type = types.bool;
            default = false;
          };
        };
      };
    };
  };
  config.nix.settings.trusted-users = [ "root" ];
}
