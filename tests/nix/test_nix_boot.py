"""checks.x86_64-linux.boot (nix/tests/boot.nix), as far as it can be run without nixpkgs or KVM: its node
evaluates with the real module system and a stand-in qemu-vm.nix that builds fileSystems as nixpkgs' does
(no failed assertion, the image's own mounts plus the driver's 9p shares, the driver's machine name is the
hostname), and the Python test script it generates is run against a recording stand-in of the test driver
(tests/nix/driver.py) whose copy_from_host works only through the shared directory the node mounts, and
whose VM answers from the evaluated node and the seeded disk. Building the image and booting it needs a
connected machine with KVM (see nix/README.md)."""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
import sys
import uuid
from functools import cache
from pathlib import Path

import pytest

from provision.core.layout import load_layout
from tests.nix.driver import Disk, Machine, RequestedAssertionFailed, run_test_script
from tests.nix.support import NIX_DIR, configured, guest_path, nix_eval, require_inputs

pytestmark = pytest.mark.nix


@cache
def boot_test() -> dict:
    inputs = require_inputs()
    return nix_eval(f"import ./nix/tests/eval-boot.nix {{ inputs = /. + {json.dumps(str(inputs))}; }}")  # type: ignore[return-value]


def test_the_node_is_the_zvm_system_booting_from_its_own_disk() -> None:
    test = boot_test()
    assert test["name"] == "zvm-boot"
    assert test["nodes"] == [test["hostName"]] == ["zvm"]  # the driver's machine name is the VM's hostname
    assert test["failedAssertions"] == []
    assert [w for w in test["warnings"] if "never updates itself" not in w] == []  # no network in the test
    fields = ("device", "fsType", "neededForBoot")
    shipped = {k: {f: v[f] for f in fields} for k, v in configured()["fileSystems"].items()}
    booted = {k: {f: v[f] for f in fields} for k, v in test["fileSystems"].items()}
    # The image's own mounts, plus only the driver's 9p shares (nothing of the framework's default disk).
    shares = {s["target"]: tag for tag, s in test["sharedDirectories"].items()}
    assert {k: v for k, v in booted.items() if k not in shares} == shipped
    assert {k: (v["device"], v["fsType"]) for k, v in booted.items() if k in shares} == {
        target: (tag, "9p") for target, tag in shares.items()
    }
    assert test["imageFile"] == configured()["image"]["fileName"]


def test_the_vm_has_the_firmware_the_image_boots_with() -> None:
    """The image's only boot loader is systemd-boot, an EFI program: without OVMF (useEFIBoot) SeaBIOS finds
    nothing to boot."""
    firmware = boot_test()["firmware"]
    assert firmware["systemdBoot"] and not firmware["grub"]
    assert firmware["efi"] is True


def test_the_driver_can_reach_the_vm_through_its_shared_directory() -> None:
    """qemu-vm.nix mounts virtualisation.sharedDirectories through virtualisation.fileSystems; forcing that
    option to the image's mounts alone removed /tmp/shared, and with it copy_from_host and copy_from_vm."""
    mounts = boot_test()["fileSystems"]
    assert mounts.get("/tmp/shared", {}).get("device") == "shared"
    assert "SHARED_DIR" in boot_test()["sharedDirectories"]["shared"]["source"]


SEEDED = re.compile(r"/nix/store/[a-z0-9]{32}-zvm-boot-test-seeded")


def _key_pair(folder: Path, name: str, comment: str) -> tuple[bytes, bytes]:
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path.read_bytes(), path.with_suffix(".pub").read_bytes()


def seeded_disk(out: Path) -> Disk:
    """What seed-image.sh leaves (seed.json, the user's key pair) and the persist partition it seeded, written
    where the Python side's contract says (the appliance test below runs the real script). The keys are real
    and the machine-id random: the stand-in VM derives what it answers from these files (ssh-keygen on the
    host key found where sshd looks, the machine-id file impermanence binds), never from seed.json."""
    layout = load_layout()
    keys = out.parent / "keys"
    keys.mkdir()
    host_private, host_public = _key_pair(keys, "ssh_host_ed25519_key", "")
    fingerprint = subprocess.run(["ssh-keygen", "-lf", "-"], input=host_public, capture_output=True,
                                 check=True).stdout.split()[1].decode()
    seed = {"hostname": "zvm-boot-test", "machine_id": uuid.uuid4().hex, "host_key": {"fingerprint": fingerprint}}
    (out / "seed.json").write_text(json.dumps(seed))
    private, public = _key_pair(out, "id_ed25519", "zvm-boot-test")
    (out / "zvm.qcow2").touch()
    path = lambda role: guest_path(layout, layout.role(role).path)  # noqa: E731
    persist = {
        path("password-hash"): (b"$y$j9T$test\n", "0:0 600"),
        path("authorized-keys"): (public, "1000:100 600"),
        path("host-key"): (host_private, "0:0 600"),
        path("host-key-public"): (host_public, "0:0 644"),
        path("machine-id"): (seed["machine_id"].encode() + b"\n", "0:0 444"),
        path("hostname"): (b"zvm-boot-test\n", "0:0 644"),
        path("seed-record"): (b'{"operator": "zvm-boot-test"}\n', "0:0 600"),
    }
    return Disk(persist)


