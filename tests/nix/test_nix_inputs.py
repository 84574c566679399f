"""scripts/nix-inputs.sh fetches exactly the inputs a flake.lock pins, each checked against its narHash by Nix.

Run here against file:// tarballs made from the offline copies (this machine reaches no Git host): the
impermanence tarball must match the real nix/flake.lock's narHash (the offline copy is the upstream tree), and a
tarball whose tree differs from its narHash must be refused with nothing left in the cache.
"""

from __future__ import annotations

import base64
import json
import subprocess
import tarfile
import uuid
from pathlib import Path

from tests.nix.support import NIX_DIR, REPO, require_inputs

SCRIPT = REPO / "scripts" / "nix-inputs.sh"


def _nar_hash(tree: Path) -> str:
    hex_digest = subprocess.run(["nix-hash", "--type", "sha256", str(tree)], capture_output=True, text=True,
                                check=True).stdout.strip()
    return "sha256-" + base64.b64encode(bytes.fromhex(hex_digest)).decode()


def _tarball(tree: Path, top: str, out: Path) -> Path:
    with tarfile.open(out, "w:gz") as tar:
        tar.add(tree, arcname=top)
    return out


def _serve(base: Path, owner: str, repo: str, rev: str, tree: Path) -> None:
    folder = base / owner / repo / "archive"
    folder.mkdir(parents=True, exist_ok=True)
    _tarball(tree, f"{repo}-{rev}", folder / f"{rev}.tar.gz")


def _lock_with(tmp_path: Path, nixpkgs_tree: Path, nixpkgs_hash: str) -> tuple[Path, Path, str]:
    """The real lock's impermanence entry, and a nixpkgs entry of a small tree holding lib/; served from file://."""
    inputs = require_inputs()
    lock = json.loads((NIX_DIR / "flake.lock").read_text())
    base = tmp_path / "forge"
    imp = lock["nodes"]["impermanence"]["locked"]
    _serve(base, imp["owner"], imp["repo"], imp["rev"], inputs / "impermanence")
    rev = uuid.uuid4().hex
    lock["nodes"]["nixpkgs"]["locked"].update(rev=rev, narHash=nixpkgs_hash)
    _serve(base, "NixOS", "nixpkgs", rev, nixpkgs_tree)
    path = tmp_path / "flake.lock"
    path.write_text(json.dumps(lock))
    return path, base, rev


def _nixpkgs_tree(tmp_path: Path) -> Path:
    tree = tmp_path / "nixpkgs"
    tree.mkdir()
    subprocess.run(["cp", "-R", str(require_inputs() / "nixpkgs-lib" / "lib"), str(tree / "lib")], check=True)
    (tree / "COPYING").write_text("MIT\n")
    (tree / "unique").write_text(uuid.uuid4().hex)  # a tree no earlier run put in the store
    return tree


def _run(lock: Path, base: Path, dest: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), str(dest)], capture_output=True, text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "ZVM_NIX_LOCK": str(lock),
                               "ZVM_NIX_INPUTS_URL": f"file://{base}"})


def test_the_locked_inputs_land_in_the_cache_the_tests_use(tmp_path):
    tree = _nixpkgs_tree(tmp_path)
    lock, base, _ = _lock_with(tmp_path, tree, _nar_hash(tree))
    dest = tmp_path / "cache" / "nix-inputs"
    done = _run(lock, base, dest)
    assert done.returncode == 0, done.stderr
    assert (dest / "impermanence" / "nixos.nix").read_bytes() == (require_inputs() / "impermanence" / "nixos.nix").read_bytes()
    assert (dest / "nixpkgs-lib" / "lib" / "default.nix").is_file()
    assert _nar_hash(dest / "impermanence") == json.loads((NIX_DIR / "flake.lock").read_text())["nodes"][
        "impermanence"]["locked"]["narHash"]


def test_a_tree_that_is_not_the_locked_one_is_refused(tmp_path):
    tree = _nixpkgs_tree(tmp_path)
    claimed = _nar_hash(tree)
    (tree / "lib" / "tampered.nix").write_text("{ }\n")  # the served tree is not the one the lock names
    lock, base, _ = _lock_with(tmp_path, tree, claimed)
    dest = tmp_path / "cache" / "nix-inputs"
    done = _run(lock, base, dest)
    assert done.returncode != 0
    assert "hash mismatch" in done.stderr
    assert not (tmp_path / "cache").exists()
