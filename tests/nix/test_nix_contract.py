"""The persist contract, read by both halves: nix/contract.nix (evaluated with nix-instantiate, pure, no
inputs needed) must give the same paths, owners and modes as provision/layout.py reads from the same JSON."""

from __future__ import annotations

import json
import subprocess
from functools import cache
from pathlib import Path

import pytest

from provision.core.layout import load_layout
from tests.nix.support import NIX_DIR, REPO, guest_path, nix_eval, require_nix, run_nix

pytestmark = pytest.mark.nix


@cache
def contract() -> dict:
    return nix_eval("import ./nix/contract.nix { }")  # type: ignore[return-value]


def octal(mode: str) -> int:
    return int(mode, 8)


def test_every_nix_file_parses() -> None:
    nix_instantiate = require_nix()
    files = sorted(NIX_DIR.rglob("*.nix"))
    assert len(files) > 30, files  # the flake, its modules, the stand-ins and the boot test
    for path in files:
        result = subprocess.run([nix_instantiate, "--parse", str(path)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{path.relative_to(REPO)}: {result.stderr}"

def test_contract_top_level_matches_python() -> None:
    layout = load_layout()
    c = contract()
    assert c["version"] == layout.version
    assert c["label"] == layout.label
    assert c["fsType"] == layout.fs_type
    assert c["mountPoint"] == layout.mount_point
    assert c["device"] == f"/dev/disk/by-label/{layout.label}"
    assert c["disk"]["persistLabel"] == layout.label
    assert c["user"] == {
        "name": layout.user_name,
        "uid": layout.uid,
        "gid": layout.gid,
        "group": "users",
        "home": f"/home/{layout.user_name}",
    }


def _owner(uid: int) -> str:
    layout = load_layout()
    return {0: "root", layout.uid: layout.user_name}[uid]


def _group(gid: int) -> str:
    return {0: "root", load_layout().gid: "users"}[gid]


def test_impermanence_directories_are_the_contract_entries_with_their_modes() -> None:
    layout = load_layout()
    expected = [
        {"directory": e.path, "user": _owner(e.uid), "group": _group(e.gid), "mode": e.mode}
        for e in layout.entries
        if e.persist == "directory"
    ]
    got = [{**d, "mode": octal(d["mode"])} for d in contract()["persistence"]["directories"]]
    assert got == expected
    assert expected, "the contract persists no directory at all"


def test_impermanence_files_are_the_contract_entries() -> None:
    layout = load_layout()
    files = contract()["persistence"]["files"]
    assert [f["file"] for f in files] == [e.path for e in layout.entries if e.persist == "file"]
    for f in files:
        parent = layout.entry(str(Path(f["file"]).parent))
        assert f["parentDirectory"] == {
            "user": _owner(parent.uid),
            "group": _group(parent.gid),
            "mode": f"{parent.mode:04o}",
        }


def test_impermanence_user_directories_are_relative_to_home_with_their_modes() -> None:
    layout = load_layout()
    home = f"/home/{layout.user_name}/"
    expected = [
        {
            "directory": e.path.removeprefix(home),
            "user": _owner(e.uid),
            "group": _group(e.gid),
            "mode": e.mode,
        }
        for e in layout.entries
        if e.persist == "user-directory"
    ]
    users = contract()["persistence"]["users"]
    assert list(users) == [layout.user_name]
    got = [{**d, "mode": octal(d["mode"])} for d in users[layout.user_name]["directories"]]
    assert got == expected
    assert all(e.path.startswith(home) for e in layout.entries if e.persist == "user-directory")


def test_every_persisted_path_is_in_the_contract_and_nothing_else_is_persisted() -> None:
    layout = load_layout()
    c = contract()["persistence"]
    home = f"/home/{layout.user_name}/"
    nix_paths = (
        [d["directory"] for d in c["directories"]]
        + [f["file"] for f in c["files"]]
        + [home + d["directory"] for d in c["users"][layout.user_name]["directories"]]
    )
    assert sorted(nix_paths) == sorted(e.path for e in layout.entries if e.persist)


def test_role_paths_match_python() -> None:
    layout = load_layout()
    c = contract()
    assert c["passwordFile"] == guest_path(layout, layout.role("password-hash").path)
    assert c["machineId"] == guest_path(layout, layout.role("machine-id").path)
    assert c["hostKeys"] == [{"path": guest_path(layout, layout.role("host-key").path), "type": "ed25519"}]
    assert c["hostKeyPublic"] == guest_path(layout, layout.role("host-key-public").path)
    assert c["hostKeyPublic"] == c["hostKeys"][0]["path"] + ".pub"
    assert c["netbird"] == {
        "setupKeyFile": guest_path(layout, layout.role("netbird-setup-key").path),
        "managementUrlFile": guest_path(layout, layout.role("netbird-management-url").path),
    }
    assert c["hostnameFile"] == guest_path(layout, layout.role("hostname").path) == "/persist/etc/hostname"
    assert c["seedRecord"] == guest_path(layout, layout.role("seed-record").path)
    assert c["seedRecord"] == "/persist/zvm-provision/history.jsonl"  # where root reads it in the VM
    assert c["updateSignersFile"] == guest_path(layout, layout.role("update-signers").path)


def test_the_hostname_and_the_seeding_record_are_in_the_contract_as_decided() -> None:
    """Both halves follow these entries (issue 12): owner, mode, not required, and no persist key, so that
    impermanence binds neither; the record lives in a root-only directory of its own."""
    layout = load_layout()
    hostname = layout.role("hostname")
    record = layout.role("seed-record")
    directory = layout.entry(record.parent)
    assert (hostname.path, hostname.kind, hostname.uid, hostname.gid, hostname.mode) == ("/etc/hostname", "file", 0, 0, 0o644)
    assert (directory.path, directory.kind, directory.uid, directory.gid, directory.mode) == ("/zvm-provision", "dir", 0, 0, 0o700)
    assert (record.path, record.kind, record.uid, record.gid, record.mode) == ("/zvm-provision/history.jsonl", "file", 0, 0, 0o600)
    for entry in (hostname, directory, record):
        assert (entry.required, entry.secret, entry.persist) == (False, False, None), entry


def test_every_entry_comes_after_its_parent() -> None:
    """The tool creates the skeleton in the contract's order."""
    seen: set[str] = set()
    for entry in load_layout().entries:
        assert entry.path == "/" or entry.parent in seen, f"{entry.path} comes before {entry.parent}"
        seen.add(entry.path)


def test_authorized_keys_file_is_the_contract_path_with_percent_u() -> None:
    layout = load_layout()
    c = contract()
    assert c["authorizedKeysFile"] == "/persist/home/%u/.ssh/authorized_keys"
    keys = layout.role("authorized-keys")
    assert c["authorizedKeysFile"].replace("%u", layout.user_name) == guest_path(layout, keys.path)
    # sshd reads it as the user: the file must belong to the user the flake creates.
    assert (keys.uid, keys.gid) == (layout.uid, layout.gid)


def _e(path: str, kind: str, mode: str, uid: int = 0, gid: int = 0, **extra: str) -> dict:
    return {"path": path, "kind": kind, "uid": uid, "gid": gid, "mode": mode, **extra}


def _contract_of(layout: dict) -> str:
    """A Nix expression: contract.nix applied to LAYOUT instead of persist-layout.json."""
    return f"(import ./nix/contract.nix {{ layout = builtins.fromJSON {json.dumps(json.dumps(layout))}; }})"


def test_contract_nix_follows_a_changed_layout() -> None:
    """contract.nix derives everything from the JSON; nothing is typed twice."""
    layout = {
        "version": 1,
        "label": "state",
        "fsType": "xfs",
        "mountPoint": "/state",
        "user": {"name": "ada", "uid": 1001, "group": "users", "gid": 100},
        "entries": [
            _e("/", "dir", "0755"),
            _e("/pw", "dir", "0700"),
            _e("/pw/ada", "file", "0600", role="password-hash"),
            _e("/home/ada/.ssh/keys", "file", "0600", uid=1001, gid=100, role="authorized-keys"),
            _e("/home/ada/.local", "dir", "0750", uid=1001, gid=100, persist="user-directory"),
            _e("/ssh/ssh_host_rsa_key", "file", "0600", role="host-key"),
            _e("/ssh/ssh_host_rsa_key.pub", "file", "0644", role="host-key-public"),
            _e("/etc", "dir", "0711"),
            _e("/etc/machine-id", "file", "0444", role="machine-id", persist="file"),
            _e("/nb", "dir", "0700", persist="directory"),
            _e("/nb/k", "file", "0600", role="netbird-setup-key"),
            _e("/nb/u", "file", "0644", role="netbird-management-url"),
            _e("/etc/name", "file", "0644", role="hostname"),
            _e("/etc/signers", "file", "0644", role="update-signers"),
            _e("/log", "dir", "0700"),
            _e("/log/seeded", "file", "0600", role="seed-record"),
        ],
    }
    c = nix_eval(_contract_of(layout))
    assert c["device"] == "/dev/disk/by-label/state"
    assert c["passwordFile"] == "/state/pw/ada"
    assert c["authorizedKeysFile"] == "/state/home/%u/.ssh/keys"
    assert c["hostKeys"] == [{"path": "/state/ssh/ssh_host_rsa_key", "type": "rsa"}]
    assert c["persistence"]["directories"] == [
        {"directory": "/nb", "user": "root", "group": "root", "mode": "0700"}
    ]
    assert c["persistence"]["files"] == [
        {"file": "/etc/machine-id", "parentDirectory": {"user": "root", "group": "root", "mode": "0711"}}
    ]
    assert c["persistence"]["users"] == {
        "ada": {"directories": [{"directory": ".local", "user": "ada", "group": "users", "mode": "0750"}]}
    }
    assert c["netbird"] == {"setupKeyFile": "/state/nb/k", "managementUrlFile": "/state/nb/u"}
    assert (c["hostnameFile"], c["seedRecord"]) == ("/state/etc/name", "/state/log/seeded")
    assert c["updateSignersFile"] == "/state/etc/signers"


def test_contract_nix_rejects_a_missing_role() -> None:
    layout = json.loads((NIX_DIR / "persist-layout.json").read_text())
    layout["entries"] = [e for e in layout["entries"] if e.get("role") != "password-hash"]
    expr = _contract_of(layout) + ".passwordFile"
    result = run_nix(expr)
    assert result.returncode != 0
    assert 'role "password-hash"' in result.stderr
