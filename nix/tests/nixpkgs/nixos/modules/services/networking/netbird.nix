# Mirrors nixos/modules/services/networking/netbird.nix (nixpkgs 25.11 era): services.netbird.enable is
# clients.default with name "netbird" (service netbird.service, state /var/lib/netbird, interface wt0, not
# hardened); each client's environment (NB_CONFIG, NB_DAEMON_ADDR, NB_LOG_LEVEL, ...) as the defaults of its
# `netbird` wrapper, the interface name's length check and the daemon unit, which runs the wrapper.
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption mkDefault types;
  cfg = config.services.netbird;
in
{
  options.services.netbird = {
    enable = mkOption {
      type = types.bool;
      default = false;
    };
    package = mkOption {
      type = types.package;
      default = pkgs.netbird;
    };
    clients = mkOption {
      default = { };
      type = types.attrsOf (
        types.submodule (
          { name, config, ... }:
          let
            client = config;
          in
          {
            options = {
              port = mkOption { type = types.port; };
              name = mkOption {
                type = types.str;
                default = name;
              };
              interface = mkOption {
                type = types.str;
                default = "nb-${client.name}";
                # Linux interface names: IFNAMSIZ less the trailing NUL.
                apply =
                  iface:
                  lib.throwIfNot (builtins.stringLength iface <= 15) "Network interface name must be 15 characters or less" iface;
              };
              logLevel = mkOption {
                type = types.enum [
                  "panic"
                  "fatal"
                  "error"
                  "warn"
                  "warning"
                  "info"
                  "debug"
                  "trace"
                ];
                default = "info";
              };
              hardened = mkOption {
                type = types.bool;
                default = true;
              };
              environment = mkOption { type = types.attrsOf types.str; };
              suffixedName = mkOption {
                type = types.str;
                default = if client.name != "netbird" then "netbird-${client.name}" else client.name;
              };
              dir.baseName = mkOption {
                type = types.str;
                default = client.suffixedName;
              };
              dir.state = mkOption {
                type = types.path;
                default = "/var/lib/${client.dir.baseName}";
              };
              dir.runtime = mkOption {
                type = types.path;
                default = "/var/run/${client.dir.baseName}";
              };
              service.name = mkOption {
                type = types.str;
                default = client.suffixedName;
              };
              # The netbird CLI with the client's environment as defaults (makeWrapper --set-default): the
              # daemon runs it, and it is what `netbird` on the PATH of a login shell is.
              wrapper = mkOption {
                type = types.package;
                internal = true;
                default = pkgs.runCommand "${cfg.package.name}-wrapper-${client.name}" {
                  meta.mainProgram = "netbird";
                  makeWrapperArgs = lib.concatLists (
                    lib.mapAttrsToList (key: value: [
                      "--set-default"
                      key
                      value
                    ]) client.environment
                  );
                } "makeWrapper ${lib.getExe cfg.package} $out/bin/netbird $makeWrapperArgs";
              };
              login.enable = mkOption {
                type = types.bool;
                default = false;
              };
              login.setupKeyFile = mkOption {
                type = types.nullOr types.str;
                default = null;
              };
            };
            config.environment = {
              NB_STATE_DIR = client.dir.state;
              NB_CONFIG = "${client.dir.state}/config.json";
              NB_DAEMON_ADDR = "unix://${client.dir.runtime}/sock";
              NB_INTERFACE_NAME = client.interface;
              NB_LOG_FILE = lib.mkOptionDefault "console";
              NB_LOG_LEVEL = client.logLevel;
              NB_SERVICE = client.service.name;
              NB_WIREGUARD_PORT = toString client.port;
            };
          }
        )
      );
    };
  };

  config = lib.mkMerge [
    (lib.mkIf cfg.enable {
      services.netbird.clients.default = {
        port = mkDefault 51820;
        interface = mkDefault "wt0";
        name = mkDefault "netbird";
        hardened = mkDefault false;
      };
    })
    {
      systemd.services = lib.mapAttrs' (
        _: client:
        lib.nameValuePair client.service.name {
          description = "A WireGuard-based mesh network that connects your devices into a single private network";
          after = [ "network.target" ];
          wantedBy = [ "multi-user.target" ];
          # The NB_* variables reach the daemon through the wrapper, not the unit's environment.
          environment.SYSTEMD_UNIT = client.service.name;
          serviceConfig = {
            ExecStart = "${lib.getExe client.wrapper} service run";
            Restart = "always";
            StateDirectory = client.dir.baseName;
            StateDirectoryMode = "0700";
          };
        }
      ) cfg.clients;
    }
  ];
}
