# Mirrors nixos/modules/system/boot/loader/loader.nix: the kernel's file name is the platform's kernel
# target (bzImage on x86_64), the initrd's "initrd".
{ lib, pkgs, ... }:
{
  options.system.boot.loader = {
    kernelFile = lib.mkOption {
      type = lib.types.str;
      internal = true;
      default = pkgs.stdenv.hostPlatform.linux-kernel.target;
    };
    initrdFile = lib.mkOption {
      type = lib.types.str;
      internal = true;
      default = "initrd";
    };
  };
}
