# Mirrors nixos/modules/tasks/auto-upgrade.nix: the options the flake sets, and the nixos-upgrade service
# and timer they produce (flags "--refresh --flake URL"; `nixos-rebuild <operation>`; a reboot only
# when allowReboot is set; startAt = dates; the timer's RandomizedDelaySec and Persistent).
{ lib, config, ... }:
let
  cfg = config.system.autoUpgrade;
  inherit (lib) mkOption types;
in
{
  options.system.autoUpgrade = {
    enable = mkOption {
      type = types.bool;
      default = false;
    };
    operation = mkOption {
      type = types.enum [
        "switch"
        "boot"
      ];
      default = "switch";
    };
    flake = mkOption {
      type = types.nullOr types.str;
      default = null;
    };
    channel = mkOption {
      type = types.nullOr types.str;
      default = null;
    };
    flags = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    dates = mkOption {
      type = types.str;
      default = "04:40";
    };
    allowReboot = mkOption {
      type = types.bool;
      default = false;
    };
    randomizedDelaySec = mkOption {
      type = types.str;
      default = "0";
    };
    fixedRandomDelay = mkOption {
      type = types.bool;
      default = false;
    };
    persistent = mkOption {
      type = types.bool;
      default = true;
    };
  };

  config = lib.mkIf cfg.enable {
    assertions = [
      {
        assertion = !(cfg.channel != null && cfg.flake != null);
        message = "The options 'system.autoUpgrade.channel' and 'system.autoUpgrade.flake' cannot both be set.";
      }
    ];
    system.autoUpgrade.flags =
      if cfg.flake == null then
        [ "--no-build-output" ]
      else
        [
          "--refresh"
          "--flake ${cfg.flake}"
        ];
    systemd.services.nixos-upgrade = {
      description = "NixOS Upgrade";
      restartIfChanged = false;
      unitConfig.X-StopOnRemoval = false;
      serviceConfig.Type = "oneshot";
      environment = config.nix.envVars // {
        HOME = "/root";
      };
      script =
        let
          nixos-rebuild = "${config.system.build.nixos-rebuild}/bin/nixos-rebuild";
        in
        if cfg.allowReboot then
          ''
            ${nixos-rebuild} boot ${toString cfg.flags}
            booted="$(readlink /run/booted-system/{initrd,kernel,kernel-modules})"
            built="$(readlink /nix/var/nix/profiles/system/{initrd,kernel,kernel-modules})"
            if [ "$booted" = "$built" ]; then
              ${nixos-rebuild} ${cfg.operation} ${toString cfg.flags}
            else
              ${config.systemd.package}/bin/shutdown -r +1
            fi
          ''
        else
          ''
            ${nixos-rebuild} ${cfg.operation} ${toString cfg.flags}
          '';
      startAt = cfg.dates;
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
    };
    systemd.timers.nixos-upgrade.timerConfig = {
      RandomizedDelaySec = cfg.randomizedDelaySec;
      FixedRandomDelay = cfg.fixedRandomDelay;
      Persistent = cfg.persistent;
    };
  };
}
