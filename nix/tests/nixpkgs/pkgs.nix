# Stand-in packages: real (never built) derivations with the names nixpkgs gives them, so store paths,
# lib.getExe and types.package behave as with nixpkgs. Builders return the attributes they were given
# (text, script, dependencies), so tests can read what this flake's code passed to them.
{ lib, system }:
let
  fake =
    name: attrs:
    let
      # builtins.derivation takes only strings, numbers, booleans, paths, derivations and lists of them.
      plain = lib.filterAttrs (
        _: v: builtins.isString v || builtins.isInt v || builtins.isBool v || builtins.isPath v || builtins.isList v
      ) attrs;
      # Names like "unbindOrUnlink-persist-etc-machine\x2did" (impermanence, for /etc/machine-id) build
      # with nixpkgs' writers (impermanence's own checks persist /etc/machine-id at the pinned revision),
      # but builtins.derivation refuses the backslash: sanitise, as only the name's spelling differs.
      drv = derivation (
        plain
        // {
          name = lib.strings.sanitizeDerivationName name;
          inherit system;
          builder = "/bin/sh";
        }
      );
    in
    drv
    // attrs
    // {
      inherit (drv) outPath drvPath;
      out = drv;
      outputName = "out";
      type = "derivation";
      meta = attrs.meta or { };
    };
  tool = name: mainProgram: fake name { meta.mainProgram = mainProgram; };
  # A package with the programs nixpkgs' package installs in bin/ (the ones anything here relies on).
  toolWith =
    name: mainProgram: binaries:
    fake name {
      meta.mainProgram = mainProgram;
      inherit binaries;
    };

  pythonPackage = name: fake "python3.13-${name}" { pname = name; };
  # Every name here exists in nixpkgs' python3Packages (pkgs/top-level/python-packages.nix); guestfs is
  # `toPythonModule (pkgs.libguestfs.override { python3 = python; })` there.
  python3Packages =
    lib.genAttrs [
      "bcrypt"
      "cryptography"
      "guestfs"
      "hatchling"
      "libpass"
      "pexpect"
      "pytest"
      "questionary"
      "rich"
      "typer"
    ] pythonPackage
    // {
      # src stays out of the derivation: lib.fileset needs builtins.readFileType (Nix 2.14), which
      # Debian's Nix 2.8 lacks; it is kept, unevaluated, as an attribute.
      buildPythonApplication =
        attrs:
        fake "${attrs.pname}-${attrs.version}" (removeAttrs attrs [ "src" ])
        // {
          inherit (attrs) src;
        };
    };

  self = {
    inherit lib python3Packages;
    stdenv.hostPlatform = {
      inherit system;
      efiArch = "x64";
      isx86_64 = true;
      linux-kernel.target = "bzImage";
    };
    buildPackages = self;

    runCommand = name: env: buildCommand: fake name (env // { inherit buildCommand; });
    writeText = name: text: fake name { inherit text; };
    writeShellScript = name: text: fake name { inherit text; };
    closureInfo = { rootPaths }: fake "closure-info" { inherit rootPaths; };
    callPackage = lib.callPackageWith self;
    mkShell = attrs: fake "nix-shell" attrs;
    testers.runNixOSTest = test: {
      passthru.test = test;
    };

    bash = tool "bash-5.2" "bash";
    coreutils = tool "coreutils-9.7" "ls";
    gnutar = tool "gnutar-1.35" "tar";
    gzip = tool "gzip-1.14" "gzip";
    gitMinimal = tool "git-minimal-2.51" "git";
    xz = fake "xz-5.8" { bin = fake "xz-5.8-bin" { }; };
    util-linux = tool "util-linux-2.41" "mount";
    nix = tool "nix-2.31" "nix";
    systemd = tool "systemd-258" "systemctl";
    openssh = tool "openssh-10.0" "ssh";
    netbird = tool "netbird-0.59" "netbird";
    netbird-ui = tool "netbird-ui-0.59" "netbird-ui";
    openresolv = tool "openresolv-3.16" "resolvconf";
    iptables = tool "iptables-1.8" "iptables";
    ipset = tool "ipset-7.24" "ipset";
    nftables = tool "nftables-1.1" "nft";
    jq = tool "jq-1.8" "jq";
    diffutils = tool "diffutils-3.12" "diff";
    makeWrapper = fake "make-wrapper-hook" { };
    # pkgs/stdenv/generic/make-derivation.nix, never built: name and buildCommand kept for the tests.
    stdenv.mkDerivation = attrs: fake attrs.name attrs;
    # pkgs/pkgs-lib/formats.nix's json: its type, JSON values.
    formats.json = _: {
      type = lib.types.attrsOf lib.types.anything;
    };
    # pkgs/applications/virtualization/qemu: the full build installs the tools too; qemu-utils is the
    # same package with toolsOnly = true.
    qemu = toolWith "qemu-10.1" "qemu-system-x86_64" [
      "qemu-system-x86_64"
      "qemu-img"
      "qemu-io"
      "qemu-nbd"
    ];
    qemu-utils = toolWith "qemu-utils-10.1" "qemu-img" [
      "qemu-img"
      "qemu-io"
      "qemu-nbd"
    ];
    libguestfs-appliance = fake "libguestfs-appliance-1.56" { };
    libguestfs-with-appliance = tool "libguestfs-with-appliance-1.56" "guestfish";
    OVMF = fake "OVMF-202505" { fd = fake "OVMF-202505-fd" { }; };
    nixfmt = tool "nixfmt-1.0" "nixfmt";
    # pkgs/by-name/ni/nixfmt-tree: treefmt with nixfmt for *.nix; `settings` is treefmt's config.
    nixfmt-tree = tool "nixfmt-tree" "treefmt" // {
      override = { settings }: tool "nixfmt-tree" "treefmt" // { treefmtSettings = settings; };
    };
    shellcheck = tool "shellcheck-0.11" "shellcheck";
    just = tool "just-1.42" "just";
    linuxPackages.kernel = fake "linux-6.12" { version = "6.12.50"; };
  };
in
self
