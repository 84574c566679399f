# Mirrors time.timeZone (nixos/modules/config/locale.nix).
{ lib, ... }:
{
  options.time.timeZone = lib.mkOption {
    default = null;
    type = lib.types.nullOr (lib.types.addCheck lib.types.str (s: !lib.hasInfix " " s));
  };
}
