# The disk image: main.raw built by systemd-repart (image.repart), 20 GiB virtual, three partitions:
#   ESP      vfat, systemd-boot, the kernel, the initrd and one loader entry
#   nix      ext4, the system closure under /store and a registered Nix database under /var/nix
#            (mounted at /nix, so nixos-rebuild and autoUpgrade on the VM see a valid store)
#   persist  ext4, empty: zvm-provision seeds it before first boot (persist-layout.json)
# The repart seed, every partition UUID and the ext4 hash seed are pinned, so the partition table and
# filesystem identities do not change between builds.
{
  config,
  options,
  lib,
  pkgs,
  modulesPath,
  ...
}:
let
  contract = import ../contract.nix { };

  # An image is what gets published: it must not be built before zvm.updates.flakeUrl says where its VMs
  # update from (or null: never). The system itself evaluates and builds without it, so `nix flake check`
  # passes on a fresh clone; only the image's build stops, with this message (see nix/README.md, Updates).
  updateDecided = !(options ? zvm.updates.flakeUrl) || options.zvm.updates.flakeUrl.isDefined;
  noImageWithoutUpdateDecision = pkgs.runCommand "zvm-image-needs-an-update-decision" { } ''
    echo "zvm: no image is built until zvm.updates.flakeUrl is set: every VM switches hourly to the system of" >&2
    echo "that flake, so it must be your own copy of this repository's flake. Set it in nix/hosts/zvm/default.nix," >&2
    echo "e.g. zvm.updates.flakeUrl = \"git+https://git.example.com/you/zvm-provision?dir=nix&ref=release#zvm\";" >&2
    echo "or to null for VMs that never update themselves (nix/README.md, Updates)." >&2
    exit 1
  '';

  inherit (pkgs.stdenv.hostPlatform) efiArch;
  loader = config.system.boot.loader;
  toplevel = config.system.build.toplevel;
  systemdBoot = "${config.systemd.package}/lib/systemd/boot/efi/systemd-boot${efiArch}.efi";

  sizeMiB = config.zvm.disk.sizeMiB; # ../disk-size.nix
  # A repart.d [Partition] section of a fixed size.
  partition = type: format: label: uuid: mib: {
    Type = type;
    Format = format;
    Label = label;
    UUID = uuid;
    SizeMinBytes = "${toString mib}M";
    SizeMaxBytes = "${toString mib}M";
  };

  pinned = {
    seed = "0867da16-f251-457d-a9e8-c31f9a3c220b";
    esp = "05cf8017-48b1-4b7d-8b3e-3d56c6508e1c";
    nix = "1054da5b-323f-4340-a0e0-bf1b84dc286b";
    persist = "c8d7092a-1a29-4c00-97fa-af8c2f93465c";
    # systemd-repart before systemd PR #40323 lets mke2fs pick a random directory hash seed.
    ext4HashSeed = "6a25746b-f1a3-4eab-b0ab-8f3055f9a5b8";
  };

  # The closure registered in a Nix database, as nixpkgs' image/interactive.nix does.
  nixState =
    pkgs.runCommand "zvm-nix-state" { nativeBuildInputs = [ pkgs.buildPackages.nix ]; }
      ''
        mkdir -p $out/profiles
        ln -s ${toplevel} $out/profiles/system-1-link
        ln -s /nix/var/nix/profiles/system-1-link $out/profiles/system
        export NIX_STATE_DIR=$out
        nix-store --load-db < ${pkgs.closureInfo { rootPaths = [ toplevel ]; }}/registration
        # Nix links gcroots/profiles to $NIX_STATE_DIR/profiles, i.e. to this build's path, which the image
        # does not hold (its contents are copied to /nix/var/nix): the VM's GC would skip it as an invalid
        # root on every run. Point it where the state is in the VM, as on any NixOS.
        ln -sfn /nix/var/nix/profiles $out/gcroots/profiles
        # The 8 MiB that GC frees when the disk is full: the VM's Nix makes it again when it first opens
        # the store (gc-reserved-space); the image need not carry it.
        rm -f $out/db/reserved
      '';

  loaderEntry = pkgs.writeText "nixos-generation-1.conf" ''
    title NixOS (zvm)
    linux /EFI/nixos/${loader.kernelFile}
    initrd /EFI/nixos/${loader.initrdFile}
    options init=${toplevel}/init ${toString config.boot.kernelParams}
  '';
  loaderConf = pkgs.writeText "loader.conf" ''
    timeout 1
    editor no
  '';
in
{
  imports = [
    "${modulesPath}/image/repart.nix"
    ../disk-size.nix
  ];

  config = {
    system.build.image = lib.mkIf (!updateDecided) (lib.mkForce noImageWithoutUpdateDecision);

    boot.loader.grub.enable = false;
    boot.loader.systemd-boot.enable = true;
    # A kernel command line edited at the boot menu (init=/bin/sh) would bypass everything else here.
    boot.loader.systemd-boot.editor = false;
    # Built offline: OVMF boots \EFI\BOOT\BOOTX64.EFI without NVRAM entries.
    boot.loader.efi.canTouchEfiVariables = false;

    image.repart = {
      name = "main"; # => ${config.system.build.image}/main.raw
      version = null;
      inherit (pinned) seed;
      sectorSize = 512; # OVMF does not boot 4096-byte sectors
      mkfsOptions.ext4 = [
        "-E"
        "hash_seed=${pinned.ext4HashSeed},nodiscard,lazy_itable_init=1"
      ];

      # Attribute names are the repart.d file names: they fix the on-disk order.
      partitions = {
        "10-esp" = {
          contents = {
            "/EFI/BOOT/BOOT${lib.toUpper efiArch}.EFI".source = systemdBoot;
            "/EFI/systemd/systemd-boot${efiArch}.efi".source = systemdBoot;
            "/EFI/nixos/${loader.kernelFile}".source =
              "${config.boot.kernelPackages.kernel}/${loader.kernelFile}";
            "/EFI/nixos/${loader.initrdFile}".source =
              "${config.system.build.initialRamdisk}/${loader.initrdFile}";
            "/loader/entries/nixos-generation-1.conf".source = loaderEntry;
            "/loader/loader.conf".source = loaderConf;
          };
          repartConfig = partition "esp" "vfat" contract.disk.espLabel pinned.esp sizeMiB.esp;
        };

        "20-nix" = {
          storePaths = [ toplevel ];
          # The partition is mounted at /nix: the store goes to /store, the database to /var/nix.
          nixStorePrefix = "/store";
          contents."/var/nix".source = nixState;
          repartConfig = partition "linux-generic" "ext4" contract.disk.nixLabel pinned.nix sizeMiB.nix;
        };

        "30-persist" = {
          # Type linux-generic (not var/home): systemd's gpt-auto-generator must never mount it by itself.
          repartConfig =
            partition "linux-generic" contract.fsType contract.disk.persistLabel pinned.persist
              sizeMiB.persist;
        };
      };
    };
  };
}
