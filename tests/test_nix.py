"""The flake in nix/, checked offline: it parses, it agrees with the Python side on the persist contract,
it carries every feature of the zvm system it re-creates, and its scripts fail clearly without their tools.

nixpkgs cannot be fetched here, so the modules are evaluated with stand-ins for lib/pkgs/config
(nix/tests/stub-eval.nix): that checks the values the flake sets, not that nixpkgs accepts them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from provision.layout import load_layout

REPO = Path(__file__).resolve().parent.parent
NIX_DIR = REPO / "nix"
SCRIPTS = NIX_DIR / "scripts"
NIX_INSTANTIATE = shutil.which("nix-instantiate")

_skip_without_nix = pytest.mark.skipif(
    NIX_INSTANTIATE is None, reason="nix-instantiate is not installed (Debian: apt install nix-bin)"
)


def needs_nix(test):  # type: ignore[no-untyped-def]
    """Marks a test `nix` (it evaluates Nix) and skips it where nix-instantiate is missing."""
    return pytest.mark.nix(_skip_without_nix(test))


def nix_eval(expr: str) -> object:
    """Evaluates a pure Nix expression (relative paths resolve from the repository root) to JSON."""
    assert NIX_INSTANTIATE is not None
    result = subprocess.run(
        [NIX_INSTANTIATE, "--eval", "--strict", "--json", "-E", expr],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        # No channels: the expressions are pure and must not reach for <nixpkgs>.
        env={**os.environ, "NIX_PATH": ""},
    )
    assert result.returncode == 0, f"nix-instantiate failed for {expr!r}:\n{result.stderr}"
    return json.loads(result.stdout)


@cache
def contract() -> dict:
    return nix_eval("import ./nix/contract.nix { }")  # type: ignore[return-value]


@cache
def stub() -> dict:
    return nix_eval("import ./nix/tests/stub-eval.nix { }")  # type: ignore[return-value]


def octal(mode: str) -> int:
    return int(mode, 8)


# --- (1) every .nix file parses ----------------------------------------------------------------------

NIX_FILES = sorted(NIX_DIR.rglob("*.nix"))


def test_the_flake_has_every_expected_file() -> None:
    names = {str(p.relative_to(NIX_DIR)) for p in NIX_FILES}
    expected = {
        "flake.nix",
        "contract.nix",
        "package.nix",
        "hosts/zvm/default.nix",
        *(f"modules/{m}.nix" for m in ("ephemeral", "user", "hardening", "updates", "netbird", "image")),
    }
    assert expected <= names


@needs_nix
@pytest.mark.parametrize("path", NIX_FILES, ids=lambda p: str(p.relative_to(NIX_DIR)))
def test_nix_file_parses(path: Path) -> None:
    result = subprocess.run(
        [NIX_INSTANTIATE, "--parse", str(path)],  # type: ignore[list-item]
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


# --- (2) the Nix side and the Python side read the same contract --------------------------------------


@needs_nix
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


@needs_nix
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


@needs_nix
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


@needs_nix
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


@needs_nix
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


@needs_nix
def test_role_paths_match_python() -> None:
    layout = load_layout()
    c = contract()
    assert c["passwordFile"] == layout.guest_path(layout.role("password-hash").path)
    assert c["machineId"] == layout.guest_path(layout.role("machine-id").path)
    assert c["hostKeys"] == [{"path": layout.guest_path(layout.role("host-key").path), "type": "ed25519"}]
    assert c["hostKeyPublic"] == layout.guest_path(layout.role("host-key-public").path)
    assert c["hostKeyPublic"] == c["hostKeys"][0]["path"] + ".pub"
    assert c["netbird"] == {
        "setupKeyFile": layout.guest_path(layout.role("netbird-setup-key").path),
        "managementUrlFile": layout.guest_path(layout.role("netbird-management-url").path),
    }


@needs_nix
def test_authorized_keys_file_is_the_contract_path_with_percent_u() -> None:
    layout = load_layout()
    c = contract()
    assert c["authorizedKeysFile"] == "/persist/home/%u/.ssh/authorized_keys"
    keys = layout.role("authorized-keys")
    assert c["authorizedKeysFile"].replace("%u", layout.user_name) == layout.guest_path(keys.path)
    # sshd reads it as the user: the file must belong to the user the flake creates.
    assert (keys.uid, keys.gid) == (layout.uid, layout.gid)


def _e(path: str, kind: str, mode: str, uid: int = 0, gid: int = 0, **extra: str) -> dict:
    return {"path": path, "kind": kind, "uid": uid, "gid": gid, "mode": mode, **extra}


def _contract_of(layout: dict) -> str:
    """A Nix expression: contract.nix applied to LAYOUT instead of persist-layout.json."""
    return f"(import ./nix/contract.nix {{ layout = builtins.fromJSON {json.dumps(json.dumps(layout))}; }})"


@needs_nix
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


@needs_nix
def test_contract_nix_rejects_a_missing_role() -> None:
    layout = json.loads((NIX_DIR / "persist-layout.json").read_text())
    layout["entries"] = [e for e in layout["entries"] if e.get("role") != "password-hash"]
    expr = _contract_of(layout) + ".passwordFile"
    result = subprocess.run(
        [NIX_INSTANTIATE, "--eval", "--strict", "--json", "-E", expr],  # type: ignore[list-item]
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode != 0
    assert 'role "password-hash"' in result.stderr


# --- (3) every feature of the seed's system is in the modules ----------------------------------------


@needs_nix
def test_modules_use_the_contract_values() -> None:
    s, c = stub(), contract()
    persistence = s["modules"]["ephemeral"]["environment"]["persistence"][c["mountPoint"]]
    for key in ("directories", "files", "users"):
        assert persistence[key] == c["persistence"][key]
    assert s["modules"]["user"]["users"]["users"]["zvm"]["hashedPasswordFile"] == c["passwordFile"]
    ssh = s["modules"]["hardening"]["services"]["openssh"]
    assert ssh["authorizedKeysFiles"] == [c["authorizedKeysFile"]]
    assert ssh["hostKeys"] == c["hostKeys"]
    enrol = s["modules"]["netbird"]["systemd"]["services"]["zvm-netbird-enrol"]
    assert c["netbird"]["setupKeyFile"] in enrol["script"]
    assert c["netbird"]["managementUrlFile"] in enrol["script"]


@needs_nix
def test_no_module_types_a_persist_path_itself() -> None:
    """Paths under /persist come from contract.nix only (the modules import it), so they cannot drift."""
    for module in (NIX_DIR / "modules").glob("*.nix"):
        text = module.read_text()
        code = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
        assert "/persist" not in code, f"{module.name} spells out a /persist path"
        if module.name in {"ephemeral.nix", "user.nix", "hardening.nix", "netbird.nix", "image.nix"}:
            assert "import ../contract.nix" in text, f"{module.name} does not read the contract"


@needs_nix
def test_host_composes_every_module() -> None:
    s = stub()
    assert s["hostImports"] == [
        "qemu-guest.nix",
        "ephemeral.nix",
        "user.nix",
        "hardening.nix",
        "updates.nix",
        "netbird.nix",
        "image.nix",
    ]
    assert s["host"]["networking"]["hostName"] == "zvm"


@needs_nix
def test_feature_tmpfs_root_and_labelled_filesystems() -> None:
    fs = stub()["modules"]["ephemeral"]["fileSystems"]
    assert fs["/"]["fsType"] == "tmpfs"
    assert "mode=755" in fs["/"]["options"]  # StrictModes walks up to /
    assert fs["/nix"] == {"device": "/dev/disk/by-label/nix", "fsType": "ext4", "neededForBoot": True}
    assert fs["/persist"] == {"device": "/dev/disk/by-label/persist", "fsType": "ext4", "neededForBoot": True}
    assert stub()["modules"]["image"]["fileSystems"]["/boot"]["device"] == "/dev/disk/by-label/BOOT"


@needs_nix
def test_feature_persisted_allowlist_is_the_seeds() -> None:
    """The seed's README: host keys, machine-id, /var/lib/nixos, Netbird, /var/log, password."""
    s, c = stub(), contract()
    p = s["modules"]["ephemeral"]["environment"]["persistence"]["/persist"]
    assert {d["directory"] for d in p["directories"]} == {"/var/lib/nixos", "/var/lib/netbird", "/var/log"}
    assert [f["file"] for f in p["files"]] == ["/etc/machine-id"]
    assert [d["directory"] for d in p["users"]["zvm"]["directories"]] == [".config/netbird"]
    # Host keys are read from /persist directly (persisting /etc/ssh would hide sshd_config).
    assert all(k["path"].startswith("/persist/etc/ssh/") for k in c["hostKeys"])
    assert "/etc/ssh" not in {d["directory"] for d in p["directories"]}
    assert c["passwordFile"] == "/persist/passwords/zvm"


