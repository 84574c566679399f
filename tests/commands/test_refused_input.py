"""Input refused before any appliance: `--hostname localhost` and manifests as spreadsheets export them
(`;` or tab delimiters, empty trailing columns, UTF-16, non-ASCII or leading-`-` names), through the real
command in a process of its own.

The images are made by qemu-img (no appliance): every refusal is checked to leave the image byte-identical
and the output folder uncreated.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.commands.test_forge_keys import image, sha256  # noqa: F401 (image: a fixture)
from tests.commands.test_seed import zvm
from tests.support.keyfactory import public_line

LOCALHOSTS = ["localhost", "LOCALHOST", "LocalHost", "localhost.", "localhost.localdomain",
              "LOCALHOST.LOCALDOMAIN", "localhost6", "localhost6.localdomain6", "db.localhost"]


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "alice.pub"
    path.write_text(public_line(comment="alice") + "\n")
    return path


def batch_refused(image: Path, manifest: Path) -> subprocess.CompletedProcess[str]:
    """batch on `manifest`: the image untouched, no output folder, no traceback."""
    before = sha256(image)
    out = manifest.parent / "out"
    result = zvm("batch", str(manifest), "--base", str(image), "--out-dir", str(out))
    assert sha256(image) == before and not out.exists()
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return result


# ------------------------------------------------------------------------------------------------
# localhost is no hostname


@pytest.mark.parametrize("name", LOCALHOSTS)
def test_seed_refuses_localhost_as_a_hostname_with_the_rule(image, key, name):
    before = sha256(image)
    result = zvm("seed", str(image), "--no-password", "--ssh-key", str(key), "--hostname", name, "--yes")
    assert result.returncode == 2, result.stderr
    assert f"--hostname {name!r} is refused: localhost" in result.stderr
    assert "hostname_is_useful" in result.stderr and "Netbird" in result.stderr
    assert sha256(image) == before


def test_a_manifest_hostname_of_localhost_is_refused_naming_its_line(image, key, tmp_path):
    manifest = tmp_path / "staff.csv"
    manifest.write_text(f"name,ssh_keys,hostname\nalice,{key.name},zvm-alice\nbob,{key.name},localhost6\n")
    result = batch_refused(image, manifest)
    assert result.returncode == 2, result.stderr
    assert "line 3: hostname: the hostname 'localhost6' is refused: localhost" in result.stderr
    assert "line 2" not in result.stderr
