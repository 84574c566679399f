"""nix/scripts and nix/justfile, run with fake nix and qemu on PATH: they never overwrite an image that may be
seeded, the reproducibility check fails when a rebuild differs, the VM's serial console reaches the terminal,
and a missing tool is named with what to install."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.nix.support import EXIT_MISSING, NIX_DIR, SCRIPTS, fake_tool, real_tools, run_script

COREUTILS = ("mktemp", "rm", "cp", "chmod", "du", "cut", "ls", "readlink", "sha256sum", "cat", "mkdir", "printf")

# A fake `nix`: says it has flakes, logs every call, and `nix build FLAKE#ATTR --out-link L` makes L a
# directory holding main.raw with $FAKE_IMAGE_CONTENT. $FAKE_REBUILD_FAIL names the attributes whose
# `--rebuild` fails as a non-deterministic build does (keeping the differing output in <path>.check).
FAKE_NIX = r"""
echo "$*" >> "$HOME/nix-calls"
args=("$@")
while [[ ${1:-} == --extra-experimental-features ]]; do shift 2; done
case ${1:-} in
--version) echo "nix (Nix) 2.31.0"; exit 0 ;;
flake) exit 0 ;;
build) ;;
*) exit 0 ;;
esac
shift
rebuild=0; link=; target=
while (($#)); do
  case $1 in
  --rebuild) rebuild=1 ;;
  --keep-failed) ;;
  --out-link) link=$2; shift ;;
  *) target=$1 ;;
  esac
  shift
