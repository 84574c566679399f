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

  # "cryptography>=43,<51" -> "cryptography": the distribution name of a PEP 508 requirement, normalised
  # as PEP 503 does, which is also how nixpkgs names its python3Packages.
  distributionName =
    requirement:
    let
      m = builtins.match "[[:space:]]*([A-Za-z0-9][A-Za-z0-9._-]*).*" requirement;
    in
    if m == null then
      throw "package.nix: cannot read the requirement \"${requirement}\" in pyproject.toml"
    else
      lib.toLower (builtins.replaceStrings [ "_" "." ] [ "-" "-" ] (builtins.head m));
  fromNixpkgs =
    name:
    python3Packages.${name}
      or (throw "pyproject.toml requires ${name}, which python3Packages in this nixpkgs does not have");
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

  # Exactly pyproject.toml's dependencies (nixpkgs' runtime-dependency check refuses a wheel whose
  # requirements are missing, even with doCheck = false), plus the libguestfs binding, which is not on PyPI.
  dependencies = [
    python3Packages.guestfs
  ]
  ++ map (r: fromNixpkgs (distributionName r)) pyproject.project.dependencies;
  # pyproject.toml bounds are for pip users; take what the pinned nixpkgs has.
  pythonRelaxDeps = true;

  makeWrapperArgs = [
    "--set-default LIBGUESTFS_PATH ${libguestfs-appliance}"
    "--set-default LIBGUESTFS_BACKEND direct"
    "--prefix PATH : ${lib.makeBinPath [ qemu ]}"
  ];

  # The test suite needs the appliance (and /dev/kvm or minutes of TCG); CI runs it outside Nix.
  doCheck = false;
  # nixpkgs imports each of these after the build (tests/nix/test_nix_package.py imports them too): the
  # command's own module, and the contract reader, which finds the wheel's copy of persist-layout.json.
  pythonImportsCheck = [
    "provision"
    "provision.cli"
    "provision.core.layout"
  ];

  meta = {
    inherit (pyproject.project) description;
    license = lib.licenses.mit;
    mainProgram = "zvm-provision";
    platforms = lib.platforms.linux;
  };
}
