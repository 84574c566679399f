# Mirrors nixos/modules/security/sudo-rs.nix: security.sudo-rs.enable (mkEnableOption); when enabled it
# turns sudo off by default and asserts that the two are not both enabled.
{ lib, config, ... }:
{
  options.security.sudo-rs.enable = lib.mkEnableOption "a memory-safe implementation of the sudo command";

  config = lib.mkIf config.security.sudo-rs.enable {
    assertions = [
      {
        assertion = !config.security.sudo.enable;
        message = "`security.sudo` and `security.sudo-rs` cannot both be enabled";
      }
    ];
    security.sudo.enable = lib.mkDefault false;
  };
}
