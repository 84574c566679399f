# Each VM its own name: the hostname the seeder left on /persist (persist-layout.json, role "hostname"),
# checked again here because the image is not trusted; without a valid one the VM keeps networking.hostName.
#
# How: nixpkgs writes networking.hostName to /etc/hostname (environment.etc.hostname, a symlink into
# /etc/static) in the "etc" activation snippet; this snippet runs after it and replaces the link with a file
# holding the seeded name. systemd sets the kernel hostname from /etc/hostname when it starts (and again after
# the switch from a systemd initrd), and activation runs before that on every boot, so the VM has its name
# before any unit runs (DHCP, sshd, journald, Netbird). Every switch-to-configuration (the hourly update)
# re-runs "etc", which puts the link back, and then this snippet again. See nix/README.md.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  contract = import ../contract.nix { };
  cfg = config.zvm.hostname;
in
{
  options.zvm.hostname.seededNameTool = lib.mkOption {
    type = lib.types.package;
    readOnly = true;
    internal = true;
    default = pkgs.writeShellScript "zvm-seeded-hostname" (builtins.readFile ./seeded-hostname.sh);
    description = ''
      `zvm-seeded-hostname FILE`: prints the valid hostname in FILE, or nothing (and why, on stderr); exits 0.
      The one check of a seeded name, shared by the boot (this module) and the Netbird enrolment.
    '';
  };

  options.zvm.hostname.enable = lib.mkEnableOption "the hostname seeded on the persist partition (checked again here) as this VM's name, at every boot and switch";

  config.system.activationScripts.zvm-hostname = lib.mkIf cfg.enable {
    deps = [ "etc" ];
    text = ''
      if zvmHostname=$(${cfg.seededNameTool} ${contract.hostnameFile}) && [ -n "$zvmHostname" ]; then
        echo "hostname: $zvmHostname (seeded in ${contract.hostnameFile})"
        if ! { printf '%s\n' "$zvmHostname" > /etc/hostname.zvm-tmp \
          && chmod 0644 /etc/hostname.zvm-tmp \
          && mv -f /etc/hostname.zvm-tmp /etc/hostname; }; then
          echo "hostname: could not write /etc/hostname; the hostname stays ${config.networking.hostName}" >&2
          rm -f /etc/hostname.zvm-tmp
        fi
      fi
      unset zvmHostname
    '';
  };
}
