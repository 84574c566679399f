# Mirrors environment.interactiveShellInit of nixos/modules/config/shells-environment.nix: lines every
# interactive shell runs at start (bash's /etc/bashrc); types.lines, so several modules' lines are joined.
{ lib, ... }:
{
  options.environment.interactiveShellInit = lib.mkOption {
    type = lib.types.lines;
    default = "";
  };
}