def run_boot_test(tmp_path: Path, node: dict | None = None) -> tuple[Machine, list[str]]:
    test = boot_test() if node is None else node
    seeded_dir = tmp_path / "seeded"
    seeded_dir.mkdir()
    disk = seeded_disk(seeded_dir)
    script = SEEDED.sub(str(seeded_dir), test["testScript"])
    assert str(seeded_dir) in script
    driver_tmp = tmp_path / "driver"
    driver_tmp.mkdir()
    return run_test_script(script, test, driver_tmp, {str(seeded_dir): disk, "/nix/store/": Disk({})})


def _other_key(disk: Disk, role: str, folder: Path) -> None:
    private, public = _key_pair(folder, "other", "someone-else")
    path = guest_path(load_layout(), load_layout().role(role).path)
    disk.persist[path] = ((public if role == "authorized-keys" else private), disk.persist[path][1])


@pytest.mark.parametrize(("spoil", "why"), [
    (lambda disk, folder: _other_key(disk, "host-key", folder), "another host key seeded than seed.json names"),
    (lambda disk, _: disk.persist.update({p: (b"garbled\n", m) for p, (_, m) in disk.persist.items()
                                       if p.endswith("ssh_host_ed25519_key")}), "a host key sshd cannot read"),
    (lambda disk, _: disk.persist.update({p: (uuid.uuid4().hex.encode() + b"\n", m) for p, (_, m) in disk.persist.items()
                                       if p.endswith("machine-id")}), "another machine-id seeded"),
    (lambda disk, folder: _other_key(disk, "authorized-keys", folder), "another user key seeded"),
])
def test_the_stand_in_answers_from_the_seeded_files_so_a_seeding_error_fails_the_script(tmp_path: Path, monkeypatch,
                                                                                       spoil, why: str) -> None:
    """The stand-in computes its answers (ssh-keygen on the host key found, the machine-id file, the login) from
    what was seeded, not from what the test expects: a disk seeded wrongly fails the boot test's checks."""
    original = seeded_disk

    def spoiled(out: Path) -> Disk:
        disk = original(out)
        spoil(disk, tmp_path)
        return disk

    monkeypatch.setattr(sys.modules[__name__], "seeded_disk", spoiled)
    with pytest.raises((RequestedAssertionFailed, AssertionError)):
        run_boot_test(tmp_path)


def test_the_test_script_runs_through_against_the_recording_driver(tmp_path: Path) -> None:
    machine, done = run_boot_test(tmp_path)
    assert len(done) == 9 and done[0].startswith("unseeded") and done[-1].startswith("after a reboot")
    starts = [arg for kind, arg in machine.log if kind == "start"]
    assert len(starts) == 3 and starts[0].endswith("unseeded.qcow2") and starts[1] == starts[2]
    copies = [arg for kind, arg in machine.log if kind == "copy_from_host"]
    assert copies == [f"{tmp_path}/seeded/id_ed25519 -> /root/id_ed25519"] * 2  # once per seeded boot
    # The checks the issue asks for were sent to the VM.
    commands = [arg for kind, arg in machine.log if kind == "execute"]
    assert sum("zvm@localhost id -un" in c for c in commands) == 2
    # The overlays were made in a folder of the script's own, gone once the script has ended.
    assert starts[0].startswith(f"{tmp_path}/driver/zvm-boot-")
    assert not [p.name for p in (tmp_path / "driver").iterdir() if p.name.startswith("zvm-boot-")]
    assert any("PubkeyAuthentication=no" in c for c in commands)
    assert commands.count("command -v sudo") == 1 and commands.count("id -nG zvm") == 1


