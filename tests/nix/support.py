"""Shared helpers of the tests/nix/test_nix*.py files (no tests here).

The flake is evaluated offline by nix/tests/eval.nix: flake.nix's outputs with the real nixpkgs lib, the real
impermanence flake and stand-in declarations of the nixpkgs options the modules use. Those two inputs come
from a folder of offline copies: $ZVM_NIX_INPUTS, else .nix-inputs/ (what scripts/nix-inputs.sh fetched, the
lock's narHash checked), else ../shared/nix-inputs next to the repository, else /work/shared/nix-inputs. Where neither nix-instantiate nor the copies are found, the tests that need them
skip and say why; they never pass without evaluating.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from provision.core.layout import Layout

REPO = Path(__file__).resolve().parents[2]
NIX_DIR = REPO / "nix"
SCRIPTS = NIX_DIR / "scripts"
NIX_INSTANTIATE = shutil.which("nix-instantiate")
NIX = shutil.which("nix")


def guest_path(layout: Layout, path: str) -> str:
    """Where a persist path appears inside the running VM (/persist/...): the contract the modules must keep."""
    return layout.mount_point if path == "/" else layout.mount_point + path


# A flake reference of the form README.md asks for; example.test never resolves.
TEST_FLAKE_URL = "git+https://example.test/you/zvm-provision?dir=nix#zvm"


def nix_inputs_candidates() -> list[Path]:
    candidates = []
    if os.environ.get("ZVM_NIX_INPUTS"):
        candidates.append(Path(os.environ["ZVM_NIX_INPUTS"]))
    candidates += [REPO / ".nix-inputs", REPO.parent / "shared" / "nix-inputs", Path("/work/shared/nix-inputs")]
    return candidates


@cache
def nix_inputs() -> Path | None:
    """The folder holding nixpkgs-lib/ and impermanence/, or None."""
    for candidate in nix_inputs_candidates():
        if (candidate / "nixpkgs-lib" / "lib" / "default.nix").is_file() and (
            candidate / "impermanence" / "nixos.nix"
        ).is_file():
            return candidate.resolve()
    return None


def require_nix() -> str:
    if NIX_INSTANTIATE is None:
        pytest.skip("nix-instantiate is not installed (Debian: apt install nix-bin); nothing Nix was evaluated")
    return NIX_INSTANTIATE


def require_inputs() -> Path:
    require_nix()
    inputs = nix_inputs()
    if inputs is None:
        tried = ", ".join(str(c) for c in nix_inputs_candidates())
        pytest.skip(
            "the offline copies of the flake's inputs (nixpkgs-lib/, impermanence/) were not found "
            f"(tried {tried}; set ZVM_NIX_INPUTS, or run scripts/nix-inputs.sh where GitHub is reachable): "
            "the modules were NOT evaluated"
        )
    return inputs


def run_nix(expr: str, *, timeout: int = 120) -> subprocess.CompletedProcess[str]:
    """nix-instantiate --eval --strict --json on EXPR, relative paths resolving from the repository root."""
    return subprocess.run(
        [require_nix(), "--eval", "--strict", "--json", "-E", expr],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        # No channels: nothing may reach for <nixpkgs>.
        env={**os.environ, "NIX_PATH": ""},
    )


def nix_eval(expr: str) -> object:
    result = run_nix(expr)
    assert result.returncode == 0, f"nix-instantiate failed for {expr!r}:\n{result.stderr}"
    return json.loads(result.stdout)


def nix_string(value: object) -> str:
    """A Python value as a Nix expression (JSON is valid Nix for strings, numbers, lists, null, bools)."""
    return f"(builtins.fromJSON {json.dumps(json.dumps(value))})"


@cache
def _evaluated(settings_json: str) -> dict:
    inputs = require_inputs()
    expr = f"import ./nix/tests/eval.nix {{ inputs = /. + {json.dumps(str(inputs))}; settings = {nix_string(json.loads(settings_json))}; }}"
    return nix_eval(expr)  # type: ignore[return-value]


def evaluated(**settings: object) -> dict:
    """The zvm system (with SETTINGS as an extra module, e.g. {"zvm": {...}}) evaluated offline; cached."""
    return _evaluated(json.dumps(settings, sort_keys=True))


def configured() -> dict:
    """The zvm system as a publisher would ship it: zvm.updates.flakeUrl set to their flake."""
    return evaluated(zvm={"updates": {"flakeUrl": TEST_FLAKE_URL}})


def failed_assertions(report: dict) -> list[str]:
    return [a["message"] for a in report["assertions"] if not a["assertion"]]


# --- scripts run with fake tools ---------------------------------------------------------------------

BASH = shutil.which("bash") or "/bin/bash"
EXIT_MISSING = 3


def fake_tool(tmp_path: Path, name: str, body: str) -> Path:
    """Puts a shell script called NAME on the scripts' PATH (tmp_path/bin)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / name
    tool.write_text(f"#!{BASH}\n{body}\n")
    tool.chmod(0o755)
    return tool


def real_tools(tmp_path: Path, *names: str) -> None:
    """Links real host tools into tmp_path/bin, for scripts that need them besides the fakes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in names:
        found = shutil.which(name)
        assert found, f"{name} is not installed"
        if not (bin_dir / name).exists():
            (bin_dir / name).symlink_to(found)


def run_script(
    name: str, tmp_path: Path, *args: str, cwd: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Runs nix/scripts/NAME with a PATH holding only tmp_path/bin (the fakes and linked tools)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    return subprocess.run(
        [BASH, str(SCRIPTS / name), *args],
        cwd=cwd or tmp_path,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