done
attr=${target##*#}
store="$HOME/store/$attr"
if ((rebuild)); then
  for failing in ${FAKE_REBUILD_FAIL:-}; do
    if [[ $failing == "$attr" ]]; then
      mkdir -p "$store.check" && printf 'other' > "$store.check/main.raw"
      echo "error: derivation '$attr' may not be deterministic: output differs" >&2
      exit 1
    fi
  done
fi
mkdir -p "$store"
printf '%s' "${FAKE_IMAGE_CONTENT:-NEW IMAGE}" > "$store/main.raw"
ln -sfn "$store" "$link"
"""

FAKE_QEMU = 'printf "%s\\n" "$@" > "$HOME/qemu-args"'


def nix_calls(tmp_path: Path) -> list[str]:
    calls = tmp_path / "nix-calls"
    return calls.read_text().splitlines() if calls.exists() else []


def with_fake_nix(tmp_path: Path) -> None:
    fake_tool(tmp_path, "nix", FAKE_NIX)
    real_tools(tmp_path, *COREUTILS, "ln")


def with_fake_qemu(tmp_path: Path) -> dict[str, str]:
    """A fake QEMU and a firmware file; returns the environment start.sh needs."""
    fake_tool(tmp_path, "qemu-system-x86_64", FAKE_QEMU)
    real_tools(tmp_path, "cp", "chmod")
    firmware = tmp_path / "OVMF.fd"
    firmware.write_bytes(b"firmware")
    return {"OVMF_FD": str(firmware), "ZVM_ACCEL": "tcg"}


# --- build-image.sh and run.sh: a seeded image is never replaced --------------------------------------


def test_build_refuses_to_replace_an_existing_image_before_building(tmp_path: Path) -> None:
    with_fake_nix(tmp_path)
    (tmp_path / "main.raw").write_text("SEEDED")
    result = run_script("build-image.sh", tmp_path)
    assert result.returncode == 1
    assert "main.raw exists" in result.stderr and "--force" in result.stderr
    assert (tmp_path / "main.raw").read_text() == "SEEDED"
    assert not any(" build " in f" {c} " for c in nix_calls(tmp_path)), "it built anyway"


def test_build_with_force_replaces_the_image(tmp_path: Path) -> None:
    with_fake_nix(tmp_path)
    (tmp_path / "main.raw").write_text("SEEDED")
    result = run_script("build-image.sh", tmp_path, "--force")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "main.raw").read_text() == "NEW IMAGE"


def test_build_writes_a_new_image(tmp_path: Path) -> None:
    with_fake_nix(tmp_path)
    result = run_script("build-image.sh", tmp_path, "vm.raw")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "vm.raw").read_text() == "NEW IMAGE"
    assert any(re.search(r"build \S+#image --out-link", c) for c in nix_calls(tmp_path))


def test_run_boots_an_existing_image_without_rebuilding_it(tmp_path: Path) -> None:
    with_fake_nix(tmp_path)
    env = with_fake_qemu(tmp_path)
    (tmp_path / "main.raw").write_text("SEEDED")
    result = run_script("run.sh", tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "main.raw").read_text() == "SEEDED"
    assert not any(" build " in f" {c} " for c in nix_calls(tmp_path))
    assert "file=main.raw,format=raw,if=virtio" in (tmp_path / "qemu-args").read_text().splitlines()


def test_run_builds_a_missing_image_then_boots_it(tmp_path: Path) -> None:
    with_fake_nix(tmp_path)
    env = with_fake_qemu(tmp_path)
    result = run_script("run.sh", tmp_path, **env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "main.raw").read_text() == "NEW IMAGE"
    assert "not seeded yet" in result.stderr
    assert "file=main.raw,format=raw,if=virtio" in (tmp_path / "qemu-args").read_text().splitlines()


def justfile_recipes() -> dict[str, str]:
    """Recipe name -> body, from nix/justfile."""
    recipes: dict[str, str] = {}
    name = None
    for line in (NIX_DIR / "justfile").read_text().splitlines():
        header = re.match(r"^([a-z-]+)( [^:]*)?:(.*)$", line)
        if header and not line.startswith(" "):
            name = header.group(1)
            recipes[name] = header.group(3).strip()
        elif name and line.startswith("    "):
            recipes[name] += "\n" + line.strip()
    return recipes


def test_just_run_goes_through_run_sh_and_build_never_forces() -> None:
    recipes = justfile_recipes()
    assert recipes["run"].strip() == '"{{scripts}}/run.sh" "{{image}}"'  # no dependency on `build`
    assert "--force" not in recipes["build"]
    assert "--force" in recipes["rebuild"]


@pytest.mark.skipif(shutil.which("just") is None, reason="just is not installed: the justfile was not run")
def test_just_run_keeps_an_existing_image(tmp_path: Path) -> None:
    with_fake_nix(tmp_path)
    env = with_fake_qemu(tmp_path)
    real_tools(tmp_path, "bash", "just")
    (tmp_path / "main.raw").write_text("SEEDED")
    result = subprocess.run(
        ["just", "-f", str(NIX_DIR / "justfile"), "run"],
        cwd=tmp_path, env={"PATH": str(tmp_path / "bin"), "HOME": str(tmp_path), **env},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "main.raw").read_text() == "SEEDED"


# --- start.sh: the serial console on the terminal ----------------------------------------------------


def test_start_puts_the_vms_serial_console_on_the_terminal(tmp_path: Path) -> None:
    env = with_fake_qemu(tmp_path)
    (tmp_path / "main.raw").write_bytes(b"")
    result = run_script("start.sh", tmp_path, **env)
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "qemu-args").read_text().splitlines()
    # -nographic: no window, the first serial port (the image's console=ttyS0) and the monitor on stdio.
    assert "-nographic" in args
    assert not {"-serial", "-display"} & set(args), args  # nothing redirects it elsewhere
    assert "-bios" in args and str(tmp_path / "OVMF.fd") in args


def test_start_finds_split_ovmf_and_boots_the_image(tmp_path: Path) -> None:
    fake_tool(tmp_path, "qemu-system-x86_64", FAKE_QEMU)
    real_tools(tmp_path, "cp", "chmod")
    firmware = tmp_path / "fw"
    firmware.mkdir()
    (firmware / "OVMF_CODE_4M.fd").write_bytes(b"code")
    (firmware / "OVMF_VARS_4M.fd").write_bytes(b"vars")
    (tmp_path / "main.raw").write_bytes(b"")
    result = run_script("start.sh", tmp_path, OVMF_SEARCH_DIRS=f"{tmp_path}/none:{firmware}", ZVM_ACCEL="tcg")
    assert result.returncode == 0, result.stderr
    args = (tmp_path / "qemu-args").read_text().splitlines()
    assert f"if=pflash,format=raw,unit=0,readonly=on,file={firmware}/OVMF_CODE_4M.fd" in args
    assert "if=pflash,format=raw,unit=1,file=main.ovmf_vars.fd" in args
    assert "file=main.raw,format=raw,if=virtio" in args
    assert (tmp_path / "main.ovmf_vars.fd").read_bytes() == b"vars"


# --- verify-reproducible.sh: a check that can fail ----------------------------------------------------


def test_reproducible_when_both_rebuilds_match(tmp_path: Path) -> None:
    with_fake_nix(tmp_path)
    result = run_script("verify-reproducible.sh", tmp_path)
    assert result.returncode == 0, result.stderr
    assert "reproducible: yes" in result.stderr
    calls = nix_calls(tmp_path)
    assert any(re.search(r"build --rebuild \S+#toplevel", c) for c in calls), calls
    assert any(re.search(r"build --rebuild --keep-failed \S+#image", c) for c in calls), calls
    assert not any("path-info" in c for c in calls), "comparing input-addressed paths proves nothing"


def test_a_system_that_rebuilds_differently_fails_the_check(tmp_path: Path) -> None:
    with_fake_nix(tmp_path)
    result = run_script("verify-reproducible.sh", tmp_path, FAKE_REBUILD_FAIL="toplevel")
    assert result.returncode == 1
    assert "system: NOT reproducible" in result.stderr and "reproducible: NO" in result.stderr


def test_a_differing_image_is_reported_and_fails_only_when_strict(tmp_path: Path) -> None:
    with_fake_nix(tmp_path)
    relaxed = run_script("verify-reproducible.sh", tmp_path, FAKE_REBUILD_FAIL="image")
    assert relaxed.returncode == 0, relaxed.stderr
    assert "image: differs" in relaxed.stderr
    hashes = re.findall(r"image: sha256 (\S+)", relaxed.stderr)
    assert len(hashes) == 2 and hashes[0] != hashes[1]
    strict = run_script("verify-reproducible.sh", tmp_path, FAKE_REBUILD_FAIL="image", ZVM_STRICT_IMAGE="1")
    assert strict.returncode == 1 and "reproducible: NO" in strict.stderr


# --- missing tools ------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["build-image.sh", "verify-reproducible.sh"])
def test_nix_scripts_say_nix_is_missing(script: str, tmp_path: Path) -> None:
    result = run_script(script, tmp_path)
    assert result.returncode == EXIT_MISSING
    assert "nix is not installed" in result.stderr and "flakes" in result.stderr


def test_nix_scripts_say_when_nix_has_no_flakes(tmp_path: Path) -> None:
    fake_tool(tmp_path, "nix", "[ \"$1\" = --version ] && echo 'nix (Nix) 2.3.16' && exit 0\nexit 1")
    result = run_script("build-image.sh", tmp_path)
    assert result.returncode == EXIT_MISSING
    assert "no flake support" in result.stderr and "2.3.16" in result.stderr


def test_start_says_qemu_is_missing(tmp_path: Path) -> None:
    result = run_script("start.sh", tmp_path)
    assert result.returncode == EXIT_MISSING
    assert "qemu-system-x86_64 not found" in result.stderr


def test_start_says_ovmf_is_missing(tmp_path: Path) -> None:
    fake_tool(tmp_path, "qemu-system-x86_64", "exit 0")
    result = run_script("start.sh", tmp_path, OVMF_SEARCH_DIRS=str(tmp_path / "nowhere"))
    assert result.returncode == EXIT_MISSING
    assert "no OVMF" in result.stderr and "apt install ovmf" in result.stderr


def test_package_says_qemu_img_is_missing(tmp_path: Path) -> None:
    result = run_script("package.sh", tmp_path)
    assert result.returncode == EXIT_MISSING
    assert "qemu-img not found" in result.stderr


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img is not installed")
def test_package_makes_a_compressed_qcow2(tmp_path: Path) -> None:
    raw = tmp_path / "main.raw"
    with raw.open("wb") as f:
        f.truncate(64 * 1024 * 1024)
    result = subprocess.run(
        ["bash", str(SCRIPTS / "package.sh"), str(raw), str(tmp_path / "zvm.qcow2")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "zvm.qcow2").read_bytes()[:4] == b"QFI\xfb"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_scripts_are_shellcheck_clean() -> None:
    scripts = sorted(str(p) for p in SCRIPTS.glob("*.sh"))
    result = subprocess.run(["shellcheck", "-x", *scripts], cwd=SCRIPTS, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout


def test_scripts_are_strict_bash() -> None:
    for script in SCRIPTS.glob("*.sh"):
        text = script.read_text()
        if script.name == "lib.sh":
            assert text.startswith("# shellcheck shell=bash")
            continue
        assert text.startswith("#!/usr/bin/env bash\n"), script.name
        assert "\nset -euo pipefail\n" in text, script.name
        assert os.access(script, os.X_OK), f"{script.name} is not executable"
