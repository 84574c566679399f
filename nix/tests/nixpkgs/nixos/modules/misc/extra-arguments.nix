# Mirrors nixos/modules/misc/extra-arguments.nix: `utils` for every module.
{ lib, config, pkgs, ... }:
{
  _module.args.utils = import ../../lib/utils.nix { inherit lib config pkgs; };
}
