# zvm-provision, the tool that seeds the persist partition, built from this repository's pyproject.toml.
# libguestfs needs an appliance and qemu at run time; the wrapper provides both.
{
  lib,
  python3Packages,
  libguestfs-appliance,
  qemu,
}:
let
  pyproject = builtins.fromTOML (builtins.readFile ../pyproject.toml);
in
python3Packages.buildPythonApplication {
  pname = pyproject.project.name;
  inherit (pyproject.project) version;
  pyproject = true;

  # The repository root (the flake lives in nix/). The wheel carries nix/persist-layout.json.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../pyproject.toml
      ../README.md
      ../provision
      ./persist-layout.json
    ];
  };

  build-system = [ python3Packages.hatchling ];

  dependencies = with python3Packages; [
    guestfs # the bindings built from pkgs.libguestfs (not on PyPI)
    typer
    questionary
    libpass # maintained fork of passlib; same `passlib` import
    cryptography
    rich
  ];
  # pyproject.toml bounds are for pip users; take what the pinned nixpkgs has.
  pythonRelaxDeps = true;

  makeWrapperArgs = [
    "--set-default LIBGUESTFS_PATH ${libguestfs-appliance}"
    "--set-default LIBGUESTFS_BACKEND direct"
    "--prefix PATH : ${lib.makeBinPath [ qemu ]}"
  ];

  # The test suite needs the appliance (and /dev/kvm or minutes of TCG); CI runs it outside Nix.
  doCheck = false;
  pythonImportsCheck = [
    "provision"
    "provision.layout"
  ];

  meta = {
    inherit (pyproject.project) description;
    license = lib.licenses.mit;
    mainProgram = "zvm-provision";
    platforms = lib.platforms.linux;
  };
}
