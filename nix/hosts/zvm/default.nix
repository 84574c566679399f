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

  # What zvm is: each module that changes security or services is switched on here (nixosModules.default
  # switches them all on by default for other flakes).
  zvm = {
    user.enable = true;
    hardening.enable = true;
    hostname.enable = true;
    netbird.enable = true;
    storage.enable = true;
  };

  # The name of an unseeded VM; a valid hostname seeded on /persist replaces it (modules/hostname.nix).
  networking.hostName = "zvm";
  time.timeZone = "UTC";

  # Where every VM pulls its updates from: your copy of this repository's flake, or null for no updates.
  # Whoever can push to the branch it follows controls every VM: pin a release branch or tag with ref=.
  # Required for an image (README.md, "First steps"): until it is set the image does not build.
  # zvm.updates.flakeUrl = "git+https://git.example.com/you/zvm-provision?dir=nix&ref=release#zvm";

  system.stateVersion = "25.11";
}
