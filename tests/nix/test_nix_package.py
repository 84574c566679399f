"""nix/package.nix builds the Python package with exactly pyproject.toml's dependencies: nixpkgs' runtime
dependency check refuses a wheel whose requirements are missing (bcrypt was, once), even with doCheck off."""

from __future__ import annotations

import re
import tomllib

import pytest
from packaging.requirements import Requirement

from tests.nix.support import REPO, configured

pytestmark = pytest.mark.nix


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503, as nixpkgs names python3Packages


def test_the_package_depends_on_exactly_what_pyproject_requires() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    required = [normalised(Requirement(r).name) for r in pyproject["dependencies"]]
    assert "bcrypt" in required  # the one that was missing
    package = configured()["package"]
    # Plus the libguestfs binding, which is not on PyPI (nixpkgs builds it from pkgs.libguestfs).
    assert sorted(package["dependencies"]) == sorted(["guestfs", *required])
    assert (package["pname"], package["version"]) == (pyproject["name"], pyproject["version"])
    assert package["mainProgram"] in pyproject["scripts"]


def test_the_wrapper_brings_the_appliance_and_qemu() -> None:
    args = " ".join(configured()["package"]["makeWrapperArgs"])
    assert re.search(r"--set-default LIBGUESTFS_PATH /nix/store/\S+-libguestfs-appliance", args)
    assert "--set-default LIBGUESTFS_BACKEND direct" in args
    assert re.search(r"--prefix PATH : /nix/store/\S+-qemu-[^/ ]+/bin", args)
