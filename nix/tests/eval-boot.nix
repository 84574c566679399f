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
  fileSystems = lib.mapAttrs (_: fs: {
    inherit (fs)
      mountPoint
      device
      fsType
      options
      neededForBoot
      ;
  }) node.config.fileSystems;
  # What tests/nix/driver.py's stand-in VM needs to behave as this node would: the driver's 9p shares,
  # what impermanence keeps, sshd, sudo, the user, the Netbird enrolment's condition.
  sharedDirectories = node.config.virtualisation.sharedDirectories;
  persistence = lib.mapAttrs (_: p: {
    directories = map (d: d.dirPath) p.directories;
    files = map (f: f.filePath) p.files;
    userDirectories = lib.concatMap (u: map (d: d.dirPath) u.directories) (lib.attrValues p.users);
  }) node.config.environment.persistence;
  openssh = {
    inherit (node.config.services.openssh) enable settings authorizedKeysFiles;
    hostKeys = map (k: k.path) node.config.services.openssh.hostKeys;
  };
  sudo = node.config.security.sudo.enable || node.config.security.sudo-rs.enable;
  zvmUser = {
    inherit (node.config.users.users.zvm) group extraGroups;
  };
  inherit ((import ../contract.nix { })) hostnameFile;
  enrolCondition = node.config.systemd.services.zvm-netbird-enrol.unitConfig.ConditionPathExists;
  imageFile = node.config.image.fileName;
  # systemd-boot is an EFI program only: the VM needs the EFI firmware to boot the image.
  firmware = {
    efi = node.config.virtualisation.useEFIBoot;
    systemdBoot = node.config.boot.loader.systemd-boot.enable;
    grub = node.config.boot.loader.grub.enable;
  };
  testScript = test.testScript { nodes.zvm = node.config; };
}
