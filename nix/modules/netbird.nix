# The Netbird daemon, and enrolment on first boot from the setup key the seeder left on /persist.
#
# The daemon: nixpkgs' default client (services.netbird.enable) runs as root with hardened = false, and its
# runtime directory 0755 leaves the daemon's socket (0666) to every user: `zvm` could change the management
# URL, routes and DNS, or turn on Netbird's SSH server. The hardened client runs as a `netbird` user instead,
# and systemd would hand it the persisted /var/lib/netbird (the contract's 0:0 0700, with the seeded key);
# so the daemon stays root and its runtime directory, the socket's, is root's alone (0700).
#
# Enrolment: one run per seeded key. systemd hands the unit a private copy of the key (LoadCredential=, as
# nixpkgs' clients.<name>.login does), the copy on persist is deleted at once whatever happens next, and
# `netbird up` is tried a bounded number of times. The outcome is in the journal and in
# /run/zvm-netbird/status, which every login shell shows. The peer identity persists in /var/lib/netbird.
#
# nixpkgs' own clients.<name>.login is not used: it runs as the hardened client's user, waits for the daemon
# without bound, keeps the key file, and passes neither the management URL nor the peer's name.
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
  statusDirectory = "zvm-netbird";
  statusFile = "/run/${statusDirectory}/status";
in
{
  # The seeded hostname's check (the same that names the VM at boot).
  imports = [ ./hostname.nix ];

  options.zvm.netbird.enable = lib.mkEnableOption "the Netbird daemon, and enrolment on first boot with the setup key seeded on the persist partition";

  config = lib.mkIf config.zvm.netbird.enable {
    # The default client: netbird.service, state in /var/lib/netbird (persisted by ephemeral.nix), interface wt0.
    services.netbird.enable = true;
    # The daemon's socket ($NB_DAEMON_ADDR, in this directory) to root alone.
    systemd.services.${client.service.name}.serviceConfig.RuntimeDirectoryMode = "0700";

    # Every login shell says how the enrolment went, while it is news (until the next boot).
    environment.interactiveShellInit = ''
      if [ -r ${statusFile} ]; then
        printf 'Netbird: %s\n' "$(head -c 400 ${statusFile})"
      fi
    '';

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
      # The same NB_* variables (daemon socket, config path) as the module's `netbird` CLI wrapper, and
      # the bound on the tries: 10, 30 s apart (5 minutes for the network or the management server).
      environment = client.environment // {
        ZVM_ENROL_ATTEMPTS = "10";
        ZVM_ENROL_PAUSE = "30";
      };
      path = [
        config.services.netbird.package
        pkgs.coreutils
      ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        # No Restart=: the tries are counted in the script, and the key is gone after this run.
        TimeoutStartSec = "15min";
        UMask = "0077";
        LoadCredential = [ "setup-key:${contract.netbird.setupKeyFile}" ];
        RuntimeDirectory = statusDirectory;
        RuntimeDirectoryMode = "0755";
        RuntimeDirectoryPreserve = true;
      };
      script = ''
        set -uo pipefail
        persisted_key=${contract.netbird.setupKeyFile}
        key_file="$CREDENTIALS_DIRECTORY/setup-key"
        url_file=${contract.netbird.managementUrlFile}
        status_file=${statusFile}

        say() {
          printf 'zvm-netbird-enrol: %s\n' "$1" >&2
          { printf '%s\n' "$1" > "$status_file.tmp" && chmod 0644 "$status_file.tmp" \
            && mv -f "$status_file.tmp" "$status_file"; } || true
        }

        # The key is used by this run only: the copy on persist goes now, whatever happens next.
        if ! rm -f -- "$persisted_key"; then
          say "could not delete the setup key on persist ($persisted_key)"
        fi

        # The seeded hostname if valid, else empty (the peer is then named after the VM's built-in hostname).
        name=$(${seededHostname} ${contract.hostnameFile})

        # Wait for the daemon's socket.
        for _ in {1..60}; do
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
        attempts=''${ZVM_ENROL_ATTEMPTS:-10}
        say "enrolling in Netbird with the seeded setup key (up to $attempts tries)"
        for ((try = 1; try <= attempts; try++)); do
          if netbird "''${args[@]}"; then
            say "enrolled (try $try of $attempts); the setup key was deleted"
            exit 0
          fi
          if ((try < attempts)); then
            sleep "''${ZVM_ENROL_PAUSE:-30}"
          fi
        done
        say "enrolment FAILED after $attempts tries (no network, an unreachable management server, or a revoked or expired key; see journalctl -u zvm-netbird-enrol). The setup key was deleted: seed a new one (zvm-provision seed IMAGE --netbird-setup-key-file FILE) or run netbird up as root"
        exit 1
      '';
    };
  };
}
