# Mirrors nixos/modules/config/nix.nix (nix.settings: a submodule whose freeform values are "Nix config atoms"
# or lists of them, with nixpkgs' typed settings and the definitions the module adds) and
# nixos/modules/services/system/nix-daemon.nix (nix.enable, nix.package, nix.envVars, sandbox-fallback).
# Keys without a declaration here (min-free, max-free, build-dir, experimental-features) are freeform there too.
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.nix;
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
  strings = default: mkOption ({ type = types.listOf types.str; } // lib.optionalAttrs (default != null) { inherit default; });
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
          max-jobs = mkOption {
            type = types.either types.int (types.enum [ "auto" ]);
            default = "auto";
          };
          auto-optimise-store = mkOption {
            type = types.bool;
            default = false;
          };
          cores = mkOption {
            type = types.int;
            default = 0;
          };
          sandbox = mkOption {
            type = types.either types.bool (types.enum [ "relaxed" ]);
            default = true;
          };
          extra-sandbox-paths = strings [ ];
          # No default in nixpkgs: the module's own definitions below are the values.
          substituters = strings null;
          trusted-substituters = strings [ ];
          require-sigs = mkOption {
            type = types.bool;
            default = true;
          };
          trusted-public-keys = strings null;
          trusted-users = strings null;
          system-features = strings null;
          allowed-users = strings [ "*" ];
        };
      };
    };
  };

  config = lib.mkIf cfg.enable {
    nix.settings = {
      trusted-public-keys = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" ];
      trusted-users = [ "root" ];
      substituters = lib.mkAfter [ "https://cache.nixos.org/" ];
      system-features = lib.mkDefault [
        "nixos-test"
        "benchmark"
        "big-parallel"
        "kvm"
      ];
      # nix-daemon.nix, for every Nix since 2.3.
      sandbox-fallback = false;
    };
  };
}
