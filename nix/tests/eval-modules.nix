# The flake's nixosModules as another flake would use them, evaluated offline: nixosModules.default alone
# (with the host's own name and state version), and each module alone on a plain system, imported but not
# switched on, and switched on. Also renders the options reference (nix/OPTIONS.md) from the declarations.
#
#   nix-instantiate --eval --strict --json -E 'import ./nix/tests/eval-modules.nix { inputs = /path/to/nix-inputs; }'
{ inputs }:
let
  inherit (import ./offline-flake.nix { inherit inputs; }) lib nixpkgs self;
  system = "x86_64-linux";
  host = {
    nixpkgs.hostPlatform = system;
    networking.hostName = "other";
    system.stateVersion = "25.11";
  };
  plain = host // {
    fileSystems."/" = {
      device = "/dev/vda1";
      fsType = "ext4";
    };
  };
  evalWith = modules: nixpkgs.lib.nixosSystem { inherit modules; };
  report =
    sys:
    let
      c = sys.config;
    in
    {
      failedAssertions = map (a: a.message) (lib.filter (a: !a.assertion) c.assertions);
      toplevel = (builtins.tryEval (builtins.seq c.system.build.toplevel.drvPath true)).success;
      sudo = c.security.sudo.enable;
      sshd = c.services.openssh.enable;
      passwordAuthentication = c.services.openssh.settings.PasswordAuthentication or null;
      netbird = c.services.netbird.enable;
      gc = c.nix.gc.automatic;
      zvmUser = c.users.users ? zvm;
      mutableUsers = c.users.mutableUsers;
      hostnameSnippet = c.system.activationScripts ? zvm-hostname;
      persistence = c.environment ? persistence && c.environment.persistence ? "/persist";
      autoUpgrade = c.system.autoUpgrade.enable;
    };
  withUpdates = name: lib.optional (name == "updates") { zvm.updates.flakeUrl = null; };
  alone = name: extra: report (evalWith ([ self.nixosModules.${name} plain extra ] ++ withUpdates name));
  names = lib.attrNames (removeAttrs self.nixosModules [ "default" ]);
  switchable = lib.filter (
    n: ((evalWith [ self.nixosModules.${n} plain ]).options.zvm or { }) ? ${n}.enable
  ) names;

  defaultSystem = evalWith [
    self.nixosModules.default
    host
    { zvm.updates.flakeUrl = null; }
  ];

  # The options the flake's modules declare, as nixpkgs' nixosOptionsDoc lists them.
  ours = lib.filter (
    o:
    lib.any (
      d: lib.hasPrefix (toString ../. + "/") (toString d) && !lib.hasPrefix (toString ./.) (toString d)
    ) o.declarations
    && !(o.internal or false)
  ) (lib.optionAttrSetToDocList defaultSystem.options);
  show =
    v:
    let
      text = if v ? _type && v ? text then v.text else builtins.toJSON v;
    in
    if lib.hasInfix "\n" text then "\n\n  ```nix\n  ${lib.replaceStrings [ "\n" ] [ "\n  " ] text}\n  ```\n" else " `${text}`\n";
  # Newer nixpkgs lib shows a type's empty value as the default of an option that has none: not here.
  declaresDefault = o: (lib.getAttrFromPath o.loc defaultSystem.options) ? default;
  relative = d: lib.removePrefix (toString ../. + "/") (toString d);
  render = o: ''
    ### `${o.name}`

    ${lib.trim (o.description or "")}

    - Type: ${o.type}
  ''
  + (if declaresDefault o then "- Default:${show o.default}" else "- Default: none, it must be set\n")
  + lib.optionalString (o ? example) "- Example:${show o.example}"
  + lib.optionalString (o.readOnly or false) "- Read-only\n"
  + "- Declared in: ${lib.concatMapStringsSep ", " (d: "`nix/${relative d}`") o.declarations}\n";
in
{
  default = report defaultSystem;
  inherit names switchable;
  off = lib.genAttrs names (n: alone n { });
  on = lib.genAttrs switchable (n: alone n { zvm.${n}.enable = true; });
  options = map (o: {
    inherit (o) name;
    description = o.description or null;
  }) ours;
  optionsDoc = ''
    # zvm's NixOS options

    Generated from the declarations in `nix/` (what `nixosModules.default` adds); do not edit by
    hand: `nix/tests/options-doc.sh` writes it, and `tests/nix/test_nix_modules.py` fails when it is not
    current. Each module that changes security or services has an `enable` option; `nixosModules.default`
    switches them on by default, a module imported alone (`nixosModules.<name>`) waits for it.

  ''
  + lib.concatMapStringsSep "\n" render ours;
}
