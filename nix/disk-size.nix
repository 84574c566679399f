# The disk image's partition sizes, declared once for modules/image.nix (which makes the partitions) and
# modules/storage.nix (which sizes GC and the boot entries to them), so that either works alone.
{ lib, ... }:
{
  options.zvm.disk.sizeMiB = lib.mkOption {
    type = lib.types.attrsOf lib.types.int;
    readOnly = true;
    # Together with 1 MiB for the GPT and alignment they make the 20 GiB virtual disk (repart builds with
    # --size=auto, i.e. the sum of the partitions). The nix partition is fixed and generous because
    # autoUpgrade builds new generations into it on the VM.
    default = rec {
      disk = 20 * 1024;
      esp = 512;
      nix = 12 * 1024;
      persist = disk - esp - nix - 1;
    };
    description = "Sizes in MiB of the disk image and its partitions (disk, esp, nix, persist).";
  };
}
