"""The hourly update, run: the script nixpkgs' real auto-upgrade.nix (vendored) generates for nixos-upgrade.service,
and the ExecStartPre modules/updates.nix adds, executed with bash as systemd would (ExecStartPre, then ExecStart,
each `bash -e`), with a recording stand-in nixos-rebuild. The exact argv it gets is the check.

Signed updates use real git and ssh-keygen: repositories with signed, unsigned, wrongly signed and re-tagged
releases, and a release-signers file in git's allowed_signers format, as the seeder writes it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from provision.core.layout import load_layout
from tests.nix.support import BASH, NIX_DIR, evaluated, failed_assertions, fake_tool, guest_path, real_tools

pytestmark = pytest.mark.nix

SIGNERS = guest_path(load_layout(), load_layout().role("update-signers").path)


def unit_for(url: str) -> tuple[dict, dict]:
    report = evaluated(zvm={"updates": {"flakeUrl": url}})
    assert failed_assertions(report) == []
    return report["systemd"]["services"]["nixos-upgrade"], report["updates"]["sourceTool"]


def run_update(tmp_path: Path, url: str, *, signers: str | None = None) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """The unit's ExecStartPre and ExecStart scripts, run in turn as systemd runs them (stopping at the first
    failure), with the contract's signers path moved to tmp_path/signers (holding SIGNERS, absent if None).
    Returns the last step's result (with both steps' stderr) and every argv the stand-in nixos-rebuild got."""
    unit, tool = unit_for(url)
    tool_copy = tmp_path / "store" / Path(tool["path"]).name
    tool_copy.parent.mkdir(parents=True, exist_ok=True)
    tool_copy.write_text(f"#!{BASH}\n{tool['text']}")
    tool_copy.chmod(0o755)
    signers_file = tmp_path / "signers"
    if signers is not None:
        signers_file.write_text(signers)
    pre = unit["preStart"].replace(tool["path"], str(tool_copy)).replace(SIGNERS, str(signers_file))
    (rebuild,) = set(re.findall(r"(\S+/bin/nixos-rebuild)", unit["script"]))
    calls = tmp_path / "calls"
    # One line per call, each argument followed by a NUL.
    fake_tool(tmp_path, "nixos-rebuild", f"{{ printf '%s\\0' \"$@\"; echo; }} >> {calls}")
    real_tools(tmp_path, "cat", "mv", "git", "ssh-keygen")
    main = unit["script"].replace(rebuild, str(tmp_path / "bin" / "nixos-rebuild"))
    runtime = tmp_path / "run"
    runtime.mkdir()
    env = {
        "PATH": str(tmp_path / "bin"),
        "HOME": str(tmp_path),
        "RUNTIME_DIRECTORY": str(runtime),
        "GIT_CONFIG_NOSYSTEM": "1",
        **unit["environment"],
    }
    env["ZVM_UPDATE_CACHE"] = str(tmp_path / "cache")
    stderr = ""
    for step in (pre, main):
        result = subprocess.run([BASH, "-e", "-c", step], env=env, capture_output=True, text=True, timeout=120)
        stderr += result.stderr
        if result.returncode != 0:
            break
    result.stderr = stderr  # the journal: both steps'
    argv = [line.split("\0")[:-1] for line in calls.read_text().splitlines()] if calls.exists() else []
    return result, argv


@pytest.mark.parametrize(
    "url",
    [
        "git+https://git.example.test/you/zvm-provision?dir=nix&ref=release#zvm",
        "git+https://git.example.test/you/zvm-provision?ref=refs/tags/v1&dir=nix&submodules=1#zvm",
        "github:you/zvm-provision/release?dir=nix#zvm",
        "git+ssh://git@git.example.test/you/zvm-provision?dir=nix%20x&ref=a;b#zvm",
    ],
    ids=["ampersand", "two-ampersands", "question-mark", "semicolon"],
)
def test_the_unit_passes_any_url_to_nixos_rebuild_exactly(tmp_path: Path, url: str) -> None:
    result, argv = run_update(tmp_path, url)
    assert result.returncode == 0, result.stderr
    assert argv == [["switch", "--refresh", "--flake", url, "--upgrade"]]
    assert "updates are not verified" in result.stderr


@pytest.mark.parametrize("url", ["git+https://example.test/a b?dir=nix#zvm", "git+https://example.test/a?dir=nix#zvm\n"])
def test_a_url_with_a_space_is_refused_with_a_clear_message(url: str) -> None:
    report = evaluated(zvm={"updates": {"flakeUrl": url}})
    assert any("holds a space or a control character" in m for m in failed_assertions(report))


# --- signed releases, with real git and ssh-keygen ----------------------------------------------------------


def git(repo: Path, *args: str, key: Path | None = None) -> str:
    config = ["-c", "user.name=Release", "-c", "user.email=release@example.test", "-c", "gpg.format=ssh",
              "-c", "commit.gpgsign=false", "-c", "tag.gpgsign=false"]
    if key is not None:
        config += ["-c", f"user.signingkey={key}"]
    env = {"PATH": "/usr/bin:/bin", "HOME": str(repo.parent), "GIT_CONFIG_NOSYSTEM": "1"}
    result = subprocess.run(["git", *config, *args], cwd=repo, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture
def releases(tmp_path: Path) -> dict:
    """A repository with: v0 and v1, signed tags by the release key; unsigned, an annotated tag nobody signed;
    lightweight, a tag without signature; wrong, signed by another key; retagged, the ref `retagged` pointing at
    v0's signed tag object; branches signed (tip signed by the release key) and unsigned."""
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("release", "intruder"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(keys / name)], check=True)
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    release, intruder = keys / "release", keys / "intruder"

    def commit(message: str, key: Path | None = None) -> str:
        git(repo, "commit", "-q", "--allow-empty", "-m", message, *(["-S"] if key else []), key=key)
        return git(repo, "rev-parse", "HEAD")

    shas = {"v0": commit("v0", release)}
    git(repo, "tag", "-s", "-m", "v0", "v0", key=release)
    shas["v1"] = commit("v1", release)
    git(repo, "tag", "-s", "-m", "v1", "v1", key=release)
    shas["unsigned"] = commit("unsigned")
    git(repo, "tag", "-a", "-m", "unsigned", "unsigned")
    shas["lightweight"] = commit("lightweight")
    git(repo, "tag", "lightweight")
    shas["wrong"] = commit("wrong", intruder)
    git(repo, "tag", "-s", "-m", "wrong", "wrong", key=intruder)
    git(repo, "update-ref", "refs/tags/retagged", git(repo, "rev-parse", "refs/tags/v0"))
    git(repo, "branch", "signed", shas["v1"])
    git(repo, "branch", "unsigned-branch", shas["lightweight"])
    git(repo, "branch", "intruder-branch", shas["wrong"])
    signers = f"release@example.test {(keys / 'release.pub').read_text().strip()}\n"
    return {"repo": repo, "shas": shas, "signers": signers}


