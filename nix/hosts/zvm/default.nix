# The zvm VM: one module per concern (see ../../modules), composed here.
{ modulesPath, ... }:
{
  imports = [
    (modulesPath + "/profiles/qemu-guest.nix")
    ../../modules/ephemeral.nix
    ../../modules/user.nix
    ../../modules/hardening.nix
    ../../modules/updates.nix
    ../../modules/hostname.nix
    ../../modules/netbird.nix
    ../../modules/image.nix
    ../../modules/console.nix
    ../../modules/storage.nix
  ];

  # The name of an unseeded VM; a valid hostname seeded on /persist replaces it (modules/hostname.nix).
  networking.hostName = "zvm";
  time.timeZone = "UTC";

  # Where every VM pulls its updates from: your copy of this repository's flake, or null for no updates.
  # Required (README.md, "First steps"); evaluation stops with an assertion until it is set.
  # zvm.updates.flakeUrl = "git+https://git.example.com/you/zvm-provision?dir=nix#zvm";

  system.stateVersion = "25.11";
}