@needs_nix
def test_feature_single_non_wheel_user() -> None:
    s = stub()
    users = s["modules"]["user"]["users"]
    assert users["mutableUsers"] is False
    assert users["allowNoPasswordLogin"] is True
    zvm = users["users"]["zvm"]
    assert zvm["isNormalUser"] is True
    assert (zvm["uid"], zvm["group"], zvm["extraGroups"]) == (1000, "users", [])
    assert list(users["users"]) == ["zvm"]
    assert all(a["assertion"] for a in s["assertions"]), s["assertions"]


@needs_nix
def test_feature_no_sudo_and_locked_nix() -> None:
    h = stub()["modules"]["hardening"]
    assert h["security"]["sudo"]["enable"] is False
    assert h["security"]["sudo-rs"]["enable"] is False
    assert h["nix"]["settings"]["allowed-users"] == ["root"]
    assert "trusted-users" not in h["nix"]["settings"]


@needs_nix
def test_feature_keys_only_sshd() -> None:
    ssh = stub()["modules"]["hardening"]["services"]["openssh"]
    assert ssh["enable"] is True
    settings = ssh["settings"]
    assert settings["PasswordAuthentication"] is False
    assert settings["KbdInteractiveAuthentication"] is False
    assert settings["PermitRootLogin"] == "no"
    assert settings["StrictModes"] is True
    assert settings["AuthenticationMethods"] == "publickey"
    assert settings["AllowUsers"] == ["zvm"]
    assert ssh["authorizedKeysInHomedir"] is False


