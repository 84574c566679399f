# This flake evaluated offline: flake.nix's outputs, called with the real impermanence flake and a stand-in
# for nixpkgs (./nixpkgs: the real nixpkgs lib and module system, declarations of the nixpkgs options the
# modules use, derivations that are never built). Used by tests/nix/test_nix*.py:
#
#   nix-instantiate --eval --strict --json -E \
#     'import ./nix/tests/eval.nix { inputs = /path/to/nix-inputs; }'
#
# `inputs` holds nixpkgs-lib/ and impermanence/ at the revisions flake.lock pins (see nix/README.md).
# `settings` is a module added to the system (e.g. { zvm.updates.flakeUrl = "..."; }); the result is the
# system's configuration as raw values: nothing here computes what a test expects.
{
  inputs,
  settings ? { },
}:
let
  inherit (import ./offline-flake.nix { inherit inputs; }) lib nixpkgs flake self;
  system = "x86_64-linux";

  zvm = self.nixosConfigurations.zvm.extendModules { modules = [ settings ]; };
  inherit (zvm) config;

  pick = names: attrs: lib.getAttrs (lib.filter (n: attrs ? ${n}) names) attrs;
  # What the checks compare of each directory impermanence generates (system-wide and per user alike).
  directoryFields = [
    "directory"
    "dirPath"
    "user"
    "group"
    "mode"
  ];
  unit = pick [
    "description"
    "wantedBy"
    "requires"
    "wants"
    "after"
    "before"
    "unitConfig"
    "serviceConfig"
    "timerConfig"
    "environment"
    "path"
    "script"
    "preStart"
    "startAt"
  ];
  toplevel = builtins.tryEval (builtins.seq config.system.build.toplevel.drvPath true);
  ifBuilt = value: if toplevel.success then value else null;

  mount = pick [
    "what"
    "where"
    "type"
    "options"
    "wantedBy"
    "before"
    "unitConfig"
  ];
