"""The zvm system as NixOS's module system builds it, offline.

nix/tests/eval.nix evaluates flake.nix's nixosConfigurations.zvm with the real nixpkgs lib.evalModules, the
real impermanence module and stand-in declarations of the nixpkgs options the modules use (nixpkgs' types:
an unknown option or a wrong type fails). Every assertion and warning is evaluated. The expected values come
from persist-layout.json as provision/core/layout.py reads it, and from what NixOS needs at boot, never from the
module that produces them.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from provision.core.layout import load_layout
from tests.nix.support import (
    BASH,
    NIX_DIR,
    TEST_FLAKE_URL,
    configured,
    evaluated,
    failed_assertions,
    fake_tool,
    guest_path,
    real_tools,
)

pytestmark = pytest.mark.nix

# nixpkgs mounts these in the initrd whatever neededForBoot says (pathsNeededForBoot, nixos/lib/utils.nix);
# impermanence must bind persisted directories among them there, before stage 2 reads them.
NIXOS_PATHS_MOUNTED_IN_INITRD = {"/", "/nix", "/nix/store", "/var", "/var/log", "/var/lib", "/var/lib/nixos", "/etc", "/usr"}


def guest(role: str) -> str:
    layout = load_layout()
    return guest_path(layout, layout.role(role).path)


def mib(size: str) -> int:
    assert size.endswith("M"), size
    return int(size[:-1])


# --- every assertion and warning ---------------------------------------------------------------------


def test_the_configured_system_passes_every_assertion_without_warnings() -> None:
    report = configured()
    assert len(report["assertions"]) >= 10  # nixpkgs', impermanence's and the flake's own were evaluated
    assert failed_assertions(report) == []
    assert report["warnings"] == []
    assert report["toplevel"] == {"success": True, "value": True}


def test_a_fresh_clone_passes_what_nix_flake_check_evaluates() -> None:
    """`nix flake check` evaluates every output's derivation (and builds the checks): on the flake as cloned,
    without zvm.updates.flakeUrl, each must evaluate (the boot check is evaluated by test_nix_boot.py)."""
    check = evaluated()["flakeCheck"]
    assert check["checks"].pop("boot") == "not a derivation here"
    flat = {f"{kind}.{name}": ok for kind, v in check.items() for name, ok in (v.items() if isinstance(v, dict) else [("", v)])}
    assert flat and all(ok is True for ok in flat.values()), {k: v for k, v in flat.items() if v is not True}
    assert {"nixosConfigurations.zvm", "packages.image", "packages.toplevel", "checks.toplevel"} <= set(flat)


def test_an_unset_update_url_builds_no_image_and_says_why() -> None:
    """No foreign default: a VM must never switch to somebody else's flake, and no image ships before its
    publisher decided where its VMs update from. The system builds (without updates); the image's build fails."""
    report = evaluated()
    assert failed_assertions(report) == []
    assert report["toplevel"]["success"] is True
    assert any("zvm.updates.flakeUrl is not set" in w and "nix/README.md" in w for w in report["warnings"]), report["warnings"]
    assert report["autoUpgrade"]["enable"] is False and report["autoUpgrade"]["flake"] is None
    assert "nixos-upgrade" not in report["systemd"]["services"]
    build = report["image"]["build"]
    assert build["name"] == "zvm-image-needs-an-update-decision"
    result = subprocess.run(["bash", "-euc", build["script"]], capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "zvm.updates.flakeUrl" in result.stderr and "?dir=nix&ref=" in result.stderr
    assert configured()["image"]["build"]["name"] == configured()["image"]["repart"]["name"] == "main"
    assert evaluated(zvm={"updates": {"flakeUrl": None}})["image"]["build"]["name"] == "main"


@pytest.mark.skipif(shutil.which("nix-store") is None, reason="nix-store (Debian nix-bin) is not installed")
def test_the_baked_nix_database_has_no_dangling_root_and_no_reserved_space(tmp_path: Path) -> None:
    """The image's /nix/var/nix, made by the image's own script with this machine's nix-store: GC roots
    resolve inside the VM's tree, and the 8 MiB gc-reserved-space file is not shipped."""
    script = configured()["image"]["nixStateScript"]
    script = re.sub(r"/nix/store/\S+-closure-info/registration", "/dev/null", script)
    out = tmp_path / "out"
    result = subprocess.run(["bash", "-euc", script], env={**os.environ, "out": str(out)},
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert os.readlink(out / "gcroots" / "profiles") == "/nix/var/nix/profiles"
    for link in out.rglob("*"):
        if link.is_symlink():  # every link must name a path that exists in the VM: under /nix/var/nix or the store
            target = os.readlink(link)
            assert target.startswith(("/nix/var/nix/", "/nix/store/")) and str(tmp_path) not in target, (link, target)
    assert not (out / "db" / "reserved").exists()
    assert (out / "db" / "db.sqlite").is_file()


def test_a_null_update_url_means_no_updates_and_says_so() -> None:
    report = evaluated(zvm={"updates": {"flakeUrl": None}})
    assert failed_assertions(report) == []
    assert report["toplevel"]["success"] is True
    assert any("never updates itself" in w for w in report["warnings"]), report["warnings"]
    assert report["autoUpgrade"]["enable"] is False
    assert "nixos-upgrade" not in report["systemd"]["services"]
    assert "nixos-upgrade" not in report["systemd"]["timers"]


def test_an_update_url_without_a_configuration_is_refused() -> None:
    report = evaluated(zvm={"updates": {"flakeUrl": "git+https://example.test/you/zvm-provision?dir=nix"}})
    failed = failed_assertions(report)
    assert len(failed) == 1 and "names no configuration" in failed[0], failed


def test_no_module_types_a_persist_path_itself() -> None:
    """Paths under /persist come from contract.nix only (the modules import it), so they cannot drift."""
    for module in [*(NIX_DIR / "modules").glob("*.nix"), NIX_DIR / "filesystems.nix"]:
        code = "\n".join(line.split("#", 1)[0] for line in module.read_text().splitlines())
        assert "/persist" not in code, f"{module.name} spells out a /persist path"


# --- filesystems and the allowlist --------------------------------------------------------------------


def test_root_is_a_private_tmpfs_and_nix_and_persist_are_mounted_by_label_in_the_initrd() -> None:
    layout = load_layout()
    fs = configured()["fileSystems"]
    assert fs["/"]["fsType"] == "tmpfs"
    assert "mode=755" in fs["/"]["options"]  # sshd StrictModes walks up to /
    # The labels the sample disk and every zvm disk carry (provision/sampledisk.py makes the same).
    for mount_point, label, fs_type in (("/nix", "nix", "ext4"), (layout.mount_point, layout.label, layout.fs_type)):
        assert fs[mount_point]["device"] == f"/dev/disk/by-label/{label}"
        assert fs[mount_point]["fsType"] == fs_type
        assert fs[mount_point]["neededForBoot"] is True
        assert "x-initrd.mount" in fs[mount_point]["options"]
    assert fs["/boot"]["device"] == "/dev/disk/by-label/BOOT" and fs["/boot"]["fsType"] == "vfat"


def test_impermanence_binds_every_persisted_directory_from_persist() -> None:
    layout = load_layout()
    report = configured()
    mounts = {m["where"]: m for m in report["systemd"]["mounts"]}
    initrd = {m["where"]: m for m in report["systemd"]["initrdMounts"]}
    persisted = [e for e in layout.entries if e.persist in ("directory", "user-directory")]
    assert persisted
    for entry in persisted:
        mount = mounts[entry.path]
        assert mount["what"] == guest_path(layout, entry.path)
        assert "bind" in mount["options"].split(",")
        assert "local-fs.target" in mount["wantedBy"] and "local-fs.target" in mount["before"]
        if entry.path in NIXOS_PATHS_MOUNTED_IN_INITRD:
            assert initrd[f"/sysroot{entry.path}"]["what"] == f"/sysroot{guest_path(layout, entry.path)}"
    assert set(mounts) == {e.path for e in persisted}, "something outside the contract is persisted"
    assert set(initrd) == {f"/sysroot{e.path}" for e in persisted if e.path in NIXOS_PATHS_MOUNTED_IN_INITRD}


def test_impermanence_creates_missing_directories_with_the_contract_owner_and_mode() -> None:
    layout = load_layout()
    names = {0: "root", layout.uid: layout.user_name}
    groups = {0: "root", layout.gid: "users"}
    persistence = configured()["persistence"][layout.mount_point]
    assert persistence["persistentStoragePath"] == layout.mount_point
    got = {d["dirPath"]: d for d in persistence["directories"]}
    got |= {d["dirPath"]: d for u in persistence["users"].values() for d in u["directories"]}
    for entry in (e for e in layout.entries if e.persist in ("directory", "user-directory")):
        d = got[entry.path]
        assert (d["user"], d["group"], int(d["mode"], 8)) == (names[entry.uid], groups[entry.gid], entry.mode)


def test_the_machine_id_is_bound_from_persist_before_systemd_needs_it() -> None:
    layout = load_layout()
    report = configured()
    machine_id = layout.role("machine-id")
    persisted = {f["filePath"]: f for f in report["persistence"][layout.mount_point]["files"]}
    assert machine_id.path == "/etc/machine-id" and machine_id.path in persisted
    services = report["systemd"]["services"]
    binder = [s for s in services.values() if s.get("serviceConfig", {}).get("ExecStart", "").split()[1:3]
              == [machine_id.path, guest_path(layout, machine_id.path)]]
    assert len(binder) == 1, "no unit binds the persisted machine-id"
    assert "local-fs.target" in binder[0]["wantedBy"] and binder[0]["unitConfig"]["DefaultDependencies"] is False
    # The activation script binds it at boot (before systemd starts); it needs /persist from the initrd.
    scripts = report["activationScripts"]
    assert "createPersistentStorageDirs" in scripts["persist-files"]["deps"]
    assert {"users", "groups"} <= set(scripts["createPersistentStorageDirs"]["deps"])
    assert report["fileSystems"][layout.mount_point]["neededForBoot"] is True
    # systemd-machine-id-commit fails on a bind-mounted /etc/machine-id: only ever on a first boot.
    assert "systemd-machine-id-commit.service" in report["systemd"]["initrdSuppressedUnits"]
    assert services["systemd-machine-id-commit"]["unitConfig"]["ConditionFirstBoot"] is True


def record_paths() -> tuple[str, str]:
    """The seeding record and its directory, as paths in the running VM if anything bound them there."""
    record = load_layout().role("seed-record")
    return record.path, record.parent


def test_impermanence_binds_neither_the_seeding_record_nor_its_directory() -> None:
    """The record is root's, read under /persist: outside the allowlist, nothing in the VM's tree is it."""
    layout = load_layout()
    record, directory = record_paths()
    assert [e.persist for e in layout.entries if e.path in (record, directory)] == [None, None]
    report = configured()
    persistence = report["persistence"][layout.mount_point]
    persisted = [d["dirPath"] for d in persistence["directories"]] + [f["filePath"] for f in persistence["files"]]
    persisted += [d["dirPath"] for u in persistence["users"].values() for d in u["directories"]]
    assert not [p for p in persisted if directory == p or directory.startswith(p.rstrip("/") + "/") or p.startswith(directory)]
    mounted = [(m["what"], m["where"]) for m in report["systemd"]["mounts"] + report["systemd"]["initrdMounts"]]
    assert mounted and not [m for m in mounted if any(directory in side for side in m)]
    # Impermanence binds files from services (mount-file.bash): none reads from the record's directory.
    for name, service in report["systemd"]["services"].items():
        assert guest_path(layout, directory) not in json.dumps(service), name


def test_persisting_the_seeding_record_stops_the_build() -> None:
    layout = load_layout()
    _, directory = record_paths()
    report = evaluated(zvm={"updates": {"flakeUrl": TEST_FLAKE_URL}},
                       environment={"persistence": {layout.mount_point: {"directories": [directory]}}})
    failed = failed_assertions(report)
    assert len(failed) == 1 and "the seeding record, must stay outside the allowlist" in failed[0], failed
    assert guest_path(layout, layout.role("seed-record").path) in failed[0] and directory in failed[0]
    assert report["toplevel"]["success"] is False


# --- the user, sudo, sshd -----------------------------------------------------------------------------


def test_one_non_wheel_user_with_the_contract_ids_and_password_file() -> None:
    layout = load_layout()
    users = configured()["users"]
    assert users["mutableUsers"] is False
    user = users["users"][layout.user_name]
    assert user["isNormalUser"] is True and user["uid"] == layout.uid
    assert users["groups"][user["group"]] == layout.gid
    assert user["home"] == f"/home/{layout.user_name}"
    assert user["hashedPasswordFile"] == guest("password-hash")
    assert user["hashedPassword"] is None
    assert "wheel" not in user["extraGroups"]
    normal = [name for name, u in users["users"].items() if u["isNormalUser"]]
    assert normal == [layout.user_name]


def test_no_sudo_and_only_root_talks_to_the_nix_daemon() -> None:
    report = configured()
    assert report["security"] == {"sudo": False, "sudo-rs": False}
    assert report["nix"]["settings"]["allowed-users"] == ["root"]
    assert report["nix"]["settings"]["trusted-users"] == ["root"]


def test_sshd_takes_keys_only_from_the_contract_files() -> None:
    layout = load_layout()
    ssh = configured()["openssh"]
    assert ssh["enable"] is True
    s = ssh["settings"]
    assert (s["PasswordAuthentication"], s["KbdInteractiveAuthentication"]) == (False, False)
    assert s["PermitRootLogin"] == "no" and s["StrictModes"] is True
    assert s["AuthenticationMethods"] == "publickey"
    assert s["AllowUsers"] == [layout.user_name]
    # The keys file, with the user's name as sshd's %u; no ~/.ssh/authorized_keys on the tmpfs home.
    keys = guest("authorized-keys").replace(f"/{layout.user_name}/", "/%u/")
    assert f"AuthorizedKeysFile {keys} /etc/ssh/authorized_keys.d/%u\n" in ssh["extraConfig"]
    host_key = guest("host-key")
    assert re.findall(r"^HostKey (.*)$", ssh["extraConfig"], re.M) == [host_key]
    assert guest("host-key-public") == host_key + ".pub"  # ssh-keygen's pairing
    assert ssh["hostKeys"] == [{"path": host_key, "type": "ed25519"}]


# --- updates, storage, console --------------------------------------------------------------------------


def test_updates_switch_hourly_and_after_boot_and_never_reboot() -> None:
    report = configured()
    upgrade = report["systemd"]["services"]["nixos-upgrade"]
    # The URL the unit passes: tests/nix/test_nix_updates.py runs its script.
    assert re.search(r"nixos-rebuild switch ", upgrade["script"])
    assert "shutdown" not in upgrade["script"] and "reboot" not in upgrade["script"]
    assert report["autoUpgrade"]["allowReboot"] is False
    assert "network-online.target" in upgrade["after"]
    timer = report["systemd"]["timers"]["nixos-upgrade"]["timerConfig"]
    assert timer["OnCalendar"] == ["hourly"]
    assert timer["OnBootSec"] == "2min"  # the tmpfs root forgets Persistent='s stamp


def on_disk(path: str, filesystems: dict) -> bool:
    """Whether PATH lives on a disk filesystem, not on a tmpfs (the longest mount point above it decides)."""
    mount = max((m for m in filesystems if path == m or path.startswith(m.rstrip("/") + "/")), key=len)
    return filesystems[mount]["fsType"] != "tmpfs"


def test_builds_and_fetches_happen_on_the_nix_partition_not_in_ram() -> None:
    report = configured()
    build_dir = report["nix"]["settings"]["build-dir"]
    assert on_disk(build_dir, report["fileSystems"]), build_dir
    assert any(rule.split()[:2] == ["d", build_dir] for rule in report["systemd"]["tmpfiles"])
    cache_home = report["systemd"]["services"]["nixos-upgrade"]["environment"]["XDG_CACHE_HOME"]
    assert on_disk(cache_home, report["fileSystems"]), cache_home


def test_garbage_collection_and_boot_entries_fit_the_partitions() -> None:
    report = configured()
    parts = report["image"]["repart"]["partitions"]
    nix_bytes = mib(parts["20-nix"]["repartConfig"]["SizeMaxBytes"]) * 2**20
    esp_mib = mib(parts["10-esp"]["repartConfig"]["SizeMaxBytes"])
    settings = report["nix"]["settings"]
    # Nix collects garbage during a build when /nix runs low; a gigabyte at least, below the partition size.
    assert 2**30 <= settings["min-free"] < settings["max-free"] <= nix_bytes // 2
    gc = report["nix"]["gc"]
    assert gc["automatic"] is True and "--delete-older-than" in gc["options"]
    gc_timer = report["systemd"]["timers"]["nix-gc"]["timerConfig"]
    assert gc_timer["OnCalendar"] and "OnBootSec" in gc_timer  # Persistent= cannot catch up on a tmpfs root
    # Each entry keeps a kernel and an initrd on the ESP: up to ~64 MiB on x86_64, plus systemd-boot itself.
    limit = report["boot"]["loader"]["systemd-boot"]["configurationLimit"]
    assert limit is not None and 2 <= limit and limit * 64 + 32 <= esp_mib


def test_the_console_is_on_the_serial_port_start_sh_shows() -> None:
    report = configured()
    consoles = [p for p in report["boot"]["kernelParams"] if p.startswith("console=")]
    assert consoles and consoles[-1].startswith("console=ttyS0")  # the last one is /dev/console
    # The image boots its own loader entry first: the parameters must be in it.
    entry = report["image"]["espTexts"]["/loader/entries/nixos-generation-1.conf"]
    options = next(line for line in entry.splitlines() if line.startswith("options "))
    assert consoles[-1] in options.split()
    assert f"init={report['image']['toplevelPath']}/init" in options.split()


# --- Netbird --------------------------------------------------------------------------------------------


def enrol_unit() -> dict:
    return configured()["systemd"]["services"]["zvm-netbird-enrol"]


def test_netbird_enrolment_runs_only_with_a_seeded_key_after_the_daemon() -> None:
    report = configured()
    unit = enrol_unit()
    assert unit["unitConfig"]["ConditionPathExists"] == guest("netbird-setup-key")
    daemons = [n for n, s in report["systemd"]["services"].items() if "service run" in s["serviceConfig"].get("ExecStart", "")]
    assert daemons == ["netbird"]
    assert "netbird.service" in unit["requires"] and "netbird.service" in unit["after"]
    assert unit["wantedBy"] == ["multi-user.target"]
    assert unit["serviceConfig"]["Type"] == "oneshot"
    assert "Restart" not in unit["serviceConfig"]  # one run per key: its tries are counted in the script
    # The CLI must reach the same daemon socket the daemon listens on: nixpkgs' daemon runs the client's
    # wrapper, whose --set-default arguments carry the client's NB_* environment.
    client = report["netbird"]["default"]
    assert report["systemd"]["services"]["netbird"]["serviceConfig"]["ExecStart"] == f"{client['wrapper']}/bin/netbird service run"
    words = shlex.split(client["wrapperScript"].split("makeWrapper ", 1)[1].replace("\\\n", " "))
    args = words[words.index("--set-default"):]
    defaults = dict(zip(args[1::3], args[2::3]))
    assert args[0::3] == ["--set-default"] * len(defaults) and "NB_DAEMON_ADDR" in defaults
    assert unit["environment"]["NB_DAEMON_ADDR"] == defaults["NB_DAEMON_ADDR"]


def seeded_name_tool(tmp_path: Path) -> tuple[str, Path]:
    """The shared check of a seeded hostname (its store path in the evaluated system), and a runnable copy
    of the script that store path holds."""
    tool = configured()["hostname"]["seededNameTool"]
    copy = tmp_path / "store" / Path(tool["path"]).name
    copy.parent.mkdir(parents=True, exist_ok=True)
    copy.write_text(f"#!{BASH}\n{tool['text']}")
    copy.chmod(0o755)
    return tool["path"], copy


def run_enrol_script(
    tmp_path: Path, *, key: bool, url: str | None, up_status: int = 0, hostname: str | None = None
) -> tuple[int, list[str]]:
    """Runs the unit's script as systemd would: the contract's paths moved under tmp_path, the key copied to
    the credentials directory LoadCredential= names (systemd's copy), no pause between tries, a fake netbird
    whose `up` exits UP_STATUS, and a seeded hostname file holding HOSTNAME (absent if None)."""
    layout = load_layout()
    root = tmp_path / "root"
    store_path, tool = seeded_name_tool(tmp_path)
    unit = enrol_unit()
    status_file = unit["script"].split("status_file=", 1)[1].split("\n", 1)[0]
    script = unit["script"].replace(store_path, str(tool)).replace(status_file, f"{root}{status_file}")
    script = script.replace(f"{layout.mount_point}/", f"{root}{layout.mount_point}/")
    key_file = Path(f"{root}{guest('netbird-setup-key')}")
    url_file = Path(f"{root}{guest('netbird-management-url')}")
    key_file.parent.mkdir(parents=True)
    Path(f"{root}{status_file}").parent.mkdir(parents=True)
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    if key:
        key_file.write_text("A1B2C3D4-E5F6-4789-9ABC-DEF012345678\n")
        (name, source), = (c.split(":", 1) for c in unit["serviceConfig"]["LoadCredential"])
        assert source == guest("netbird-setup-key")
        shutil.copy(key_file, credentials / name)
    if url is not None:
        url_file.write_text(url + "\n")
    if hostname is not None:
        hostname_file = Path(f"{root}{guest('hostname')}")
        hostname_file.parent.mkdir(parents=True, exist_ok=True)
        hostname_file.write_text(hostname)
    calls = tmp_path / "calls"
    fake_tool(
        tmp_path,
        "netbird",
        f'printf "%s\\n" "$*" >> {calls}\n[ "$1" = up ] && exit {up_status}\nexit 0',
    )
    real_tools(tmp_path, "sleep", "tr", "rm", "wc", "chmod", "mv")
    env = {**unit["environment"], "PATH": str(tmp_path / "bin"), "CREDENTIALS_DIRECTORY": str(credentials),
           "ZVM_ENROL_PAUSE": "0"}
    result = subprocess.run([BASH, "-e", "-c", script], env=env, capture_output=True, text=True, timeout=60)
    status = Path(f"{root}{status_file}")
    run_enrol_script.last = (result.stderr, status.read_text() if status.exists() else None, oct(status.stat().st_mode & 0o777) if status.exists() else None)  # type: ignore[attr-defined]
    return result.returncode, calls.read_text().splitlines() if calls.exists() else []


def test_netbird_enrolment_uses_the_key_file_and_the_management_url_then_deletes_the_key(tmp_path: Path) -> None:
    status, calls = run_enrol_script(tmp_path, key=True, url="https://netbird.example.test:443")
    key = f"{tmp_path}/credentials/setup-key"
    assert status == 0
    assert calls == ["status", f"up --setup-key-file {key} --management-url https://netbird.example.test:443"]
    assert not Path(f"{tmp_path}/root{guest('netbird-setup-key')}").exists()
    _, shown, mode = run_enrol_script.last  # type: ignore[attr-defined]
    assert shown.startswith("enrolled") and mode == "0o644"  # every login shell shows it


def test_netbird_enrolment_without_a_management_url_uses_netbirds_default(tmp_path: Path) -> None:
    status, calls = run_enrol_script(tmp_path, key=True, url=None)
    assert status == 0
    assert calls[-1] == f"up --setup-key-file {tmp_path}/credentials/setup-key"


def test_a_failed_enrolment_gives_up_after_the_bounded_tries_deletes_the_key_and_says_so(tmp_path: Path) -> None:
    status, calls = run_enrol_script(tmp_path, key=True, url=None, up_status=1)
    attempts = int(enrol_unit()["environment"]["ZVM_ENROL_ATTEMPTS"])
    assert status != 0
    assert [c for c in calls if c.startswith("up ")] == [f"up --setup-key-file {tmp_path}/credentials/setup-key"] * attempts
    assert not Path(f"{tmp_path}/root{guest('netbird-setup-key')}").exists()
    journal, shown, _ = run_enrol_script.last  # type: ignore[attr-defined]
    assert "enrolment FAILED" in shown and "seed a new one" in shown and "enrolment FAILED" in journal


def test_the_enrolment_runs_once_per_key_and_within_a_time_bound() -> None:
    unit = enrol_unit()
    assert "Restart" not in unit["serviceConfig"] and "StartLimitIntervalSec" not in unit["unitConfig"]
    assert 1 <= int(unit["environment"]["ZVM_ENROL_ATTEMPTS"]) * int(unit["environment"]["ZVM_ENROL_PAUSE"]) <= 15 * 60
    assert unit["serviceConfig"]["TimeoutStartSec"] == "15min"


def test_every_login_shell_shows_the_enrolment_status(tmp_path: Path) -> None:
    """The shell lines nixpkgs puts in /etc/bashrc, run with the status file moved under tmp_path."""
    init = configured()["interactiveShellInit"]
    status = tmp_path / "status"
    status.write_text("enrolled (try 1 of 10); the setup key was deleted\n")
    (path,) = set(re.findall(r"/run/\S+/status", init))
    real_tools(tmp_path, "head")
    run = subprocess.run([BASH, "-c", init.replace(path, str(status))], env={"PATH": str(tmp_path / "bin")},
                         capture_output=True, text=True, timeout=60)
    assert run.stdout == "Netbird: enrolled (try 1 of 10); the setup key was deleted\n"
    status.unlink()
    run = subprocess.run([BASH, "-c", init.replace(path, str(status))], env={"PATH": str(tmp_path / "bin")},
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout == ""


def test_netbird_enrolment_names_the_peer_after_the_seeded_hostname(tmp_path: Path) -> None:
    status, calls = run_enrol_script(tmp_path, key=True, url=None, hostname="web-01\n")
    assert status == 0
    assert calls[-1] == f"up --setup-key-file {tmp_path}/credentials/setup-key --hostname web-01"


@pytest.mark.parametrize("hostname", [None, "Web-01\n", "../../etc/shadow\n", ""], ids=["unseeded", "upper-case", "traversal", "empty"])
def test_netbird_enrolment_without_a_valid_seeded_hostname_passes_none(tmp_path: Path, hostname: str | None) -> None:
    """Netbird then names the peer after the VM's hostname, the built-in one (the boot ignored the file too)."""
    status, calls = run_enrol_script(tmp_path, key=True, url=None, hostname=hostname)
    assert status == 0
    assert calls[-1] == f"up --setup-key-file {tmp_path}/credentials/setup-key"


def test_the_netbird_daemons_socket_is_roots_alone() -> None:
    """nixpkgs' real netbird.nix (vendored), as zvm configures it: whoever may enter the daemon's runtime
    directory may steer the daemon through its socket (made 0666). Only root may: the daemon is root's, or
    the hardened client's with zvm outside its group."""
    report = configured()
    client = report["netbird"]["default"]
    daemon = report["systemd"]["services"][client["service"]]["serviceConfig"]
    assert client["environment"]["NB_DAEMON_ADDR"] == f"unix://{client['runtimeDirectory']}/sock"
    assert client["runtimeDirectory"] == f"/var/run/{daemon['RuntimeDirectory']}"
    mode = int(daemon["RuntimeDirectoryMode"], 8)
    assert mode & 0o007 == 0, f"others may reach the socket: {daemon['RuntimeDirectoryMode']}"
    zvm = report["users"]["users"]["zvm"]
    if mode & 0o070:  # the group may: it must be the daemon's own, without zvm
        group = daemon.get("Group", "root")
        assert group != "root" and group not in zvm["extraGroups"] and zvm["group"] != group
    assert client["hardened"] or "User" not in daemon  # unhardened: root's, with the directory above


# --- the hostname ---------------------------------------------------------------------------------------


def hostname_snippet() -> dict:
    return configured()["activationScripts"]["zvm-hostname"]


def test_the_seeded_hostname_replaces_etc_hostname_after_nixpkgs_links_the_built_in_one() -> None:
    report = configured()
    # nixpkgs links networking.hostName as /etc/hostname in the "etc" snippet; an unseeded VM keeps it.
    assert report["hostname"]["hostName"] == "zvm"
    assert report["etc"]["hostname"]["enable"] is True and report["etc"]["hostname"]["mode"] == "symlink"
    assert report["etc"]["hostname"]["text"] == "zvm\n"
    # Ours runs after it, so it is not undone by it at boot or on a switch.
    assert hostname_snippet()["deps"] == ["etc"]
    assert "etc" in report["activationScripts"]


def test_the_seeded_hostname_check_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    script = NIX_DIR / "modules" / "seeded-hostname.sh"
    assert configured()["hostname"]["seededNameTool"]["text"] == script.read_text()
    result = subprocess.run(["shellcheck", str(script)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout


BUILT_IN = "zvm\n"


def run_hostname_activation(tmp_path: Path, seed=None) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    """Runs the activation snippet as nixpkgs' activation script does (its ERR trap and per-snippet status),
    with /etc and /persist moved under tmp_path/root: /etc/hostname is the link the "etc" snippet left (to
    networking.hostName), and SEED, a callable, prepares the seeded file at the path it is given."""
    root = tmp_path / "root"
    etc = root / "etc"
    static = root / "etc-static"  # stands for /etc/static
    etc.mkdir(parents=True)
    static.mkdir()
    (static / "hostname").write_text(configured()["etc"]["hostname"]["text"])
    (etc / "hostname").symlink_to(static / "hostname")
    seeded = Path(f"{root}{guest('hostname')}")
    seeded.parent.mkdir(parents=True, exist_ok=True)
    if seed is not None:
        seed(seeded)
    return activate_hostname(tmp_path), etc / "hostname", seeded


def activate_hostname(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    root = tmp_path / "root"
    store_path, tool = seeded_name_tool(tmp_path)
    text = hostname_snippet()["text"]
    call = f"{store_path} {guest('hostname')}"
    assert text.count(call) == 1, text  # the check, on the contract's file
    text = text.replace(call, f"{tool} {root}{guest('hostname')}")
    text = re.sub(r"(?<![\w/])/etc/hostname", f"{root}/etc/hostname", text)
    real_tools(tmp_path, "wc", "chmod", "mv", "rm")
    wrapped = f"""
_status=0
trap "_status=1 _localstatus=\\$?" ERR
umask 0022
_localstatus=0
{text}
if (( _localstatus > 0 )); then
  printf "Activation script snippet '%s' failed (%s)\\n" zvm-hostname "$_localstatus"
fi
exit $_status
"""
    return subprocess.run(
        [BASH, "-c", wrapped], env={"PATH": str(tmp_path / "bin")}, capture_output=True, text=True, timeout=60
    )


def writes(content: str | bytes):
    return lambda path: path.write_bytes(content if isinstance(content, bytes) else content.encode())


@pytest.mark.parametrize("name", ["web-01", "a", "0", "x" * 63, "it-desk-7"])
def test_a_valid_seeded_hostname_becomes_etc_hostname(tmp_path: Path, name: str) -> None:
    result, etc_hostname, _ = run_hostname_activation(tmp_path, writes(name + "\n"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert not etc_hostname.is_symlink() and etc_hostname.read_text() == name + "\n"
    assert etc_hostname.stat().st_mode & 0o7777 == 0o644
    assert sorted(p.name for p in etc_hostname.parent.iterdir()) == ["hostname"]  # no temporary file left
    assert result.stderr == ""


def test_an_unseeded_image_keeps_the_built_in_hostname_silently(tmp_path: Path) -> None:
    result, etc_hostname, _ = run_hostname_activation(tmp_path)
    assert result.returncode == 0 and result.stdout == result.stderr == ""
    assert etc_hostname.is_symlink() and etc_hostname.read_text() == BUILT_IN


INVALID = {
    "upper-case": "Web-01\n",
    "too-long": "x" * 64 + "\n",
    "much-too-long": "x" * 100_000 + "\n",
    "two-lines": "web-01\nweb-02\n",
    "path-traversal": "../../etc/shadow\n",
    "empty": "",
    "only-a-newline": "\n",
    "no-newline": "web-01",
    "crlf": "web-01\r\n",
    "leading-hyphen": "-web\n",
    "trailing-hyphen": "web-\n",
    "underscore": "web_01\n",
    "dot": "web.example.com\n",
    "space": "web 01\n",
    "non-ascii": "wéb\n",
    "nul-byte": b"web\x00-01\n",
    "shell": "$(reboot)\n",
}


@pytest.mark.parametrize("content", INVALID.values(), ids=INVALID.keys())
def test_an_invalid_seeded_hostname_keeps_the_built_in_one_and_says_why(tmp_path: Path, content: str | bytes) -> None:
    result, etc_hostname, seeded = run_hostname_activation(tmp_path, writes(content))
    assert result.returncode == 0, result.stdout + result.stderr  # the activation (and the boot) goes on
    assert etc_hostname.is_symlink() and etc_hostname.read_text() == BUILT_IN
    assert f"ignoring {seeded} (" in result.stderr and "built-in hostname" in result.stderr
    assert "failed" not in result.stdout


def symlink_to_a_valid_name(path: Path) -> None:
    target = path.parent / "elsewhere"
    target.write_text("web-01\n")
    path.symlink_to(target)


@pytest.mark.parametrize(
    "seed",
    [symlink_to_a_valid_name, lambda p: p.symlink_to(p.parent / "missing"), lambda p: os.mkfifo(p), lambda p: p.mkdir()],
    ids=["symlink", "dangling-symlink", "fifo", "directory"],
)
def test_a_seeded_hostname_that_is_not_a_regular_file_is_ignored(tmp_path: Path, seed) -> None:
    """Never followed or opened: a FIFO would block the boot (the run's timeout would fail this test)."""
    result, etc_hostname, seeded = run_hostname_activation(tmp_path, seed)
    assert result.returncode == 0, result.stdout + result.stderr
    assert etc_hostname.is_symlink() and etc_hostname.read_text() == BUILT_IN
    assert f"ignoring {seeded} (not a regular file)" in result.stderr


def test_every_switch_puts_the_seeded_hostname_back_after_etc(tmp_path: Path) -> None:
    """switch-to-configuration re-runs the activation: "etc" links nixpkgs' /etc/hostname again, then ours."""
    result, etc_hostname, _ = run_hostname_activation(tmp_path, writes("web-01\n"))
    assert result.returncode == 0 and etc_hostname.read_text() == "web-01\n"
    static = tmp_path / "root" / "etc-static" / "hostname"
    etc_hostname.unlink()
    etc_hostname.symlink_to(static)  # what setup-etc.pl does on the next activation
    again = activate_hostname(tmp_path)
    assert again.returncode == 0 and not etc_hostname.is_symlink() and etc_hostname.read_text() == "web-01\n"


# --- the image ------------------------------------------------------------------------------------------


def test_the_image_has_the_zvm_partitions_in_order_and_an_empty_persist() -> None:
    layout = load_layout()
    report = configured()
    repart = report["image"]["repart"]
    assert report["image"]["fileName"] == "main.raw"
    assert repart["sectorSize"] == 512  # OVMF boots 512-byte sectors only
    parts = repart["partitions"]
    assert sorted(parts) == list(parts) == ["10-esp", "20-nix", "30-persist"]
    esp, nix, persist = (parts[k] for k in ("10-esp", "20-nix", "30-persist"))
    assert (esp["repartConfig"]["Type"], esp["repartConfig"]["Format"], esp["repartConfig"]["Label"]) == ("esp", "vfat", "BOOT")
    assert esp["contents"]["/EFI/BOOT/BOOTX64.EFI"].endswith("/lib/systemd/boot/efi/systemd-bootx64.efi")
    assert (nix["repartConfig"]["Format"], nix["repartConfig"]["Label"]) == ("ext4", "nix")
    # Mounted at /nix: the store at /store and the database at /var/nix inside the partition.
    assert nix["nixStorePrefix"] == "/store" and "/var/nix" in nix["contents"]
    assert nix["storePaths"] == [report["image"]["toplevelPath"]]
    assert (persist["repartConfig"]["Format"], persist["repartConfig"]["Label"]) == (layout.fs_type, layout.label)
    assert persist["contents"] == {} and persist["storePaths"] == []  # zvm-provision seeds it
    uuids = [p["repartConfig"]["UUID"] for p in parts.values()]
    assert len(set(uuids)) == 3 and repart["seed"] not in uuids
    sizes = [mib(p["repartConfig"]["SizeMinBytes"]) for p in parts.values()]
    assert sizes == [mib(p["repartConfig"]["SizeMaxBytes"]) for p in parts.values()]
    assert sum(sizes) + 1 == 20 * 1024  # 20 GiB virtual, 1 MiB for the GPT and alignment
    assert any(o.startswith("hash_seed=") for o in ",".join(repart["mkfsOptions"]["ext4"]).split(","))


def test_the_flake_outputs_build_from_the_one_configuration() -> None:
    outputs = configured()["outputs"]
    assert outputs["nixosConfigurations"] == ["zvm"]
    assert {"image", "toplevel", "zvm-provision", "default"} <= set(outputs["packages"])
    assert outputs["imagePackage"] == outputs["imageOfConfiguration"]
    assert {"boot", "toplevel", "zvm-provision"} <= set(outputs["checks"])
    for app in outputs["apps"].values():
        assert app["type"] == "app" and app["program"].endswith("/bin/zvm-provision")
    modules = {p.stem for p in (NIX_DIR / "modules").glob("*.nix")}
    assert set(outputs["nixosModules"]) == modules | {"default"}  # tests/nix/test_nix_modules.py uses them


def test_nix_fmt_is_nixfmt_tree_and_the_formatting_check_reads_every_nix_file(tmp_path: Path) -> None:
    """`formatter` is nixfmt-tree (nixfmt's README's advice for `nix fmt`), leaving the vendored nixpkgs files
    alone; packages.formatting's script, run here with a recording `nixfmt`, checks every .nix file but the
    stand-in nixpkgs (nix/tests/nixpkgs). It
    is not among the checks: nixfmt never ran over this tree, and `nix flake check` must not fail on style."""
    assert "formatting" not in evaluated()["flakeCheck"]["checks"]
    formatting = evaluated()["formatting"]
    assert formatting["formatter"]["name"] == "nixfmt-tree" and formatting["formatter"]["mainProgram"] == "treefmt"
    assert "nix/tests/nixpkgs/vendored/*" in formatting["formatter"]["treefmtSettings"]["formatter"]["nixfmt"]["excludes"]
    fake = tmp_path / "bin" / "nixfmt"
    fake.parent.mkdir()
    fake.write_text(f'#!/bin/sh\nfor f in "$@"; do echo "$f"; done >> {tmp_path}/checked\n')
    fake.chmod(0o755)
    script = re.sub(r"^cd /nix/store/\S+", f"cd {NIX_DIR}", formatting["check"], flags=re.M)
    result = subprocess.run(["bash", "-euc", script], env={"PATH": f"{fake.parent}:{os.environ['PATH']}", "out": str(tmp_path / "out")},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    checked = (tmp_path / "checked").read_text().split()
    assert "--check" in checked
    stand_ins = NIX_DIR / "tests" / "nixpkgs"  # nixpkgs' text and mirrors of it, not this project's style
    expected = {f"./{p.relative_to(NIX_DIR)}" for p in NIX_DIR.rglob("*.nix") if not p.is_relative_to(stand_ins)}
    assert expected and not any("nixpkgs" in p for p in expected)
    assert set(checked) - {"--check"} == expected

