# Mirrors nixos/modules/tasks/filesystems.nix: fileSystems.<name>.{mountPoint,device,fsType,options,label}
# with nixpkgs' types (non-empty strings, a non-empty options list, no trailing slash on mount points),
# special filesystems (tmpfs...) getting their type as device, label implying /dev/disk/by-label/<label>,
# filesystems needed for boot getting x-initrd.mount, and the root filesystem being required.
{ lib, config, utils, ... }:
let
  inherit (lib) mkOption mkDefault mkIf types;
  isNonEmpty = s: builtins.match "[ \t\n]*" s == null;
  nonEmptyStr = types.addCheck types.str isNonEmpty // { description = "non-empty string"; };
  mountPointType = types.addCheck types.str (s: isNonEmpty s && builtins.match ".+/" s == null);
  specialFSTypes = [
    "proc"
    "sysfs"
    "tmpfs"
    "ramfs"
    "devtmpfs"
    "devpts"
  ];
  fileSystemOpts =
    { name, config, ... }:
    {
      options = {
        mountPoint = mkOption {
          type = mountPointType;
          default = name;
        };
        device = mkOption {
          type = types.nullOr nonEmptyStr;
          default = null;
        };
        fsType = mkOption {
          type = nonEmptyStr;
          default = "auto";
        };
        options = mkOption {
          type = types.nonEmptyListOf nonEmptyStr;
          default = [ "defaults" ];
        };
        label = mkOption {
          type = types.nullOr nonEmptyStr;
          default = null;
        };
      };
      config = {
        device = lib.mkMerge [
          (mkIf (lib.elem config.fsType specialFSTypes) (mkDefault config.fsType))
          (mkIf (config.label != null) (mkDefault "/dev/disk/by-label/${config.label}"))
        ];
        options = mkIf (utils.fsNeededForBoot config) [ "x-initrd.mount" ];
      };
    };
in
{
  options.fileSystems = mkOption {
    type = types.attrsOf (types.submodule fileSystemOpts);
    default = { };
  };
  config.assertions = [
    {
      assertion = lib.any (fs: fs.mountPoint == "/") (lib.attrValues config.fileSystems);
      message = "The ‘fileSystems’ option does not specify your root file system.";
    }
  ];
}