@needs_nix
def test_feature_hourly_auto_update_without_reboot_and_at_boot() -> None:
    u = stub()["modules"]["updates"]
    up = u["config"]["system"]["autoUpgrade"]
    assert up["enable"] is True
    assert up["dates"] == "hourly"
    assert up["allowReboot"] is False
    assert up["operation"] == "switch"
    option = u["options"]["zvm"]["updates"]["flakeUrl"]
    assert up["flake"] == option["default"]
    assert option["default"].endswith("#zvm") and option["description"]
    assert u["config"]["systemd"]["timers"]["nixos-upgrade"]["timerConfig"]["OnBootSec"]
    assert {"nix-command", "flakes"} <= set(u["config"]["nix"]["settings"]["experimental-features"])


@needs_nix
def test_the_update_flake_url_is_set_in_one_place() -> None:
    default = stub()["modules"]["updates"]["options"]["zvm"]["updates"]["flakeUrl"]["default"]
    url = default.split("#")[0]
    holders = [p.relative_to(NIX_DIR) for p in NIX_DIR.rglob("*.nix") if url in p.read_text()]
    assert holders == [Path("modules/updates.nix")]


@needs_nix
def test_feature_netbird_daemon_and_first_boot_enrolment() -> None:
    n = stub()["modules"]["netbird"]
    assert n["services"]["netbird"]["enable"] is True
    enrol = n["systemd"]["services"]["zvm-netbird-enrol"]
    assert enrol["unitConfig"]["ConditionPathExists"] == "/persist/var/lib/netbird/setup-key"
    assert "netbird.service" in enrol["requires"] and "netbird.service" in enrol["after"]
    assert "network-online.target" in enrol["after"]
    assert enrol["wantedBy"] == ["multi-user.target"]
    assert enrol["serviceConfig"]["Type"] == "oneshot"
    assert enrol["serviceConfig"]["Restart"] == "on-failure"  # no network yet: try again, keep the key
    script = enrol["script"]
    assert script.startswith("set -euo pipefail")
    assert '--setup-key-file "$key_file"' in script
    assert "--management-url" in script and '[ -s "$url_file" ]' in script
    # The key is deleted only after `netbird up` succeeded (set -e), and the key never reaches argv.
    assert script.index('netbird "${args[@]}"') < script.index('rm -f -- "$key_file"')
    assert "--setup-key " not in script and "-k " not in script


@needs_nix
def test_feature_repart_image() -> None:
    image = stub()["modules"]["image"]
    assert image["imports"] == ["/stub/nixos/modules/image/repart.nix"]
    boot = image["boot"]["loader"]
    assert boot["systemd-boot"] == {"enable": True, "editor": False}
    assert boot["grub"]["enable"] is False and boot["efi"]["canTouchEfiVariables"] is False
    repart = image["image"]["repart"]
    assert repart["name"] == "main" and repart["version"] is None  # => main.raw
    assert repart["seed"] == "0867da16-f251-457d-a9e8-c31f9a3c220b"
    assert repart["sectorSize"] == 512
    assert any(o.startswith("hash_seed=") for o in repart["mkfsOptions"]["ext4"])
    parts = repart["partitions"]
    assert list(parts) == ["10-esp", "20-nix", "30-persist"]
    esp, nix, persist = (parts[k] for k in ("10-esp", "20-nix", "30-persist"))
    assert esp["repartConfig"]["Type"] == "esp" and esp["repartConfig"]["Format"] == "vfat"
    assert esp["repartConfig"]["Label"] == "BOOT"
    assert "/EFI/BOOT/BOOTX64.EFI" in esp["contents"]
    assert esp["contents"]["/EFI/BOOT/BOOTX64.EFI"]["source"].endswith("/systemd-bootx64.efi")
    assert "/loader/entries/nixos-generation-1.conf" in esp["contents"]
    assert nix["repartConfig"]["Format"] == "ext4" and nix["repartConfig"]["Label"] == "nix"
    assert nix["storePaths"] == ["/nix/store/stub-toplevel"]
    assert nix["nixStorePrefix"] == "/store"
    assert "/var/nix" in nix["contents"]  # the registered Nix database
    assert persist["repartConfig"]["Format"] == "ext4" and persist["repartConfig"]["Label"] == "persist"
    assert "contents" not in persist and "storePaths" not in persist  # empty: zvm-provision seeds it
    uuids = [p["repartConfig"]["UUID"] for p in parts.values()]
    assert len(set(uuids)) == 3 and repart["seed"] not in uuids
    mib = sum(int(p["repartConfig"]["SizeMinBytes"].removesuffix("M")) for p in parts.values())
    assert all(p["repartConfig"]["SizeMinBytes"] == p["repartConfig"]["SizeMaxBytes"] for p in parts.values())
    assert mib + 1 == 20 * 1024  # 20 GiB virtual, 1 MiB for the GPT and alignment


