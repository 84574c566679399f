# The single user: not in wheel, uid/gid pinned (the offline seeder writes numeric owners),
# password hash read from the persist partition on every activation.
{ config, lib, ... }:
let
  contract = import ../contract.nix { };
  u = contract.user;
in
{
  options.zvm.user.enable = lib.mkEnableOption "the single user zvm (not in wheel, immutable users, password hash read from the persist partition)";

  config = lib.mkIf config.zvm.user.enable {
    users.mutableUsers = false;

    # With mutableUsers = false NixOS asserts that root or a wheel user can log in. Here nobody is in wheel,
    # root has no password, and zvm's keys live in a file sshd reads (AuthorizedKeysFile), which the
    # assertion cannot see; this is deliberate, so say so.
    users.allowNoPasswordLogin = true;

    users.users.${u.name} = {
      isNormalUser = true;
      inherit (u) uid group home;
      extraGroups = [ ];
      hashedPasswordFile = contract.passwordFile;
    };

    assertions = [
      {
        assertion = config.users.groups.${u.group}.gid == u.gid;
        message = "persist-layout.json pins group ${u.group} to gid ${toString u.gid}, but NixOS gives it ${toString config.users.groups.${u.group}.gid}";
      }
      {
        assertion = !(builtins.elem "wheel" config.users.users.${u.name}.extraGroups);
        message = "${u.name} must not be in wheel";
      }
    ];
  };
}
