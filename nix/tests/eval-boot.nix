# checks.x86_64-linux.boot evaluated as far as it can be offline: the test's node (the zvm modules plus the
# test framework's VM options, stood in by ./nixpkgs/nixos/modules/virtualisation/qemu-vm.nix) through the
# real module system, and the test script generated from it. Building and running it needs nixpkgs and KVM.
#
#   nix-instantiate --eval --strict --json -E 'import ./nix/tests/eval-boot.nix { inputs = /path/to/nix-inputs; }'
{ inputs }:
let
  inherit (import ./offline-flake.nix { inherit inputs; }) lib nixpkgs self;
  system = "x86_64-linux";
  pkgs = nixpkgs.legacyPackages.${system};

  # The stand-in runNixOSTest hands back the test module; call it as the framework does.
  test = self.checks.${system}.boot.passthru.test { hostPkgs = pkgs; };
  node = nixpkgs.lib.nixosSystem {
    modules = [
      test.nodes.zvm
      ./nixpkgs/nixos/modules/virtualisation/qemu-vm.nix
      { nixpkgs.hostPlatform = system; }
    ];
  };
in
{
  inherit (test) name;
  nodes = builtins.attrNames test.nodes;
  failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) node.config.assertions);
  inherit (node.config) warnings;
  hostName = node.config.networking.hostName;
  fileSystems = lib.mapAttrs (_: fs: { inherit (fs) device fsType neededForBoot; }) node.config.fileSystems;
  imageFile = node.config.image.fileName;
  testScript = test.testScript { nodes.zvm = node.config; };
}
