# No privilege escalation, no Nix daemon for the user, SSH with keys only.
{ config, lib, ... }:
let
  contract = import ../contract.nix { };
in
{
  options.zvm.hardening.enable = lib.mkEnableOption "zvm's hardening: no sudo, only root may use the Nix daemon, sshd with keys only (from the persist partition), no root login";

  config = lib.mkIf config.zvm.hardening.enable {
    security.sudo.enable = false;
    security.sudo-rs.enable = false;

    # Only root may talk to the Nix daemon (trusted-users stays the module's [ "root" ]).
    nix.settings.allowed-users = [ "root" ];

    services.openssh = {
      enable = true;
      settings = {
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
        PermitRootLogin = "no";
        StrictModes = true;
        AuthenticationMethods = "publickey";
        AllowUsers = [ contract.user.name ];
        X11Forwarding = false;
      }
      # Certificates from the persist partition, when the tool seeded them (zvm-provision --host-ca, --user-ca).
      # Each file may be absent: sshd then logs that it could not load the host certificate and serves the plain
      # host key, and no certificate logs in (no trusted CA, no principal); keys work as before. The principals
      # file lists who a user certificate may name to log in as zvm (AllowUsers still admits zvm only).
      // lib.filterAttrs (_: path: path != null) {
        HostCertificate = contract.certificates.hostCertificate;
        TrustedUserCAKeys = contract.certificates.trustedUserCAKeys;
        AuthorizedPrincipalsFile = contract.certificates.authorizedPrincipalsFile;
      };
      # Keys come from the persist partition (the module still appends /etc/ssh/authorized_keys.d/%u,
      # for keys declared in users.users.<name>.openssh.authorizedKeys).
      authorizedKeysInHomedir = false;
      authorizedKeysFiles = [ contract.authorizedKeysFile ];
      # Host keys live on /persist directly: persisting the whole /etc/ssh would hide sshd_config.
      inherit (contract) hostKeys;
    };
  };
}
