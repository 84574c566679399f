"""nixosModules as another flake uses them (nix/tests/eval-modules.nix): nixosModules.default alone, with only
the host's own name, gives zvm's behaviour; each module alone evaluates on a plain system, changes nothing
of security or services until its `enable` is set, and then does; every option is described; nix/OPTIONS.md
is what the declarations generate today."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.nix.support import NIX_DIR, nix_eval, require_inputs

pytestmark = pytest.mark.nix

# What each switch turns on, in the report's terms (security or services).
SWITCHED = {
    "hardening": {"sudo": False, "sshd": True, "passwordAuthentication": False},
    "user": {"zvmUser": True, "mutableUsers": False},
    "netbird": {"netbird": True},
    "storage": {"gc": True},
    "hostname": {"hostnameSnippet": True},
}


@cache
def modules() -> dict:
    inputs = require_inputs()
    return nix_eval(f"import ./nix/tests/eval-modules.nix {{ inputs = /. + {json.dumps(str(inputs))}; }}")  # type: ignore[return-value]


def test_the_default_module_alone_is_zvm() -> None:
    report = modules()["default"]
    assert report["failedAssertions"] == [] and report["toplevel"] is True
    assert report["persistence"] is True  # it brought impermanence itself
    for expected in SWITCHED.values():
        assert {k: report[k] for k in expected} == expected


def test_every_module_evaluates_alone_and_changes_nothing_until_enabled() -> None:
    m = modules()
    assert set(m["names"]) == {p.stem for p in (NIX_DIR / "modules").glob("*.nix")}
    assert set(m["switchable"]) == set(SWITCHED)
    untouched = m["off"]["console"]  # a module with nothing to switch: the plain system's values
    for name, report in m["off"].items():
        assert report["failedAssertions"] == [] and report["toplevel"] is True, name
        if name in SWITCHED:
            assert {k: report[k] for k in SWITCHED[name]} == {k: untouched[k] for k in SWITCHED[name]}, name
    for name, report in m["on"].items():
        assert report["failedAssertions"] == [] and report["toplevel"] is True, name
        assert {k: report[k] for k in SWITCHED[name]} == SWITCHED[name], name


def test_every_option_has_a_description() -> None:
    options = modules()["options"]
    assert {o["name"] for o in options} >= {f"zvm.{n}.enable" for n in SWITCHED} | {"zvm.updates.flakeUrl"}
    assert [o["name"] for o in options if not (o["description"] or "").strip()] == []


def test_the_options_reference_is_current() -> None:
    written = (NIX_DIR / "OPTIONS.md").read_text()
    assert written == modules()["optionsDoc"], "nix/OPTIONS.md is stale: run nix/tests/options-doc.sh"


def test_the_options_reference_script_writes_it(tmp_path: Path) -> None:
    """The script the reference names, run on a copy of nix/ (and pyproject.toml, which the flake reads):
    it writes the same file."""
    inputs = require_inputs()
    shutil.copytree(NIX_DIR, tmp_path / "nix")
    shutil.copy(NIX_DIR.parent / "pyproject.toml", tmp_path)
    (tmp_path / "nix" / "OPTIONS.md").unlink()
    result = subprocess.run(["bash", str(tmp_path / "nix" / "tests" / "options-doc.sh")], capture_output=True,
                            text=True, timeout=120, env={"PATH": os.environ["PATH"], "ZVM_NIX_INPUTS": str(inputs)})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "nix" / "OPTIONS.md").read_text() == (NIX_DIR / "OPTIONS.md").read_text()
