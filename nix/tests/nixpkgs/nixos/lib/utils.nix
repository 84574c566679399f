# Mirrors the parts of nixos/lib/utils.nix that impermanence uses. pathsNeededForBoot is nixpkgs' list
# (read in nixos/lib/utils.nix); escapeSystemdPath follows systemd.unit(5)'s path escaping.
{ lib, ... }:
let
  inherit (lib) hasPrefix removePrefix removeSuffix replaceStrings stringToCharacters;
  inherit (lib.strings) escapeC;
in
rec {
  pathsNeededForBoot = [
    "/"
    "/nix"
    "/nix/store"
    "/var"
    "/var/log"
    "/var/lib"
    "/var/lib/nixos"
    "/etc"
    "/usr"
  ];
  fsNeededForBoot = fs: fs.neededForBoot || lib.elem fs.mountPoint pathsNeededForBoot;

  escapeSystemdPath =
    s:
    let
      trimmed = if s == "/" then "/" else removeSuffix "/" (removePrefix "/" s);
      escaped = escapeC (stringToCharacters " !\"#$%&'()*+,;<=>=@[\\]^`{|}~-") trimmed;
      dotted = if hasPrefix "." escaped then "\\x2e" + removePrefix "." escaped else escaped;
    in
    replaceStrings [ "/" ] [ "-" ] dotted;
}
