# Mirrors nixos/modules/misc/nixpkgs.nix: the platform option, and `pkgs` for every module (here the
# stand-in packages of ../../../pkgs.nix, handed over by ../../../default.nix).
{ lib, standInPkgs, ... }:
{
  options.nixpkgs.hostPlatform = lib.mkOption {
    type = lib.types.either lib.types.str lib.types.attrs;
    example = "x86_64-linux";
  };
  config._module.args.pkgs = standInPkgs;
}
