# Mirrors nixos/modules/services/networking/ssh/sshd.nix: the options the flake sets (settings is a freeform
# submodule of key-value atoms with typed well-known keys, as there), users.users.<name>.openssh, and what
# the module adds in config: the duplicate-key assertion, the sshd and sshd-keygen units,
# `AuthorizedKeysFile` ("%h/.ssh/authorized_keys" only with authorizedKeysInHomedir, then
# "/etc/ssh/authorized_keys.d/%u") and one `HostKey` per hostKeys.
{ lib, config, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.services.openssh;
  # settingsFormat.type there is pkgs.formats.keyValue's: attrsOf (nullOr (oneOf [ bool int float str ])),
  # so a path value or a list under an undeclared key is refused (pkgs/pkgs-lib/formats.nix).
  atom = types.nullOr (
    types.oneOf [
      types.bool
      types.int
      types.float
      types.str
    ]
  );
  nullOrBool = default: mkOption {
    type = types.nullOr types.bool;
    inherit default;
  };
  nullOrUsers = mkOption {
    type = types.nullOr (types.listOf types.str);
    default = null;
  };
in
{
  options.services.openssh = {
    enable = mkOption {
      type = types.bool;
      default = false;
    };
    package = mkOption {
      type = types.package;
      default = pkgs.openssh;
    };
    ports = mkOption {
      type = types.listOf types.port;
      default = [ 22 ];
    };
    hostKeys = mkOption {
      type = types.listOf types.attrs;
      default = [
        {
          type = "rsa";
          bits = 4096;
          path = "/etc/ssh/ssh_host_rsa_key";
        }
        {
          type = "ed25519";
          path = "/etc/ssh/ssh_host_ed25519_key";
        }
      ];
    };
    authorizedKeysFiles = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    authorizedKeysInHomedir = mkOption {
      type = types.bool;
      default = true;
    };
    extraConfig = mkOption {
      type = types.lines;
      default = "";
    };
    settings = mkOption {
      default = { };
      type = types.submodule {
        freeformType = types.attrsOf atom;
        options = {
          # Declared there too (its certificate principals, users.users.<name>.openssh.authorizedPrincipals).
          AuthorizedPrincipalsFile = mkOption {
            type = types.nullOr types.str;
            default = "none";
          };
          LogLevel = mkOption {
            type = types.nullOr (
              types.enum [
                "QUIET"
                "FATAL"
                "ERROR"
                "INFO"
                "VERBOSE"
                "DEBUG"
                "DEBUG1"
                "DEBUG2"
                "DEBUG3"
              ]
            );
            default = "INFO";
          };
          UsePAM = nullOrBool true;
          UseDns = nullOrBool false;
          X11Forwarding = nullOrBool false;
          PasswordAuthentication = nullOrBool true;
          KbdInteractiveAuthentication = nullOrBool true;
          StrictModes = nullOrBool true;
          PrintMotd = nullOrBool false;
          PermitRootLogin = mkOption {
            type = types.nullOr (
              types.enum [
                "yes"
                "without-password"
                "prohibit-password"
                "forced-commands-only"
                "no"
              ]
            );
            default = "prohibit-password";
          };
          AllowUsers = nullOrUsers;
          DenyUsers = nullOrUsers;
          AllowGroups = nullOrUsers;
          DenyGroups = nullOrUsers;
        };
      };
    };
  };

  options.users.users = mkOption {
    type = types.attrsOf (
      types.submodule {
        options.openssh.authorizedKeys = {
          keys = mkOption {
            type = types.listOf types.singleLineStr;
            default = [ ];
          };
          keyFiles = mkOption {
            type = types.listOf types.path;
            default = [ ];
          };
        };
      }
    );
  };

  config = lib.mkIf cfg.enable {
    # sshd reads keywords case-insensitively: two spellings of one key would be ambiguous.
    assertions = [
      {
        assertion = lib.all (names: lib.length names == 1) (
          lib.attrValues (lib.groupBy lib.toLower (lib.attrNames cfg.settings))
        );
        message = "Duplicate sshd config key; does your capitalization match the option's?";
      }
    ];

    users.users.sshd = {
      isSystemUser = true;
      group = "sshd";
    };
    users.groups.sshd = { };

    services.openssh.authorizedKeysFiles =
      lib.optional cfg.authorizedKeysInHomedir "%h/.ssh/authorized_keys" ++ [ "/etc/ssh/authorized_keys.d/%u" ];
    services.openssh.extraConfig = lib.mkOrder 0 ''
      AuthorizedKeysFile ${toString cfg.authorizedKeysFiles}
      ${lib.concatMapStrings (k: "HostKey ${k.path}\n") cfg.hostKeys}
    '';

    systemd.services.sshd = {
      description = "SSH Daemon";
      wantedBy = [ "multi-user.target" ];
      after = [
        "network.target"
        "sshd-keygen.service"
      ];
      wants = [ "sshd-keygen.service" ];
      serviceConfig.ExecStart = "${cfg.package}/bin/sshd -D -f /etc/ssh/sshd_config";
    };
    # Generates a missing host key at boot: runs only when some hostKeys path is empty or absent.
    systemd.services.sshd-keygen = {
      description = "SSH Host Keys Generation";
      unitConfig.ConditionFileNotEmpty = map (k: "|!${k.path}") cfg.hostKeys;
      serviceConfig.Type = "oneshot";
    };
  };
}
