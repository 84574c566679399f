"""nix/package.nix, checked by running what nixpkgs would run when it builds the package, here:

- `pythonImportsCheck`: nixpkgs' build imports each module named there and fails the build if one is missing
  (a moved module, provision.layout, once made `nix build .#zvm-provision` fail). Each is imported here, in
  a fresh interpreter, from this checkout.
- the runtime-dependency check: the wheel's requirements must be in the package's dependencies. Rather than
  compare pyproject.toml with a list made from it, the third-party modules the code really imports are
  mapped to the distributions that provide them in this venv, and each must be a dependency of the package.
- the wrapper: every program the code runs (found in its source, not listed here) must be in a bin/ the
  wrapper puts on PATH, going by what the stand-in packages install (as nixpkgs' do).
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib

import pytest

from tests.nix.support import REPO, configured

pytestmark = pytest.mark.nix

PROVISION = REPO / "provision"


def normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()  # PEP 503, as nixpkgs names python3Packages


def package() -> dict:
    return configured()["package"]


def import_fails(module: str) -> str | None:
    """The error importing MODULE from this checkout in a fresh interpreter, or None."""
    code = f"import sys; sys.path.insert(0, {str(REPO)!r}); import importlib; importlib.import_module({module!r})"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    return None if result.returncode == 0 else (result.stderr.strip().splitlines() or ["?"])[-1]


def test_every_module_of_the_import_check_imports() -> None:
    modules = package()["pythonImportsCheck"]
    assert modules, "pythonImportsCheck is empty: the build would not catch a broken package"
    failures = {m: err for m in modules if (err := import_fails(m)) is not None}
    assert failures == {}, f"nixpkgs' pythonImportsCheck would fail the build: {failures}"


def test_the_import_check_covers_the_entry_point() -> None:
    """The command's own module is in the check, so a build whose `zvm-provision` cannot start fails."""
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    entry_module = scripts[package()["mainProgram"]].split(":")[0]
    assert entry_module in package()["pythonImportsCheck"]


def test_a_moved_module_is_caught() -> None:
    """The check itself can fail: the module the blocker named does not import."""
    assert import_fails("provision.layout") is not None


def third_party_imports() -> set[str]:
    """Top-level modules the code imports that are neither the standard library nor provision itself."""
    found: set[str] = set()
    for path in PROVISION.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m != "provision" and m != "__future__"}


def test_every_third_party_module_the_code_imports_is_a_dependency() -> None:
    provided_by = importlib.metadata.packages_distributions()
    dependencies = set(package()["dependencies"])
    missing = {}
    for module in sorted(third_party_imports()):
        # guestfs is Debian's python3-guestfs here (no distribution metadata); nixpkgs calls it guestfs.
        names = {normalised(d) for d in provided_by.get(module, [module])}
        if not names & dependencies:
            missing[module] = sorted(names)
    assert missing == {}, f"modules the code imports whose distribution the package does not depend on: {missing}"
    assert {"guestfs", "cryptography", "typer"} <= third_party_imports()  # the scan sees the real imports


def test_bcrypt_is_a_dependency_though_no_module_imports_it() -> None:
    """cryptography needs bcrypt to encrypt a generated key pair with a passphrase (imported inside
    cryptography, so the scan above cannot see it): without it the runtime-dependency check fails."""
    assert "bcrypt" in package()["dependencies"]
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert (package()["pname"], package()["version"]) == (pyproject["name"], pyproject["version"])


def programs_the_code_runs() -> set[str]:
    """The first word of every subprocess command written as a list literal in provision/, and every program
    name a module holds in a constant (guest/qemuimg.py's QEMU_IMG starts each of its commands)."""
    programs: set[str] = set()
    for path in PROVISION.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.List) and node.elts and isinstance(node.elts[0], ast.Constant):
                first = node.elts[0].value
            elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                first = node.value.value
            else:
                continue
            if isinstance(first, str) and re.fullmatch(r"qemu-[a-z0-9_-]+|guestfish|virt-[a-z-]+|ssh[a-z-]*", first):
                programs.add(first)
    return programs


def wrapper_path() -> list[str]:
    args = package()["makeWrapperArgs"]
    return [
        entry
        for arg in args
        if (m := re.fullmatch(r"--prefix PATH : (\S+)", arg))
        for entry in m.group(1).split(":")
    ]


def test_the_wrapper_path_holds_every_program_the_code_runs() -> None:
    programs = programs_the_code_runs()
    assert "qemu-img" in programs  # the scan sees the conversions and overlays
    on_path = {b for entry in wrapper_path() for b in configured()["package"]["binaries"].get(entry, [])}
    assert programs - on_path == set(), f"run by the code but not on the wrapper's PATH: {programs - on_path}"


def test_the_wrapper_brings_the_appliance() -> None:
    args = package()["makeWrapperArgs"]
    assert any(re.fullmatch(r"--set-default LIBGUESTFS_PATH /nix/store/\S+-libguestfs-appliance-\S+", a) for a in args)
    assert "--set-default LIBGUESTFS_BACKEND direct" in args
