# Mirrors nixos/modules/services/misc/nix-gc.nix: options, the nix-gc service (startAt = dates) and timer.
{ lib, config, ... }:
let
  cfg = config.nix.gc;
in
{
  options.nix.gc = {
    automatic = lib.mkOption {
      type = lib.types.bool;
      default = false;
    };
    dates = lib.mkOption {
      type = with lib.types; either singleLineStr (listOf str);
      apply = lib.toList;
      default = [ "03:15" ];
    };
    randomizedDelaySec = lib.mkOption {
      type = lib.types.singleLineStr;
      default = "0";
    };
    persistent = lib.mkOption {
      type = lib.types.bool;
      default = true;
    };
    options = lib.mkOption {
      type = lib.types.singleLineStr;
      default = "";
    };
  };

  config = {
    assertions = [
      {
        assertion = cfg.automatic -> config.nix.enable;
        message = "nix.gc.automatic requires nix.enable";
      }
    ];
    systemd.services.nix-gc = lib.mkIf config.nix.enable {
      description = "Nix Garbage Collector";
      script = "exec ${config.nix.package.out}/bin/nix-collect-garbage ${cfg.options}";
      serviceConfig.Type = "oneshot";
      startAt = lib.optionals cfg.automatic cfg.dates;
    };
    systemd.timers.nix-gc = lib.mkIf cfg.automatic {
      timerConfig = {
        RandomizedDelaySec = cfg.randomizedDelaySec;
        Persistent = cfg.persistent;
      };
    };
  };
}
