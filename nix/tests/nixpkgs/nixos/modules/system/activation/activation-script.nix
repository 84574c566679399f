# Mirrors system.activationScripts (nixos/modules/system/activation/activation-script.nix): a snippet is
# a string or { deps, text }, and every dependency must name another snippet.
{ lib, config, ... }:
let
  inherit (lib) mkOption types;
  scriptType = types.submodule {
    options = {
      deps = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      text = mkOption { type = types.lines; };
      supportsDryActivation = mkOption {
        type = types.bool;
        default = false;
      };
    };
  };
in
{
  options.system.activationScripts = mkOption {
    type = types.attrsOf (types.either types.str scriptType);
    default = { };
  };
  # nixpkgs' own snippets that others depend on; "etc" (system/etc/etc-activation.nix) links /etc's files.
  config.system.activationScripts = {
    users.text = "";
    groups.text = "";
    specialfs.text = "";
    etc = {
      deps = [
        "users"
        "groups"
        "specialfs"
      ];
      text = "";
    };
  };
  config.assertions = lib.mapAttrsToList (name: s: {
    assertion = lib.all (d: config.system.activationScripts ? ${d}) (s.deps or [ ]);
    message = "activation script ${name} depends on an activation script that does not exist";
  }) config.system.activationScripts;
}