@needs_nix
def test_flake_inputs_and_outputs() -> None:
    f = stub()["flake"]
    inputs = f["inputs"]
    assert inputs["nixpkgs"]["url"].startswith("github:NixOS/nixpkgs/nixos-")
    assert inputs["impermanence"]["url"] == "github:nix-community/impermanence"
    assert inputs["impermanence"]["inputs"]["home-manager"]["follows"] == "home-manager"
    assert inputs["home-manager"]["inputs"]["nixpkgs"]["follows"] == "nixpkgs"
    release = inputs["nixpkgs"]["url"].rsplit("nixos-", 1)[1]
    assert inputs["home-manager"]["url"].endswith(f"release-{release}")
    assert f["nixosConfigurations"] == ["zvm"]
    assert {"image", "zvm-provision"} <= set(f["packages"])
    assert f["image"] == "/nix/store/stub-image"
    program = "/nix/store/stub-zvm-provision/bin/zvm-provision"
    assert f["apps"]["zvm-provision"] == {"type": "app", "program": program}
    assert f["devShells"] == ["default"]
    assert f["formatter"].endswith("nixfmt")
    shell = f["devShell"]
    assert shell["OVMF_CODE"].endswith("OVMF_CODE.fd") and shell["LIBGUESTFS_PATH"]


@needs_nix
def test_zvm_provision_package() -> None:
    pkg = stub()["flake"]["zvmProvision"]
    pyproject = (REPO / "pyproject.toml").read_text()
    assert pkg["pname"] == "zvm-provision" and f'version = "{pkg["version"]}"' in pyproject
    assert {"guestfs", "typer", "questionary", "libpass", "cryptography"} <= set(pkg["dependencies"])
    assert pkg["meta"]["mainProgram"] == "zvm-provision"
    wrap = " ".join(pkg["makeWrapperArgs"])
    assert "LIBGUESTFS_PATH /nix/store/stub-libguestfs-appliance" in wrap
    assert "--prefix PATH : /nix/store/stub-qemu/bin" in wrap


def test_the_readme_says_no_flake_lock_can_be_made_offline() -> None:
    readme = (NIX_DIR / "README.md").read_text()
    assert "flake.lock" in readme
    assert "persist-layout.json" in readme


# --- (4) the scripts fail clearly without their tools -------------------------------------------------

BASH = shutil.which("bash") or "/bin/bash"


def run_script(name: str, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs a script with a PATH holding only the given fake tools (no nix, no qemu)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    return subprocess.run(
        [BASH, str(SCRIPTS / name), *args],
        cwd=tmp_path,
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


EXIT_MISSING = 3


def fake_tool(tmp_path: Path, name: str, body: str) -> None:
    """Puts a shell script called NAME on the scripts' PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
    (bin_dir / name).chmod(0o755)


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


def test_start_finds_split_ovmf_and_boots_the_image(tmp_path: Path) -> None:
    fake_tool(tmp_path, "qemu-system-x86_64", 'printf "%s\\n" "$@" > "$HOME/qemu-args"')
    for tool in ("cp", "chmod"):
        (tmp_path / "bin" / tool).symlink_to(shutil.which(tool) or f"/bin/{tool}")
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
        [BASH, str(SCRIPTS / "package.sh"), str(raw), str(tmp_path / "zvm.qcow2")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "zvm.qcow2").read_bytes()[:4] == b"QFI\xfb"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_scripts_are_shellcheck_clean() -> None:
    scripts = sorted(str(p) for p in SCRIPTS.glob("*.sh"))
    result = subprocess.run(
        ["shellcheck", "-x", *scripts], cwd=REPO, capture_output=True, text=True, timeout=120
    )
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
