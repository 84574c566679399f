# Mirrors nixos/lib/systemd-unit-options.nix and the checks of nixos/lib/systemd-lib.nix: unit names must
# end in a unit type (unitNameType), [Unit]/[Service]/... values merge as systemd options do, a service's
# Type= and Restart= must be values systemd knows, and the options a unit of each kind takes (in the initrd,
# without restartTriggers: stage1CommonUnitOptions there).
{ lib }:
let
  inherit (lib) mkOption types;

  unitNameType = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";

  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      if lib.any (def: lib.isList def.value) defs then
        lib.concatMap (def: lib.toList def.value) defs
      else
        lib.mergeEqualOption loc defs;
  };

  oneOfIfSet =
    name: allowed: attrs:
    !(attrs ? ${name}) || lib.elem attrs.${name} allowed;
  checkService =
    attrs:
    oneOfIfSet "Type" [
      "exec"
      "simple"
      "forking"
      "oneshot"
      "dbus"
      "notify"
      "notify-reload"
      "idle"
    ] attrs
    && oneOfIfSet "Restart" [
      "no"
      "on-success"
      "on-failure"
      "on-abnormal"
      "on-abort"
      "always"
    ] attrs;

  units = mkOption {
    type = types.listOf unitNameType;
    default = [ ];
  };
  section = mkOption {
    type = types.attrsOf unitOption;
    default = { };
  };

  common = {
    options = {
      enable = mkOption {
        type = types.bool;
        default = true;
      };
      description = mkOption {
        type = types.singleLineStr;
        default = "";
      };
      documentation = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      requires = units;
      wants = units;
      after = units;
      before = units;
      bindsTo = units;
      partOf = units;
      conflicts = units;
      wantedBy = units;
      requiredBy = units;
      unitConfig = section;
    };
  };
  # Stage 2 only: the initrd's units (boot.initrd.systemd.*) have no restart triggers.
  stage2 = {
    imports = [ common ];
    options.restartTriggers = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
  };
  mountOptions = {
    options = {
      what = mkOption { type = types.str; };
      where = mkOption { type = types.str; };
      type = mkOption {
        type = types.str;
        default = "";
      };
      options = mkOption {
        type = types.commas;
        default = "";
      };
      mountConfig = section;
    };
  };
in
{
  inherit unitNameType unitOption;

  service = {
    imports = [ stage2 ];
    options = {
      environment = mkOption {
        type = types.attrsOf (
          types.nullOr (
            types.oneOf [
              types.str
              types.path
              types.package
            ]
          )
        );
        default = { };
      };
      path = mkOption {
        type = types.listOf (
          types.oneOf [
            types.package
            types.str
          ]
        );
        default = [ ];
      };
      serviceConfig = mkOption {
        type = types.addCheck (types.attrsOf unitOption) checkService;
        default = { };
      };
      script = mkOption {
        type = types.lines;
        default = "";
      };
      preStart = mkOption {
        type = types.lines;
        default = "";
      };
      restartIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      stopIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      startAt = mkOption {
        type = types.either types.str (types.listOf types.str);
        default = [ ];
        apply = v: if lib.isList v then v else [ v ];
      };
    };
  };

  timer = {
    imports = [ stage2 ];
    options.timerConfig = section;
  };

  mount.imports = [
    stage2
    mountOptions
  ];
  initrdMount.imports = [
    common
    mountOptions
  ];
}
