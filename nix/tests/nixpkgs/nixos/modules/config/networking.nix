# Mirrors networking.hostName (nixos/modules/tasks/network-interfaces.nix): a DNS label or empty (then DHCP
# names the machine), written to /etc/hostname (environment.etc.hostname) when it is not empty.
{ lib, config, ... }:
let
  cfg = config.networking;
in
{
  options.networking.hostName = lib.mkOption {
    default = "nixos";
    type = lib.types.strMatching "^$|^[[:alnum:]]([[:alnum:]_-]{0,61}[[:alnum:]])?$";
  };
  config.environment.etc.hostname = lib.mkIf (cfg.hostName != "") {
    text = cfg.hostName + "\n";
  };
}
