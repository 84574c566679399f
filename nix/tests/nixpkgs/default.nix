# A stand-in for the nixpkgs flake input, for evaluating this flake where nixpkgs cannot be fetched.
#
# What is real: `lib` (nixpkgs' own lib, from an offline copy), the module system (lib.evalModules), and
# every module of this flake and of impermanence. What stands in for nixpkgs: the option declarations under
# nixos/modules (only the options this flake and impermanence touch, declared with nixpkgs' types, so an
# unknown option or a wrong type fails as it would in NixOS; each file names the nixpkgs file it mirrors),
# and pkgs.nix (derivations that are never built). Nothing here decides what the tests expect.
{ lib }:
let
  system = "x86_64-linux";
  pkgs = import ./pkgs.nix { inherit lib system; };
  # A string, not a path: "${modulesPath}/..." then names this folder instead of a store copy of it.
  modulesPath = toString ./nixos/modules;
  baseModules = import (modulesPath + "/module-list.nix");

  # As nixpkgs' lib.nixosSystem (nixos/lib/eval-config.nix): the base modules plus the caller's.
  nixosSystem =
    {
      modules,
      specialArgs ? { },
      ...
    }:
    lib.evalModules {
      specialArgs = {
        inherit modulesPath;
      }
      // specialArgs;
      modules =
        baseModules
        ++ modules
        ++ [
          {
            _module.args = {
              inherit baseModules modules;
              standInPkgs = pkgs;
            };
          }
        ];
    };
in
{
  lib = lib // {
    inherit nixosSystem;
  };
  legacyPackages.${system} = pkgs;
  outPath = toString ./.;
}