def url_for(repo: Path, query: str) -> str:
    return f"git+file://{repo}?{query}#zvm"


@pytest.mark.parametrize("ref", ["v1", "refs/tags/v1", "refs%2Ftags%2Fv1"])
def test_a_signed_release_tag_is_switched_to_by_its_verified_revision(tmp_path: Path, releases: dict, ref: str) -> None:
    repo = releases["repo"]
    result, argv = run_update(tmp_path, url_for(repo, f"dir=nix&ref={ref}"), signers=releases["signers"])
    assert result.returncode == 0, result.stderr
    assert argv == [["switch", "--refresh", "--flake", url_for(repo, f"dir=nix&rev={releases['shas']['v1']}"), "--upgrade"]]


def test_a_branch_with_a_signed_tip_is_switched_to_by_its_verified_revision(tmp_path: Path, releases: dict) -> None:
    repo = releases["repo"]
    result, argv = run_update(tmp_path, url_for(repo, "ref=signed&dir=nix"), signers=releases["signers"])
    assert result.returncode == 0, result.stderr
    assert argv == [["switch", "--refresh", "--flake", url_for(repo, f"dir=nix&rev={releases['shas']['v1']}"), "--upgrade"]]


@pytest.mark.parametrize(
    ("ref", "reason"),
    [
        ("unsigned", "is not signed by a key in"),
        ("lightweight", "is not signed by a key in"),
        ("wrong", "is not signed by a key in"),
        ("retagged", 'the tag object of the release "v0"'),
        ("unsigned-branch", "is not signed by a key in"),
        ("intruder-branch", "is not signed by a key in"),
        ("main", "is not signed by a key in"),
        ("no-such-ref", "could not fetch"),
    ],
)
def test_anything_but_a_signed_release_is_refused_and_nothing_switches(
    tmp_path: Path, releases: dict, ref: str, reason: str
) -> None:
    result, argv = run_update(tmp_path, url_for(releases["repo"], f"dir=nix&ref={ref}"), signers=releases["signers"])
    assert result.returncode != 0
    assert argv == []
    assert reason in result.stderr and "not updating" in result.stderr


def test_the_default_branch_is_followed_without_a_ref(tmp_path: Path, releases: dict) -> None:
    """No ref=: the repository's HEAD (main, whose tip is the intruder's commit here) is what is verified."""
    result, argv = run_update(tmp_path, url_for(releases["repo"], "dir=nix"), signers=releases["signers"])
    assert result.returncode != 0 and argv == []
    assert "HEAD's commit" in result.stderr


@pytest.mark.parametrize("signers", ["", "\n"], ids=["empty", "blank"])
def test_a_signers_file_that_names_nobody_refuses_every_update(tmp_path: Path, releases: dict, signers: str) -> None:
    result, argv = run_update(tmp_path, url_for(releases["repo"], "ref=v1"), signers=signers)
    assert result.returncode != 0 and argv == []


def test_signed_updates_refuse_a_url_they_cannot_fetch_with_git(tmp_path: Path, releases: dict) -> None:
    result, argv = run_update(tmp_path, "github:you/zvm-provision/v1?dir=nix#zvm", signers=releases["signers"])
    assert result.returncode != 0 and argv == []
    assert "need a git+https:// or git+ssh:// flake URL" in result.stderr


def test_the_update_source_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    script = NIX_DIR / "modules" / "update-source.sh"
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout
