# This flake's outputs as Nix would call them, offline: with the real nixpkgs lib, a stand-in for the nixpkgs
# input (./nixpkgs) and the real impermanence flake (its nixpkgs follows ours; home-manager follows nothing).
# Shared by eval.nix, eval-boot.nix and eval-option.nix. `inputs` holds nixpkgs-lib/ and impermanence/.
{ inputs }:
let
  lib = import (inputs + "/nixpkgs-lib/lib");
  nixpkgs = import ./nixpkgs { inherit lib; };
  impermanenceFlake = import (inputs + "/impermanence/flake.nix");
  impermanence =
    impermanenceFlake.outputs {
      self = impermanence;
      inherit nixpkgs;
      home-manager = null;
    }
    // {
      outPath = inputs + "/impermanence";
    };
  flake = import ../flake.nix;
  self =
    flake.outputs {
      inherit self nixpkgs impermanence;
    }
    // {
      outPath = toString ../.;
    };
in
{
  inherit lib nixpkgs flake self;
}