in
{
  inputs = {
    inherit (flake) inputs;
  };

  assertions = map (a: {
    inherit (a) assertion message;
  }) config.assertions;
  inherit (config) warnings;

  # Fails (throws) while an assertion fails, as nixpkgs' toplevel does; then the parts built from it are null.
  inherit toplevel;

  fileSystems = lib.mapAttrs (
    _: fs:
    pick [
      "mountPoint"
      "device"
      "fsType"
      "options"
      "neededForBoot"
    ] fs
  ) config.fileSystems;

  persistence = lib.mapAttrs (_: p: {
    inherit (p) persistentStoragePath hideMounts;
    directories = map (pick directoryFields) p.directories;
    files = map (f: {
      inherit (f) file filePath;
      parentDirectory = pick [
        "dirPath"
        "user"
        "group"
        "mode"
      ] f.parentDirectory;
    }) p.files;
    users = lib.mapAttrs (_: u: {
      directories = map (pick directoryFields) u.directories;
    }) p.users;
  }) config.environment.persistence;

  systemd = {
    services = lib.mapAttrs (_: unit) config.systemd.services;
    timers = lib.mapAttrs (_: unit) config.systemd.timers;
    mounts = map mount config.systemd.mounts;
    initrdMounts = map mount config.boot.initrd.systemd.mounts;
    initrdSuppressedUnits = config.boot.initrd.systemd.suppressedUnits;
    tmpfiles = config.systemd.tmpfiles.rules;
  };
  initrdPostMountCommands = config.boot.initrd.postMountCommands;
  inherit (config.environment) interactiveShellInit;
  activationScripts = lib.mapAttrs (
    _: s:
    if builtins.isString s then
      { text = s; }
    else
      {
        inherit (s) deps text;
      }
  ) config.system.activationScripts;

  # /etc's files as nixpkgs links them (the "etc" activation snippet).
  etc = lib.mapAttrs (_: e: {
    inherit (e)
      enable
      target
      mode
      text
      ;
    source = toString e.source;
  }) config.environment.etc;

  hostname = {
    inherit (config.networking) hostName;
    # The check of a seeded name (modules/hostname.nix): its store path and the script it runs.
    seededNameTool =
      let
        tool = config.zvm.hostname.seededNameTool;
      in
      {
        path = toString tool;
        inherit (tool) text;
      };
  };

  # The update's choice of flake reference (modules/updates.nix): its store path and the script it runs.
  updates.sourceTool =
    let
      tool = config.zvm.updates.sourceTool;
    in
    {
      path = toString tool;
      inherit (tool) text;
    };

  netbird = lib.mapAttrs (_: c: {
    service = c.service.name;
    wrapper = toString c.wrapper;
    # The script that builds the wrapper (makeWrapper ... --set-default NB_* ...).
    wrapperScript = c.wrapper.buildCommand;
    inherit (c) hardened environment;
    runtimeDirectory = c.dir.runtime;
    user = c.user.name;
    group = c.user.group;
  }) config.services.netbird.clients;

  users = {
    inherit (config.users) mutableUsers allowNoPasswordLogin;
    users = lib.mapAttrs (
      _: u:
      pick [
        "uid"
        "group"
        "extraGroups"
        "home"
        "isNormalUser"
        "isSystemUser"
        "createHome"
        "hashedPassword"
        "hashedPasswordFile"
      ] u
    ) config.users.users;
    groups = lib.mapAttrs (_: g: g.gid) config.users.groups;
  };

  security = {
    sudo = config.security.sudo.enable;
    sudo-rs = config.security.sudo-rs.enable;
  };

  openssh = {
    inherit (config.services.openssh)
      enable
      settings
      authorizedKeysFiles
      hostKeys
      extraConfig
      ;
  };

  nix = {
    inherit (config.nix) settings;
    gc = {
      inherit (config.nix.gc)
        automatic
        dates
        options
        persistent
        ;
    };
  };

  autoUpgrade = {
    inherit (config.system.autoUpgrade)
      enable
      flake
      flags
      operation
      dates
      allowReboot
      ;
  };

  boot = {
    inherit (config.boot) kernelParams;
    loader = {
      grub = config.boot.loader.grub.enable;
      efiCanTouchVariables = config.boot.loader.efi.canTouchEfiVariables;
      systemd-boot = {
        inherit (config.boot.loader.systemd-boot) enable editor configurationLimit;
      };
    };
  };

  image = ifBuilt {
    inherit (config.image) fileName;
    repart = {
      inherit (config.image.repart)
        name
        version
        seed
        sectorSize
        mkfsOptions
        ;
      partitions = lib.mapAttrs (_: p: {
        inherit (p) repartConfig nixStorePrefix storePaths;
        contents = lib.mapAttrs (_: c: toString c.source) p.contents;
      }) config.image.repart.partitions;
    };
    # The text of every ESP file the flake writes itself (loader entry, loader.conf).
    espTexts = lib.mapAttrs (_: c: c.source.text) (
      lib.filterAttrs (_: c: c.source ? text) config.image.repart.partitions."10-esp".contents
    );
    diskSizeMiB = config.zvm.disk.sizeMiB;
    # What `nix build .#image` builds: its name, and the script of a refusal (null for the real image).
    build = {
      inherit (config.system.build.image) name;
      script = config.system.build.image.buildCommand or null;
    };
    # The Nix database the image carries under /nix/var/nix: the script that makes it.
    nixStateScript = config.image.repart.partitions."20-nix".contents."/var/nix".source.buildCommand;
    toplevelPath = toString config.system.build.toplevel;
  };

  package =
    let
      p = self.packages.${system}.zvm-provision;
    in
    {
      inherit (p) pname version makeWrapperArgs pythonImportsCheck;
      dependencies = map (d: d.pname) p.dependencies;
      # What each stand-in package puts in its bin/ (as nixpkgs' package does), by store path: the
      # wrapper's PATH is checked against it.
      binaries = lib.listToAttrs (
        map (pkg: lib.nameValuePair (builtins.unsafeDiscardStringContext "${pkg}/bin") pkg.binaries) (
          lib.filter (v: lib.isDerivation v && v ? binaries) (lib.attrValues nixpkgs.legacyPackages.${system})
        )
      );
      mainProgram = p.meta.mainProgram;
    };

  # What `nix flake check` evaluates (it builds only the checks), on the flake as cloned (no settings): the
  # derivation of every output. true = evaluates; the boot check is a stand-in (see eval-boot.nix).
  flakeCheck =
    let
      evaluates = d: (builtins.tryEval (builtins.seq d.drvPath true)).success;
      each = lib.mapAttrs (_: d: if lib.isDerivation d then evaluates d else "not a derivation here");
    in
    {
      nixosConfigurations = lib.mapAttrs (
        _: c: evaluates c.config.system.build.toplevel
      ) self.nixosConfigurations;
      packages = each self.packages.${system};
      checks = each self.checks.${system};
      devShells = each self.devShells.${system};
      formatter = evaluates self.formatter.${system};
      apps = lib.mapAttrs (_: a: (builtins.tryEval (builtins.seq a.program true)).success) self.apps.${system};
    };

  formatting = {
    formatter = {
      inherit (self.formatter.${system}) name treefmtSettings;
      mainProgram = self.formatter.${system}.meta.mainProgram;
    };
    check = self.packages.${system}.formatting.buildCommand;
  };

  outputs = ifBuilt {
    nixosConfigurations = lib.attrNames self.nixosConfigurations;
    nixosModules = lib.attrNames self.nixosModules;
    packages = lib.attrNames self.packages.${system};
    apps = lib.mapAttrs (_: a: { inherit (a) type program; }) self.apps.${system};
    checks = lib.attrNames self.checks.${system};
    devShell = lib.attrNames self.devShells.${system};
    imagePackage = toString self.packages.${system}.image;
    imageOfConfiguration = toString self.nixosConfigurations.zvm.config.system.build.image;
  };
}
