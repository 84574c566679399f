# One option of the zvm system, evaluated strictly, with an extra module added: how the tests check that a
# stand-in refuses what the nixpkgs declaration it mirrors refuses (tests/nix/test_nix_standins.py).
#
#   nix-instantiate --eval --strict --json -E 'import ./nix/tests/eval-option.nix {
#     inputs = /path/to/nix-inputs; module = { nix.settings.sandbox = "yes"; }; path = [ "nix" "settings" ]; }'
#
# `module` may be any module (a function, lib.mkForce, path values: what JSON settings cannot carry).
# `vm = true` adds the NixOS test framework's VM options (virtualisation.*), as tests/eval-boot.nix does.
{
  inputs,
  module,
  path,
  vm ? false,
}:
let
  inherit (import ./offline-flake.nix { inherit inputs; }) lib self;
  zvm = self.nixosConfigurations.zvm.extendModules {
    modules = [
      { zvm.updates.flakeUrl = null; }
      module
    ]
    ++ lib.optional vm ./nixpkgs/nixos/modules/virtualisation/qemu-vm.nix;
  };
in
lib.getAttrFromPath path zvm.config
