# Keeps the two fixed-size partitions from filling up under hourly updates, and keeps builds off the tmpfs root.
#  - ESP: systemd-boot installs a kernel and initrd per boot entry; keep only the newest few entries.
#  - /nix: every update adds a generation; collect garbage daily (and after each boot: the timer's stamp is
#    on the tmpfs), and let Nix free space by itself during a build when the partition runs low.
#  - Builds: Nix unpacks and builds under build-dir; on the tmpfs root that would be RAM.
{ config, lib, ... }:
let
  mib = config.zvm.disk.sizeMiB;
  bytes = m: m * 1024 * 1024;

  # Upper bound of what one generation puts on the ESP (x86_64 NixOS: kernel ~12 MiB, initrd 15-40 MiB),
  # and what systemd-boot and the loader files take besides.
  generationMiB = 64;
  loaderMiB = 32;
  entries = 5;

  buildDir = "/nix/var/nix/builds";
in
{
  imports = [ ../disk-size.nix ];

  options.zvm.storage.enable = lib.mkEnableOption "zvm's space limits: at most 5 boot entries, daily garbage collection (and after each boot), min-free/max-free, builds in /nix/var/nix/builds";

  config = lib.mkIf config.zvm.storage.enable {
    boot.loader.systemd-boot.configurationLimit = entries;

    nix.gc = {
      automatic = true;
      dates = "daily";
      randomizedDelaySec = "30min";
      options = "--delete-older-than 7d";
    };
    systemd.timers.nix-gc.timerConfig.OnBootSec = "15min";

    nix.settings = {
      # When free space on /nix drops below min-free during a build, Nix collects garbage until max-free is free.
      min-free = bytes (mib.nix / 8);
      max-free = bytes (mib.nix / 4);
      build-dir = buildDir;
    };
    systemd.tmpfiles.rules = [ "d ${buildDir} 0755 root root -" ];

    assertions = [
      {
        assertion = entries * generationMiB + loaderMiB <= mib.esp;
        message = "the ESP (${toString mib.esp} MiB) cannot hold ${toString entries} boot entries of up to ${toString generationMiB} MiB";
      }
    ];
  };
}
