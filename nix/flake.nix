{
  description = "zvm: an immutable, ephemeral NixOS VM, and zvm-provision, which seeds its persist partition";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.11";
    impermanence = {
      url = "github:nix-community/impermanence";
      # impermanence's own inputs serve only its tests and dev shell: take our nixpkgs, fetch no home-manager.
      inputs.nixpkgs.follows = "nixpkgs";
      inputs.home-manager.follows = "";
    };
  };

  outputs =
    {
      self,
      nixpkgs,
      impermanence,
      ...
    }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      inherit (nixpkgs) lib;

      # The zvm system. The boot test builds its image from the same modules.
      zvmModules = [
        impermanence.nixosModules.impermanence
        ./hosts/zvm
      ];
      zvm = lib.nixosSystem {
        modules = zvmModules ++ [ { nixpkgs.hostPlatform = system; } ];
      };
      zvm-provision = pkgs.callPackage ./package.nix { };
    in
    {
      nixosConfigurations.zvm = zvm;

      # The same modules, for other hosts (they read ./persist-layout.json through ./contract.nix).
      nixosModules = {
        ephemeral = ./modules/ephemeral.nix;
        user = ./modules/user.nix;
        hardening = ./modules/hardening.nix;
        updates = ./modules/updates.nix;
        hostname = ./modules/hostname.nix;
        netbird = ./modules/netbird.nix;
        image = ./modules/image.nix;
        console = ./modules/console.nix;
        storage = ./modules/storage.nix;
      };

      packages.${system} = {
        # A directory holding main.raw (sparse, 20 GiB virtual).
        image = zvm.config.system.build.image;
        toplevel = zvm.config.system.build.toplevel;
        inherit zvm-provision;
        default = zvm-provision;
      };

      apps.${system} = {
        zvm-provision = {
          type = "app";
          program = lib.getExe zvm-provision;
          meta.description = "Seed a zvm disk image's persist partition before first boot";
        };
        default = self.apps.${system}.zvm-provision;
      };

      devShells.${system}.default = pkgs.mkShell {
        inputsFrom = [ zvm-provision ];
        packages = [
          pkgs.qemu
          pkgs.OVMF
          pkgs.libguestfs-with-appliance
          pkgs.nixfmt
          pkgs.shellcheck
          pkgs.just
          pkgs.python3Packages.pytest
          pkgs.python3Packages.pexpect
        ];
        LIBGUESTFS_PATH = "${pkgs.libguestfs-appliance}";
        LIBGUESTFS_BACKEND = "direct";
        # Read by scripts/start.sh.
        OVMF_CODE = "${pkgs.OVMF.fd}/FV/OVMF_CODE.fd";
        OVMF_VARS = "${pkgs.OVMF.fd}/FV/OVMF_VARS.fd";
      };

      formatter.${system} = pkgs.nixfmt;

      checks.${system} = {
        # Without zvm.updates.flakeUrl (a fresh clone) the system builds without updates; only the image
        # refuses to build (modules/image.nix), so `nix flake check` passes and nothing unpublishable ships.
        toplevel = zvm.config.system.build.toplevel;
        inherit zvm-provision;
        # Builds the image, seeds it with zvm-provision, boots it twice (needs KVM; see nix/README.md).
        boot = pkgs.testers.runNixOSTest (
          import ./tests/boot.nix {
            inherit lib zvm-provision;
            modules = zvmModules;
          }
        );
      };
    };
}
