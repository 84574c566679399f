# Mirrors nixos/modules/config/users-groups.nix: the user and group options the flake sets, the defaults
# isNormalUser implies, the fixed ids of ids.nix (root 0, wheel 1, users 100) and the assertions that
# concern a normal user, a user's primary group and a configuration without mutable users.
{ lib, config, ... }:
let
  inherit (lib) mkOption mkDefault types;
  cfg = config.users;

  passwdEntry =
    type:
    lib.types.addCheck type (s: !(lib.hasInfix ":" s || lib.hasInfix "\n" s))
    // {
      description = "${type.description}, not containing newlines or colons";
    };

  userOpts =
    { name, config, ... }:
    {
      options = {
        name = mkOption {
          type = passwdEntry types.str;
          default = name;
        };
        uid = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        isSystemUser = mkOption {
          type = types.bool;
          default = false;
        };
        isNormalUser = mkOption {
          type = types.bool;
          default = false;
        };
        group = mkOption {
          type = types.str;
          default = "";
        };
        extraGroups = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        home = mkOption {
          type = passwdEntry types.path;
          default = "/var/empty";
        };
        homeMode = mkOption {
          type = types.strMatching "[0-7]{1,5}";
          default = "700";
        };
        createHome = mkOption {
          type = types.bool;
          default = false;
        };
        useDefaultShell = mkOption {
          type = types.bool;
          default = false;
        };
        hashedPassword = mkOption {
          type = types.nullOr (passwdEntry types.str);
          default = null;
        };
        password = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        hashedPasswordFile = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
      };
      config = lib.mkIf config.isNormalUser {
        group = mkDefault "users";
        createHome = mkDefault true;
        home = mkDefault "/home/${config.name}";
        homeMode = mkDefault "700";
        useDefaultShell = mkDefault true;
      };
    };

  groupOpts =
    { name, ... }:
    {
      options = {
        name = mkOption {
          type = passwdEntry types.str;
          default = name;
        };
        gid = mkOption {
          type = types.nullOr types.int;
          default = null;
        };
        members = mkOption {
          type = types.listOf (passwdEntry types.str);
          default = [ ];
        };
      };
    };

  groupNames = lib.mapAttrsToList (_: g: g.name) cfg.groups;
  usersWithoutExistingGroup = lib.attrNames (
    lib.filterAttrs (_: u: u.group != "" && !lib.elem u.group groupNames) cfg.users
  );

  allowsLogin = hash: hash == "" || !(lib.elem hash [ null "!" "!!" "*" ]);
in
{
  options.users = {
    users = mkOption {
      type = types.attrsOf (types.submodule userOpts);
      default = { };
    };
    groups = mkOption {
      type = types.attrsOf (types.submodule groupOpts);
      default = { };
    };
    mutableUsers = mkOption {
      type = types.bool;
      default = true;
    };
    allowNoPasswordLogin = mkOption {
      type = types.bool;
      default = false;
    };
  };

  config = {
    users.users.root = {
      uid = 0;
      home = "/root";
      group = "root";
    };
    # ids.gids in nixos/modules/misc/ids.nix.
    users.groups = {
      root.gid = 0;
      wheel.gid = 1;
      users.gid = 100;
      nogroup.gid = 65534;
    };

    assertions =
      [
        {
          assertion =
            !cfg.mutableUsers
            -> cfg.allowNoPasswordLogin
            || lib.any (
              u:
              (u.name == "root" || u.group == "wheel" || lib.elem "wheel" u.extraGroups)
              && (
                allowsLogin u.hashedPassword
                || u.password != null
                || u.hashedPasswordFile != null
                || u.openssh.authorizedKeys.keys != [ ]
                || u.openssh.authorizedKeys.keyFiles != [ ]
              )
            ) (lib.attrValues cfg.users);
          message = "Neither the root account nor any wheel user has a password or SSH authorized key.";
        }
        {
          assertion = usersWithoutExistingGroup == [ ];
          message = "The following users have a primary group that is undefined: ${toString usersWithoutExistingGroup}";
        }
      ]
      ++ lib.concatMap (u: [
        {
          # As nixpkgs: a uid below 1000 makes a system user (unless isNormalUser, asserted below).
          assertion = (u.isSystemUser || (u.uid != null && u.uid < 1000 && !u.isNormalUser)) != u.isNormalUser;
          message = "Exactly one of users.users.${u.name}.isSystemUser and users.users.${u.name}.isNormalUser must be set.";
        }
        {
          assertion = u.group != "";
          message = "users.users.${u.name}.group is unset.";
        }
        {
          assertion = u.isNormalUser && u.uid != null -> u.uid >= 1000;
          message = "A user cannot have a users.users.${u.name}.uid set below 1000 and set users.users.${u.name}.isNormalUser.";
        }
      ]) (lib.attrValues cfg.users);
  };
}
