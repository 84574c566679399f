# The options the vendored nixpkgs modules (../../../vendored/) read that no other stand-in declares, with
# nixpkgs' types and the values nixpkgs gives them on a system like zvm's:
#  - environment.sessionVariables (config/shells-environment.nix: attrsOf (either str (listOf str)));
#    NIX_PATH is set there by config/nix-channel.nix from nix.nixPath, empty without channels.
#  - networking.proxy.envVars (config/networking.nix: attrs, the proxy variables; none here).
#  - programs.ssh.package (programs/ssh.nix: the openssh package).
{ lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
in
{
  options = {
    environment.sessionVariables = mkOption {
      type = types.attrsOf (types.either types.str (types.listOf types.str));
      default = { };
    };
    networking.proxy.envVars = mkOption {
      type = types.attrs;
      internal = true;
      default = { };
    };
    programs.ssh.package = mkOption {
      type = types.package;
      default = pkgs.openssh;
    };
  };
  config.environment.sessionVariables.NIX_PATH = lib.mkDefault "";
}
