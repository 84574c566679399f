# Mirrors environment.etc (nixos/modules/system/etc/etc.nix): files in /etc, each a `text` (written to the
# store) or a `source`, linked as /etc/<target> (mode "symlink") or copied with a mode.
{ lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
in
{
  options.environment.etc = mkOption {
    default = { };
    type = types.attrsOf (
      types.submodule (
        {
          name,
          config,
          options,
          ...
        }:
        {
          options = {
            enable = mkOption {
              type = types.bool;
              default = true;
            };
            target = mkOption { type = types.str; };
            text = mkOption {
              default = null;
              type = types.nullOr types.lines;
            };
            source = mkOption { type = types.path; };
            mode = mkOption {
              type = types.str;
              default = "symlink";
            };
          };
          config = {
            target = lib.mkDefault name;
            source = lib.mkIf (config.text != null) (
              lib.mkDerivedConfig options.text (pkgs.writeText "etc-${lib.replaceStrings [ "/" ] [ "-" ] name}")
            );
          };
        }
      )
    );
  };
}