@pytest.mark.parametrize("shared", [True, False])
def test_copy_from_vm_passes_through_the_shared_directory(tmp_path: Path, monkeypatch, shared: bool) -> None:
    """The stand-in's copy_from_vm (the driver's body) brings a file out only through the mounted share."""
    node = copy.deepcopy(boot_test())
    if not shared:
        node["fileSystems"].pop("/tmp/shared")
    monkeypatch.setenv("NIX_DISK_IMAGE", "disk")
    machine = Machine("zvm", node, {"disk": Disk({})}, tmp_path)
    machine.start()
    machine.succeed("echo kept > /var/log/zvm-boot-test")
    if shared:
        machine.copy_from_vm("/var/log/zvm-boot-test", "logs")
        assert (machine.out_dir / "logs" / "zvm-boot-test").read_text() == "kept\n"
    else:
        with pytest.raises(FileNotFoundError):  # the VM wrote it to its own /tmp/shared, the host sees nothing
            machine.copy_from_vm("/var/log/zvm-boot-test", "logs")


@pytest.mark.parametrize(
    ("broken", "why"),
    [
        (lambda n: n["fileSystems"].pop("/tmp/shared"), "copy_from_host needs /tmp/shared mounted"),
        (lambda n: n["sharedDirectories"]["shared"].update(source='"$TMPDIR"/elsewhere'), "the share is not $SHARED_DIR"),
        (lambda n: n["persistence"]["/persist"]["directories"].remove("/var/log"), "/var/log survives the reboot"),
        (lambda n: n["persistence"]["/persist"]["files"].remove("/etc/machine-id"), "the machine-id is the seeded one"),
        (lambda n: n["openssh"]["settings"].update(PasswordAuthentication=True), "a password is never asked for"),
        (lambda n: n["openssh"].update(authorizedKeysFiles=["%h/.ssh/authorized_keys"]), "the seeded key logs in"),
        (lambda n: n.update(sudo=True), "there is no sudo"),
        (lambda n: n["zvmUser"]["extraGroups"].append("wheel"), "zvm is not in wheel"),
        (lambda n: n["openssh"].update(hostKeys=["/etc/ssh/ssh_host_ed25519_key"]), "the seeded host key"),
    ],
)
def test_the_recording_driver_fails_the_script_for_a_broken_node(tmp_path: Path, broken, why: str) -> None:
    """The stand-in is not a yes-machine: each breakage of the node makes the script fail."""
    node = copy.deepcopy(boot_test())
    broken(node)
    with pytest.raises((RequestedAssertionFailed, AssertionError)):
        run_boot_test(tmp_path, node)


@pytest.mark.appliance
def test_seeding_script_seeds_a_disk(sample_disk_template: Path, tmp_path: Path) -> None:
    """The boot test's seeding script, run here with this checkout's zvm-provision on a sample disk under the
    umask a Nix builder has (022): it must pass the tool's own checks (a private password file...) and leave
    the JSON the test script reads."""
    raw = tmp_path / "main.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(sample_disk_template), str(raw)], check=True)
    out = tmp_path / "out"
    tools = Path(sys.executable).parent  # the venv's zvm-provision
    result = subprocess.run(
        ["bash", "-c", 'umask 022; exec bash "$0" "$@"', str(NIX_DIR / "tests" / "seed-image.sh"), str(raw), str(out)],
        env={**os.environ, "PATH": f"{tools}:{os.environ['PATH']}", "ZVM_TEST_PASSWORD": "zvm-boot-test-password",
             "ZVM_PROVISION_ACCEL": "tcg", "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    seed = json.loads((out / "seed.json").read_text())
    assert seed["changed"] is True
    assert len(seed["machine_id"]) == 32
    assert seed["host_key"]["fingerprint"].startswith("SHA256:")
    assert seed["hostname"] == "zvm-boot-test"  # what boot.nix expects the seeded boots to be called
    assert seed["record"]["entry"]["operator"] == "zvm-boot-test"
    public = (out / "id_ed25519.pub").read_text().split()[1]
    assert [key["fingerprint"] for key in seed["authorized_keys"]] == [
        subprocess.run(["ssh-keygen", "-lf", str(out / "id_ed25519.pub")], capture_output=True, text=True,
                       check=True).stdout.split()[1]
    ]
    assert public and "zvm-boot-test-password" not in result.stdout + result.stderr
