# The Netbird daemon, and enrolment on first boot from the setup key the seeder left on /persist.
# The key is deleted once the peer is enrolled; the peer identity itself persists in /var/lib/netbird.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  contract = import ../contract.nix { };
  seededHostname = config.zvm.hostname.seededNameTool;
  client = config.services.netbird.clients.default;
  daemon = "${client.service.name}.service"; # netbird.service for the default client
in
{
  # The seeded hostname's check (the same that names the VM at boot).
  imports = [ ./hostname.nix ];

  options.zvm.netbird.enable = lib.mkEnableOption "the Netbird daemon, and enrolment on first boot with the setup key seeded on the persist partition";

  config = lib.mkIf config.zvm.netbird.enable {
    # The default client: netbird.service, state in /var/lib/netbird (persisted by ephemeral.nix), interface wt0.
    services.netbird.enable = true;

    systemd.services.zvm-netbird-enrol = {
      description = "Enrol this VM in Netbird with the seeded setup key";
      wantedBy = [ "multi-user.target" ];
      requires = [ daemon ];
      wants = [ "network-online.target" ];
      after = [
        daemon
        "network-online.target"
      ];
      # Nothing to do unless the seeder left a key (the Python side writes it; see persist-layout.json).
      unitConfig.ConditionPathExists = contract.netbird.setupKeyFile;
      # The same NB_* variables (daemon socket, config path) as the module's `netbird` CLI wrapper.
      inherit (client) environment;
      path = [
        config.services.netbird.package
        pkgs.coreutils
      ];
      # No network yet, or the management server is down: try again (the key stays until enrolment works).
      unitConfig.StartLimitIntervalSec = 0;
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        Restart = "on-failure";
        RestartSec = "30s";
        UMask = "0077";
      };
      script = ''
        set -euo pipefail
        key_file=${contract.netbird.setupKeyFile}
        url_file=${contract.netbird.managementUrlFile}
        # The seeded hostname if valid, else empty (the peer is then named after the VM's built-in hostname).
        name=$(${seededHostname} ${contract.hostnameFile})

        # Wait for the daemon's socket.
        for _ in $(seq 1 60); do
          netbird status >/dev/null 2>&1 && break
          sleep 1
        done

        # `up` logs in with the key only when the daemon needs a login; an already enrolled peer just connects.
        args=(up --setup-key-file "$key_file")
        if [ -s "$url_file" ]; then
          args+=(--management-url "$(tr -d '[:space:]' < "$url_file")")
        fi
        # The peer's name in the Netbird dashboard.
        if [ -n "$name" ]; then
          args+=(--hostname "$name")
        fi
        netbird "''${args[@]}"
        rm -f -- "$key_file"
      '';
    };
  };
}
