# Mirrors the unit options of nixos/modules/system/boot/systemd.nix (systemd.package, services, timers,
# mounts), and its rule that a service's startAt becomes a timer of the same name with OnCalendar.
{ lib, config, pkgs, ... }:
let
  unitOptions = import ../../../lib/systemd-unit-options.nix { inherit lib; };
  inherit (lib) mkOption types;
  cfg = config.systemd;
in
{
  options.systemd = {
    package = mkOption {
      type = types.package;
      default = pkgs.systemd;
    };
    services = mkOption {
      type = types.attrsOf (types.submodule unitOptions.service);
      default = { };
    };
    timers = mkOption {
      type = types.attrsOf (types.submodule unitOptions.timer);
      default = { };
    };
    mounts = mkOption {
      type = types.listOf (types.submodule unitOptions.mount);
      default = [ ];
    };
  };

  config.systemd.timers = lib.mapAttrs (_: service: {
    wantedBy = [ "timers.target" ];
    timerConfig.OnCalendar = service.startAt;
  }) (lib.filterAttrs (_: service: service.enable && service.startAt != [ ]) cfg.services);
}
