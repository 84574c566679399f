# Hourly auto-update from the published flake, plus a run shortly after every boot.
# allowReboot = false: the new generation is switched to live; a changed kernel or initrd waits for a manual reboot.
{ config, lib, ... }:
let
  cfg = config.zvm.updates;
in
{
  options.zvm.updates.flakeUrl = lib.mkOption {
    type = lib.types.str;
    default = "git+https://forgejo.codingcoffee.me/codingcoffee/zvm#zvm";
    example = "git+https://git.example.com/acme/zvm-provision?dir=nix#zvm";
    description = ''
      Flake reference (including the `#zvm` attribute) that every VM pulls its system from,
      hourly and at boot. This is the only place the URL is set.
    '';
  };

  config = {
    nix.settings.experimental-features = [
      "nix-command"
      "flakes"
    ];

    system.autoUpgrade = {
      enable = true;
      flake = cfg.flakeUrl;
      operation = "switch";
      dates = "hourly";
      randomizedDelaySec = "5min";
      allowReboot = false;
    };

    # Re-apply the latest flake at every boot. The timer's Persistent= catch-up cannot do it: its stamp
    # lives in /var/lib/systemd/timers, which is on the tmpfs.
    systemd.timers.nixos-upgrade.timerConfig.OnBootSec = "2min";
  };
}
