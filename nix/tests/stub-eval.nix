# Offline evaluation of the flake's own code (no nixpkgs here): every module, package.nix and flake.nix
# are called with small stand-ins for lib, pkgs and config, and the values they set are returned as
# plain data for tests/test_nix.py. This checks what the modules SAY (option values, generated lists,
# the unit script); that those options exist and mean what we think is checked against nixpkgs only by
# a real `nix build` (see nix/README.md).
#
#   nix-instantiate --eval --strict --json -E 'import ./nix/tests/stub-eval.nix { }'
{ }:
let
  contract = import ../contract.nix { };

  upper = builtins.replaceStrings (lowerChars) (upperChars);
  lowerChars = [ "a" "b" "c" "d" "e" "f" "g" "h" "i" "j" "k" "l" "m" "n" "o" "p" "q" "r" "s" "t" "u" "v" "w" "x" "y" "z" ];
  upperChars = [ "A" "B" "C" "D" "E" "F" "G" "H" "I" "J" "K" "L" "M" "N" "O" "P" "Q" "R" "S" "T" "U" "V" "W" "X" "Y" "Z" ];

  lib = {
    mkOption = attrs: attrs // { _type = "option"; };
    types = {
      str = "str";
    };
    toUpper = upper;
    getExe = drv: "/nix/store/stub-${drv.pname}/bin/${drv.meta.mainProgram}";
    makeBinPath = paths: builtins.concatStringsSep ":" (map (p: "${p}/bin") paths);
    fileset = {
      unions = list: map toString list;
      toSource = { root, fileset }: "/nix/store/stub-source";
    };
    licenses.mit = "mit";
    platforms.linux = [ "x86_64-linux" ];
    nixosSystem = args: {
      config.system.build = {
        image = "/nix/store/stub-image";
        toplevel = "/nix/store/stub-toplevel";
      };
      moduleCount = builtins.length args.modules;
    };
  };

  stubDrv = name: "/nix/store/stub-${name}";

  pythonPackages = {
    buildPythonApplication = attrs: attrs;
    guestfs = "guestfs";
    typer = "typer";
    questionary = "questionary";
    libpass = "libpass";
    cryptography = "cryptography";
    rich = "rich";
    hatchling = "hatchling";
    pytest = "pytest";
    pexpect = "pexpect";
  };

  pkgs = {
    stdenv.hostPlatform.efiArch = "x64";
    runCommand = name: env: script: stubDrv name;
    writeText = name: text: stubDrv name;
    closureInfo = args: stubDrv "closure-info";
    buildPackages.nix = stubDrv "nix";
    coreutils = stubDrv "coreutils";
    qemu = stubDrv "qemu";
    OVMF = {
      fd = stubDrv "OVMF-fd";
    };
    libguestfs-appliance = stubDrv "libguestfs-appliance";
    libguestfs-with-appliance = stubDrv "libguestfs-with-appliance";
    nixfmt = stubDrv "nixfmt";
    shellcheck = stubDrv "shellcheck";
    python3Packages = pythonPackages;
    mkShell = attrs: attrs;
    callPackage = fn: overrides: import fn (callArgs // overrides);
  };
  callArgs = {
    inherit lib;
    inherit (pkgs) qemu libguestfs-appliance;
    python3Packages = pythonPackages;
  };

  updatesModule = import ../modules/updates.nix {
    inherit lib;
    config = { };
  };

  # What nixpkgs would supply in `config`, as far as the modules read it.
  config = {
    zvm.updates.flakeUrl = updatesModule.options.zvm.updates.flakeUrl.default;
    system.boot.loader = {
      kernelFile = "bzImage";
      initrdFile = "initrd";
    };
    system.build = {
      toplevel = stubDrv "toplevel";
      initialRamdisk = stubDrv "initrd";
    };
    systemd.package = stubDrv "systemd";
    boot.kernelPackages.kernel = stubDrv "kernel";
    boot.kernelParams = [ ];
    services.netbird = {
      package = stubDrv "netbird";
      clients.default.environment = {
        NB_DAEMON_ADDR = "unix:///var/run/netbird/sock";
      };
    };
    users.groups.users.gid = 100; # nixpkgs' ids.gids.users
    users.users.${contract.user.name} = modules.user.users.users.${contract.user.name};
  };

  args = {
    inherit lib pkgs config;
    modulesPath = "/stub/nixos/modules";
  };

  modules = {
    ephemeral = import ../modules/ephemeral.nix args;
    user = import ../modules/user.nix args;
    hardening = import ../modules/hardening.nix args;
    updates = import ../modules/updates.nix args;
    netbird = import ../modules/netbird.nix args;
    image = import ../modules/image.nix args;
  };

  host = import ../hosts/zvm/default.nix args;

  flake = import ../flake.nix;
  flakeOutputs = flake.outputs {
    self = flakeOutputs;
    nixpkgs = {
      inherit lib;
      legacyPackages.x86_64-linux = pkgs;
    };
    impermanence.nixosModules.impermanence = "impermanence-module";
    home-manager = { };
  };
  system = "x86_64-linux";
in
{
  inherit modules;

  # File names, not paths: paths would be copied to the store when printed.
  hostImports = map (p: baseNameOf (toString p)) host.imports;
  host = removeAttrs host [ "imports" ];

  assertions = map (a: { inherit (a) assertion message; }) modules.user.assertions;

  flake = {
    inherit (flake) description;
    inputs = flake.inputs;
    outputNames = builtins.attrNames flakeOutputs;
    nixosConfigurations = builtins.attrNames flakeOutputs.nixosConfigurations;
    nixosModules = builtins.attrNames flakeOutputs.nixosModules;
    packages = builtins.attrNames flakeOutputs.packages.${system};
    apps = builtins.mapAttrs (n: a: { inherit (a) type program; }) flakeOutputs.apps.${system};
    devShells = builtins.attrNames flakeOutputs.devShells.${system};
    devShell = removeAttrs flakeOutputs.devShells.${system}.default [ "inputsFrom" ];
    formatter = flakeOutputs.formatter.${system};
    image = flakeOutputs.packages.${system}.image;
    zvmProvision = removeAttrs flakeOutputs.packages.${system}.zvm-provision [ "src" ];
  };
}
