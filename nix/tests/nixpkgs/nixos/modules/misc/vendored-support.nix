# The options the vendored nixpkgs modules (../../../vendored/) read that no other stand-in declares, with
# nixpkgs' types and the values nixpkgs gives them on a system like zvm's:
#  - environment.sessionVariables (config/shells-environment.nix: attrsOf (either str (listOf str)));
#    NIX_PATH is set there by config/nix-channel.nix from nix.nixPath, empty without channels.
#  - networking.proxy.envVars (config/networking.nix: attrs, the proxy variables; none here).
#  - programs.ssh.package (programs/ssh.nix: the openssh package).
# For services/networking/netbird.nix, what it sets (each with its nixpkgs type, where a wrong value could
# slip through) and reads (with the value nixpkgs has on zvm's system: no desktop, no firewalld, no networkd,
# no resolved, iptables):
#  - meta.maintainers, meta.doc (misc/meta.nix); environment.systemPackages (config/system-path.nix);
#    boot.extraModulePackages, boot.kernel.sysctl (system/boot/kernel.nix, config/sysctl.nix);
#  - networking.dhcpcd.denyInterfaces (services/networking/dhcpcd.nix), networking.networkmanager.unmanaged,
#    networking.firewall.{allowedUDPPorts,checkReversePath,interfaces,backend} (services/networking/firewall.nix),
#    networking.nftables.enable, networking.useNetworkd, services.firewalld.zones, systemd.network.networks,
#    services.resolved.enable, security.polkit.extraConfig;
#  - services.displayManager.sessionPackages and services.xserver.enable (netbird-ui's default).
{ lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
in
{
  options = {
    environment.sessionVariables = mkOption {
      type = types.attrsOf (types.either types.str (types.listOf types.str));
      default = { };
    };
    networking.proxy.envVars = mkOption {
      type = types.attrs;
      internal = true;
      default = { };
    };
    programs.ssh.package = mkOption {
      type = types.package;
      default = pkgs.openssh;
    };

    meta = mkOption {
      type = types.lazyAttrsOf types.unspecified;
      default = { };
      internal = true;
    };
    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    boot.extraModulePackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    boot.kernel.sysctl = mkOption {
      type = types.attrsOf types.anything;
      default = { };
    };
    networking.dhcpcd.denyInterfaces = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    networking.networkmanager.unmanaged = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    networking.firewall = {
      allowedUDPPorts = mkOption {
        type = types.listOf types.port;
        default = [ ];
      };
      checkReversePath = mkOption {
        type = types.either types.bool (types.enum [ "strict" "loose" ]);
        default = true;
      };
      interfaces = mkOption {
        type = types.attrsOf (types.submodule {
          options.allowedUDPPorts = mkOption {
            type = types.listOf types.port;
            default = [ ];
          };
        });
        default = { };
      };
      backend = mkOption {
        type = types.enum [ "iptables" "nftables" "firewalld" ];
        default = "iptables";
      };
    };
    networking.nftables.enable = mkOption {
      type = types.bool;
      default = false;
    };
    networking.useNetworkd = mkOption {
      type = types.bool;
      default = false;
    };
    services.firewalld.zones = mkOption {
      type = types.attrsOf types.anything;
      default = { };
    };
    systemd.network.networks = mkOption {
      type = types.attrsOf types.anything;
      default = { };
    };
    services.resolved.enable = mkOption {
      type = types.bool;
      default = false;
    };
    security.polkit.extraConfig = mkOption {
      type = types.lines;
      default = "";
    };
    services.displayManager.sessionPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    services.xserver.enable = mkOption {
      type = types.bool;
      default = false;
    };
  };
  config.environment.sessionVariables.NIX_PATH = lib.mkDefault "";
}
