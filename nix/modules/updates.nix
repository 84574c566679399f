# Hourly auto-update from the published flake, plus a run shortly after every boot.
# allowReboot = false: the new generation is switched to live; a changed kernel or initrd waits for a manual reboot.
#
# zvm.updates.flakeUrl has no default on purpose: a default would be somebody else's flake, and a VM that
# switches to a system with another persist layout loses its data. Whoever publishes the image sets it (in
# hosts/zvm/default.nix or a module of their own) to their copy of this repository's flake, or to null
# to ship a VM that never updates itself. Until then the system evaluates and builds without updates (so
# `nix flake check` passes on a fresh clone) with a warning, and the image refuses to build (image.nix).
{
  config,
  options,
  lib,
  pkgs,
  ...
}:
let
  contract = import ../contract.nix { };
  cfg = config.zvm.updates;
  isSet = options.zvm.updates.flakeUrl.isDefined;
  enabled = isSet && cfg.flakeUrl != null;
  example = "git+https://git.example.com/you/zvm-provision?dir=nix&ref=release#zvm";
  # Where the unit's ExecStartPre leaves the flake reference nixos-rebuild gets (RuntimeDirectory=).
  runtimeDirectory = "zvm-update";
in
{
  options.zvm.updates.sourceTool = lib.mkOption {
    type = lib.types.package;
    readOnly = true;
    internal = true;
    default = pkgs.writeShellScript "zvm-update-source" (builtins.readFile ./update-source.sh);
    description = ''
      `zvm-update-source URL SIGNERS OUT`: writes to OUT the flake reference the update switches to: URL
      as it is when there is no SIGNERS file, else URL pinned (`rev=`) to the commit of its ref once that
      tag or commit is verified as signed by a key in SIGNERS; exits 1 (no update) when it is not.
    '';
  };

  options.zvm.updates.flakeUrl = lib.mkOption {
    type = lib.types.nullOr lib.types.str;
    example = example;
    description = ''
      Flake reference, with the `#zvm` attribute, that every VM pulls its system from, hourly and 2 minutes
      after each boot: your copy of this repository's flake (`?dir=nix`). `null` turns updates off.
      There is no default: until it is set the system has no updates and its image does not build.
      Whoever can push to the branch it follows controls every VM: pin a release branch or tag with
      `&ref=...` (without it, the repository's default branch is followed). A VM seeded with release
      signers (`zvm-provision seed --update-signer KEY.pub`) switches only to a tag or commit one of them
      signed, pinned by `rev=`; that needs a `git+https://` or `git+ssh://` URL. No spaces.
    '';
  };

  config = lib.mkMerge [
    {
      assertions = [
        {
          assertion = enabled -> builtins.match ".*[[:space:][:cntrl:]].*" cfg.flakeUrl == null;
          message = ''
            zvm.updates.flakeUrl = "${toString cfg.flakeUrl}" holds a space or a control character: a flake
            URL has none (percent-encode it, e.g. %20).
          '';
        }
        {
          assertion = enabled -> lib.hasInfix "#" cfg.flakeUrl;
          message = ''
            zvm.updates.flakeUrl = "${toString cfg.flakeUrl}" names no configuration: end it with #zvm,
            e.g. "${example}".
          '';
        }
      ];
      warnings =
        if isSet then
          lib.optional (cfg.flakeUrl == null) ''
            zvm.updates.flakeUrl is null: this VM never updates itself (no nixos-upgrade timer).
          ''
        else
          [
            ''
              zvm.updates.flakeUrl is not set: this system has no updates, and its image (modules/image.nix) will not
              build until it is set to your own copy of this repository's flake, e.g.
                zvm.updates.flakeUrl = "${example}";
              or to null for VMs that never update themselves (see nix/README.md, Updates).
            ''
          ];
    }

    (lib.mkIf enabled {
      nix.settings.experimental-features = [
        "nix-command"
        "flakes"
      ];

      system.autoUpgrade = {
        enable = true;
        # nixpkgs pastes this into the unit's bash script unquoted: the URL itself would be split at `&`
        # (see nix/README.md, Updates). What is pasted is a quoted read of the reference the ExecStartPre
        # below decided on (the URL, or the verified revision of it).
        flake = ''"$(cat "$RUNTIME_DIRECTORY/flake")"'';
        operation = "switch";
        dates = "hourly";
        randomizedDelaySec = "5min";
        allowReboot = false;
      };

      # Re-apply the latest flake at every boot. The timer's Persistent= catch-up cannot do it: its stamp
      # lives in /var/lib/systemd/timers, which is on the tmpfs.
      systemd.timers.nixos-upgrade.timerConfig.OnBootSec = "2min";

      # Nix's fetcher cache (the nixpkgs tarball, the flake's git checkout) lives under $XDG_CACHE_HOME:
      # keep it on /nix, not in root's home on the tmpfs root, so it neither fills RAM nor is fetched anew
      # after every boot.
      systemd.services.nixos-upgrade.environment.XDG_CACHE_HOME = "/nix/var/cache/nixos-upgrade";

      # Before nixos-rebuild: which reference it gets, verified against the seeded release signers if any.
      systemd.services.nixos-upgrade.serviceConfig.RuntimeDirectory = runtimeDirectory;
      systemd.services.nixos-upgrade.environment.ZVM_UPDATE_CACHE = "/nix/var/cache/zvm-update";
      systemd.services.nixos-upgrade.preStart = ''
        ${cfg.sourceTool} ${lib.escapeShellArgs [
          cfg.flakeUrl
          contract.updateSignersFile
        ]} "$RUNTIME_DIRECTORY/flake"
      '';
    })
  ];
}
