"""nix/flake.lock: every input of flake.nix is locked (so builds and autoUpgrade never write a lock), at the
revisions published for them, and impermanence's narHash is the hash of the offline copy the tests evaluate."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest

from tests.nix.support import NIX, NIX_DIR, nix_eval, nix_inputs, require_nix

pytestmark = pytest.mark.nix

LOCK = json.loads((NIX_DIR / "flake.lock").read_text())


def flake_inputs() -> dict:
    return nix_eval("(import ./nix/flake.nix).inputs")  # type: ignore[return-value]


def published(name: str) -> dict[str, str]:
    """The rev, lastModified and narHash the offline inputs' README.md gives for NAME."""
    inputs = nix_inputs()
    if inputs is None:
        pytest.skip("the offline inputs folder (and its README.md with the published revisions) is missing")
    for line in (inputs / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells and cells[0] == name:
            rev, modified, nar = (c for c in cells if re.fullmatch(r"[0-9a-f]{40}|\d{10}|sha256-.+=", c))
            return {"rev": rev, "lastModified": modified, "narHash": nar}
    raise AssertionError(f"{name} is not in {inputs / 'README.md'}")


def test_the_lock_is_version_7_and_every_flake_input_is_locked() -> None:
    require_nix()
    assert LOCK["version"] == 7 and LOCK["root"] == "root"
    nodes = LOCK["nodes"]
    declared = flake_inputs()
    assert set(nodes["root"]["inputs"]) == set(declared)
    for name, spec in declared.items():
        node = nodes[nodes["root"]["inputs"][name]]
        locked = node["locked"]
        assert locked["type"] == "github" and re.fullmatch(r"[0-9a-f]{40}", locked["rev"]), name
        assert locked["narHash"].startswith("sha256-") and isinstance(locked["lastModified"], int)
        # The lock's "original" is what flake.nix asks for, or Nix would re-lock (and autoUpgrade would fail).
        original = node["original"]
        url = f"github:{original['owner']}/{original['repo']}" + (f"/{original['ref']}" if "ref" in original else "")
        assert url == spec["url"], name
        assert (original["owner"], original["repo"]) == (locked["owner"], locked["repo"])
        # Inputs that follow another input or nothing are recorded as paths, not fetched; this flake lets
        # its inputs fetch nothing of their own, so each of their inputs must be such an override.
        assert set(node.get("inputs", {})) == set(spec.get("inputs", {})), name
        for sub, follows in spec.get("inputs", {}).items():
            expected = [] if follows["follows"] == "" else follows["follows"].split("/")
            assert node["inputs"][sub] == expected, f"{name}.inputs.{sub}"
    assert set(nodes) == {"root", *declared}, "the lock fetches something flake.nix does not ask for"


def test_nixpkgs_is_the_published_nixos_25_11_revision() -> None:
    nixpkgs = LOCK["nodes"]["nixpkgs"]
    assert nixpkgs["original"] == {"owner": "NixOS", "repo": "nixpkgs", "ref": "nixos-25.11", "type": "github"}
    expected = published("github:NixOS/nixpkgs/nixos-25.11")
    locked = nixpkgs["locked"]
    assert (locked["rev"], str(locked["lastModified"]), locked["narHash"]) == (
        expected["rev"], expected["lastModified"], expected["narHash"],
    )


def test_impermanence_is_locked_to_the_offline_copy_by_its_hash() -> None:
    inputs = nix_inputs()
    if inputs is None:
        pytest.skip("the offline copy of impermanence is missing: its hash cannot be compared with the lock")
    if NIX is None:
        pytest.skip("nix (Debian: nix-bin) is not installed: cannot hash the offline copy")
    result = subprocess.run(
        [NIX, "--extra-experimental-features", "nix-command", "hash", "path", str(inputs / "impermanence")],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NIX_PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    locked = LOCK["nodes"]["impermanence"]["locked"]
    assert locked["narHash"] == result.stdout.strip()
    expected = published("impermanence")
    assert (locked["rev"], str(locked["lastModified"])) == (expected["rev"], expected["lastModified"])


def test_no_home_manager_is_fetched() -> None:
    assert "home-manager" not in LOCK["nodes"]
    assert LOCK["nodes"]["impermanence"]["inputs"]["home-manager"] == []


def test_nix_itself_reads_the_lock_as_up_to_date() -> None:
    """Nix would re-lock (and fail offline, as autoUpgrade would fail to write) if the lock did not match."""
    if NIX is None:
        pytest.skip("nix (Debian: nix-bin) is not installed")
    if not (NIX_DIR.parent / ".git").exists():
        pytest.skip("not a git checkout: Nix reads the flake from git")
    result = subprocess.run(
        [NIX, "--extra-experimental-features", "nix-command flakes", "flake", "metadata", "--json",
         "--offline", "--no-update-lock-file", str(NIX_DIR)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "NIX_PATH": ""},
    )
    assert result.returncode == 0, result.stderr
    locks = json.loads(result.stdout)["locks"]
    assert locks["nodes"]["nixpkgs"]["locked"]["rev"] == LOCK["nodes"]["nixpkgs"]["locked"]["rev"]
