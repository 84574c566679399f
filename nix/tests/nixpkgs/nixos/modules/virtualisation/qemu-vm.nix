# Mirrors nixos/modules/virtualisation/qemu-vm.nix (read at NixOS/nixpkgs 00008e8e, a nixfmt-era tree with
# virtualisation.directBoot; the pinned 8fd9daa3 is not stored): the options tests/boot.nix sets, and how
# the module builds fileSystems. The NixOS test framework adds this module to every node. Its
# virtualisation.fileSystems holds the 9p shares of virtualisation.sharedDirectories (the test driver's
# /tmp/xchg and /tmp/shared, through which copy_from_host and copy_from_vm pass files) and, with
# useDefaultFilesystems, a root filesystem on the VM's disk; it then replaces fileSystems (mkVMOverride).
# The lines under `config` follow that file's, with the options nothing here sets left at their defaults.
{ lib, config, options, ... }:
let
  inherit (lib) mkOption mkIf types;
  cfg = config.virtualisation;
  # mkVMOverride (nixos/modules/misc/lib? no: lib.mkVMOverride = mkOverride 10).
  mkVMOverride = lib.mkOverride 10;
in
{
  options.virtualisation = {
    # The very declaration of fileSystems, as there.
    fileSystems = options.fileSystems;
    memorySize = mkOption {
      type = types.ints.positive;
      default = 1024;
    };
    msize = mkOption {
      type = types.ints.positive;
      default = 16384;
    };
    diskImage = mkOption {
      type = types.nullOr types.str;
      # "./${config.system.name}.qcow2" there.
      default = "./nixos.qcow2";
    };
    rootDevice = mkOption {
      type = types.nullOr types.path;
      default = "/dev/disk/by-label/nixos";
    };
    bootPartition = mkOption {
      type = types.nullOr types.path;
      default = if cfg.useEFIBoot then "/dev/disk/by-label/ESP" else null;
    };
    sharedDirectories = mkOption {
      type = types.attrsOf (
        types.submodule {
          options.source = mkOption { type = types.str; };
          options.target = mkOption { type = types.path; };
          options.securityModel = mkOption {
            type = types.enum [
              "passthrough"
              "mapped-xattr"
              "mapped-file"
              "none"
            ];
            default = "mapped-xattr";
          };
        }
      );
      default = { };
    };
    useNixStoreImage = mkOption {
      type = types.bool;
      default = false;
    };
    mountHostNixStore = mkOption {
      type = types.bool;
      default = !cfg.useNixStoreImage && !cfg.useBootLoader;
    };
    writableStore = mkOption {
      type = types.bool;
      default = cfg.mountHostNixStore;
    };
    writableStoreUseTmpfs = mkOption {
      type = types.bool;
      default = true;
    };
    directBoot.enable = mkOption {
      type = types.bool;
      default = !cfg.useBootLoader;
    };
    useBootLoader = mkOption {
      type = types.bool;
      default = false;
    };
    useEFIBoot = mkOption {
      type = types.bool;
      default = false;
    };
    useDefaultFilesystems = mkOption {
      type = types.bool;
      default = true;
    };
    useHostCerts = mkOption {
      type = types.bool;
      default = false;
    };
  };

  config = {
    virtualisation.sharedDirectories = {
      nix-store = mkIf cfg.mountHostNixStore {
        source = builtins.storeDir;
        target = "/nix/.ro-store";
        securityModel = "none";
      };
      xchg = {
        source = ''"$TMPDIR"/xchg'';
        securityModel = "none";
        target = "/tmp/xchg";
      };
      shared = {
        source = ''"''${SHARED_DIR:-$TMPDIR/xchg}"'';
        target = "/tmp/shared";
        securityModel = "none";
      };
      certs = mkIf cfg.useHostCerts {
        source = ''"$TMPDIR"/certs'';
        target = "/etc/ssl/certs";
        securityModel = "none";
      };
    };

    fileSystems = mkIf (cfg.fileSystems != { }) (mkVMOverride cfg.fileSystems);

    virtualisation.fileSystems =
      let
        mkSharedDir = tag: share: {
          name = share.target;
          value.device = tag;
          value.fsType = "9p";
          value.neededForBoot = true;
          value.options = [
            "trans=virtio"
            "version=9p2000.L"
            "msize=${toString cfg.msize}"
            "x-systemd.requires=modprobe@9pnet_virtio.service"
          ]
          ++ lib.optional (tag == "nix-store") "cache=loose";
        };
      in
      lib.mkMerge [
        (lib.mapAttrs' mkSharedDir cfg.sharedDirectories)
        {
          "/" = mkIf cfg.useDefaultFilesystems (
            if cfg.diskImage == null then
              {
                device = "tmpfs";
                fsType = "tmpfs";
                options = [ "mode=755" ];
              }
            else
              {
                device = cfg.rootDevice;
                fsType = "ext4";
              }
          );
          # "/tmp" there is mkIf config.boot.tmp.useTmpfs (default false), not declared here.
          "/nix/store" = mkIf (cfg.useNixStoreImage || cfg.mountHostNixStore) (
            if cfg.writableStore then
              {
                device = "overlay";
                fsType = "overlay";
              }
            else
              {
                device = "/nix/.ro-store";
                options = [ "bind" ];
              }
          );
          "/nix/.rw-store" = mkIf (cfg.writableStore && cfg.writableStoreUseTmpfs) {
            fsType = "tmpfs";
            options = [ "mode=0755" ];
            neededForBoot = true;
          };
          ${config.boot.loader.efi.efiSysMountPoint} = mkIf (cfg.useBootLoader && cfg.bootPartition != null) {
            device = cfg.bootPartition;
            fsType = "vfat";
          };
        }
      ];
  };
}
