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
      vendored = "nix/tests/nixpkgs/vendored/*";
      # The stand-in for nixpkgs the offline checks evaluate (vendored files and mirrors of nixpkgs' own).
      standIns = "nix/tests/nixpkgs/*";
    in
    {
      nixosConfigurations.zvm = zvm;

      # zvm's modules for other flakes: `imports = [ zvm.nixosModules.default ];` adds all of them (each
      # module that changes security or services switched on by default), or one at a time, each switched on
      # with its own zvm.<name>.enable. Each imports what it needs (ephemeral: impermanence). They read
      # ./persist-layout.json through ./contract.nix. Options: nix/OPTIONS.md.
      nixosModules =
        let
          modules = {
            ephemeral = {
              imports = [
                impermanence.nixosModules.impermanence
                ./modules/ephemeral.nix
              ];
            };
            user = ./modules/user.nix;
            hardening = ./modules/hardening.nix;
            updates = ./modules/updates.nix;
            hostname = ./modules/hostname.nix;
            netbird = ./modules/netbird.nix;
            image = ./modules/image.nix;
            console = ./modules/console.nix;
            storage = ./modules/storage.nix;
          };
        in
        modules
        // {
          default =
            { lib, ... }:
            {
              imports = lib.attrValues modules;
              zvm = lib.genAttrs [
                "user"
                "hardening"
                "hostname"
                "netbird"
                "storage"
              ] (_: {
                enable = lib.mkDefault true;
              });
            };
        };

      packages.${system} = {
        # A directory holding main.raw (sparse, 20 GiB virtual).
        image = zvm.config.system.build.image;
        toplevel = zvm.config.system.build.toplevel;
        inherit zvm-provision;
        default = zvm-provision;
        # `nix build .#formatting`: every .nix file of the flake is as `nix fmt` leaves it (nixfmt --check),
        # the stand-in nixpkgs under tests/nixpkgs (vendored files included) aside. Not among `checks` yet: nixfmt has never run over this tree (no nixfmt on
        # the machines that wrote it), so `nix flake check` would fail on style alone; move it there once
        # `nix fmt` has been run and committed (nix/README.md, "Checked only on a connected machine").
        formatting = pkgs.runCommand "zvm-nixfmt-check" { nativeBuildInputs = [ pkgs.nixfmt ]; } ''
          cd ${./.}
          find . -name '*.nix' -not -path './${lib.removePrefix "nix/" standIns}' -print0 | sort -z | xargs -0 nixfmt --check
          touch $out
        '';
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

      # `nix fmt`: nixfmt over the repository through treefmt, as nixfmt's README recommends for a project.
      # The vendored nixpkgs files stay as upstream wrote them.
      # (treefmt's tree root is the repository, or nix/ when the flake is used alone: both spellings.)
      formatter.${system} = pkgs.nixfmt-tree.override {
        settings.formatter.nixfmt.excludes = [
          vendored
          (lib.removePrefix "nix/" vendored)
        ];
      };

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
