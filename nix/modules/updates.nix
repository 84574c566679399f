# Hourly auto-update from the published flake, plus a run shortly after every boot.
# allowReboot = false: the new generation is switched to live; a changed kernel or initrd waits for a manual reboot.
#
# zvm.updates.flakeUrl has no default on purpose: a default would be somebody else's flake, and a VM that
# switches to a system with another persist layout loses its data. Whoever publishes the image sets it (in
# hosts/zvm/default.nix or a module of their own) to their copy of this repository's flake, or to null
# to ship a VM that never updates itself. Until then evaluation fails with an assertion that says so.
{
  config,
  options,
  lib,
  ...
}:
let
  cfg = config.zvm.updates;
  isSet = options.zvm.updates.flakeUrl.isDefined;
  enabled = isSet && cfg.flakeUrl != null;
  example = "git+https://git.example.com/you/zvm-provision?dir=nix#zvm";
in
{
  options.zvm.updates.flakeUrl = lib.mkOption {
    type = lib.types.nullOr lib.types.str;
    example = example;
    description = ''
      Flake reference, with the `#zvm` attribute, that every VM pulls its system from, hourly and 2 minutes
      after each boot: your copy of this repository's flake (`?dir=nix`). `null` turns updates off.
      There is no default: it must be set explicitly.
    '';
  };

  config = lib.mkMerge [
    {
      assertions = [
        {
          assertion = isSet;
          message = ''
            zvm.updates.flakeUrl is not set. Every VM switches hourly to the system of that flake, so it must
            be your own copy of this repository's flake. Set it in nix/hosts/zvm/default.nix, e.g.
              zvm.updates.flakeUrl = "${example}";
            or to null to ship a VM that never updates itself (see README.md, "First steps").
          '';
        }
        {
          assertion = enabled -> lib.hasInfix "#" cfg.flakeUrl;
          message = ''
            zvm.updates.flakeUrl = "${toString cfg.flakeUrl}" names no configuration: end it with #zvm,
            e.g. "${example}".
          '';
        }
      ];
      warnings = lib.optional (isSet && cfg.flakeUrl == null) ''
        zvm.updates.flakeUrl is null: this VM never updates itself (no nixos-upgrade timer).
      '';
    }

    (lib.mkIf enabled {
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

      # Nix's fetcher cache (the nixpkgs tarball, the flake's git checkout) lives under $XDG_CACHE_HOME:
      # keep it on /nix, not in root's home on the tmpfs root, so it neither fills RAM nor is fetched anew
      # after every boot.
      systemd.services.nixos-upgrade.environment.XDG_CACHE_HOME = "/nix/var/cache/nixos-upgrade";
    })
  ];
}
