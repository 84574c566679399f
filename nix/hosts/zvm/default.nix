# The zvm VM: one module per concern (see ../../modules), composed here.
{ modulesPath, ... }:
{
  imports = [
    (modulesPath + "/profiles/qemu-guest.nix")
    ../../modules/ephemeral.nix
    ../../modules/user.nix
    ../../modules/hardening.nix
    ../../modules/updates.nix
    ../../modules/netbird.nix
    ../../modules/image.nix
  ];

  networking.hostName = "zvm";
  time.timeZone = "UTC";

  system.stateVersion = "25.11";
}
