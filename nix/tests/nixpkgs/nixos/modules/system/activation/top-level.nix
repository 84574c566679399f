# Mirrors nixos/modules/system/activation/top-level.nix: system.build, and a toplevel that cannot be had
# while an assertion fails (nixpkgs throws "Failed assertions: ..." there).
{ lib, config, pkgs, ... }:
let
  failed = map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);
in
{
  options.system.build = lib.mkOption {
    type = lib.types.lazyAttrsOf lib.types.unspecified;
    default = { };
  };
  config.system.build = {
    toplevel =
      if failed != [ ] then
        throw "\nFailed assertions:\n${lib.concatMapStrings (m: "- ${m}\n") failed}"
      else
        pkgs.runCommand "nixos-system-${config.networking.hostName}" { } "";
    initialRamdisk = pkgs.runCommand "initrd-linux" { } "";
    nixos-rebuild = pkgs.runCommand "nixos-rebuild" { } "";
  };
}
