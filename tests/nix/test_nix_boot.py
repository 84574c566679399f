"""checks.x86_64-linux.boot (nix/tests/boot.nix), as far as it can be checked without nixpkgs or KVM: its node
evaluates with the real module system (no failed assertion, the image's own mounts, the driver's machine
name is the hostname), and the test script it generates is valid Python that makes every check the issue
asks for. Building the image and booting it needs a connected machine with KVM (see nix/README.md)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from provision.core.layout import load_layout
from tests.nix.support import NIX_DIR, configured, nix_eval, require_inputs

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
    shipped = {k: {f: v[f] for f in ("device", "fsType", "neededForBoot")} for k, v in configured()["fileSystems"].items()}
    assert test["fileSystems"] == shipped
    assert test["imageFile"] == configured()["image"]["fileName"]


def script() -> str:
    return boot_test()["testScript"]


def test_the_test_script_is_valid_python_driving_the_zvm_machine_only() -> None:
    tree = ast.parse(script())
    machines = {
        node.func.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr in {"start", "succeed", "fail", "execute", "shutdown", "wait_for_unit", "copy_from_host"}
        and isinstance(node.func.value, ast.Name)
    }
    assert machines == {"zvm"}


def test_the_test_script_checks_what_the_issue_asks() -> None:
    text = script()
    layout = load_layout()
    # SSH with the seeded key works; password login is refused.
    assert 'zvm@localhost id -un").strip() == "zvm"' in text
    assert "PubkeyAuthentication=no" in text and '"Permission denied (publickey)" in out' in text
    # The host key and the machine-id are the seeded ones, before and after the reboot.
    assert text.count('== seed["host_key"]["fingerprint"]') == 2
    assert text.count('== seed["machine_id"]') == 2
    # zvm is not in wheel, and there is no sudo.
    assert '"wheel" not in groups' in text and 'zvm.fail("command -v sudo")' in text
    # Without a setup key the Netbird enrolment unit is skipped (its condition fails).
    assert f"test ! -e {layout.guest_path(layout.role('netbird-setup-key').path)}" in text
    assert "ConditionResult zvm-netbird-enrol.service" in text and 'result == "no"' in text
    # The hostname on every boot: the image as built (unseeded) is zvm; both seeded boots have the seeded name.
    hostname_file = layout.guest_path(layout.role("hostname").path)
    assert 'zvm.succeed("hostname").strip() == name' in text and 'zvm.succeed("cat /etc/hostname").strip() == name' in text
    unseeded, seeded = text.index('os.environ["NIX_DISK_IMAGE"] = unseeded_disk'), text.index('os.environ["NIX_DISK_IMAGE"] = disk')
    first_boot, reboot = text.index("boot()\n", seeded), text.index("zvm.shutdown()", seeded)
    assert unseeded < text.index(f"test ! -e {hostname_file}") < text.index('hostname_is("zvm")') < seeded
    assert '"-F", "raw",' in text and '"-b", "/nix/store/' in text  # the unseeded overlay is of the built image
    assert first_boot < text.index('hostname_is(seed["hostname"])', first_boot) < reboot
    assert reboot < text.index('hostname_is(seed["hostname"])', reboot)
    assert f'zvm.succeed("cat {hostname_file}") == seed["hostname"] + "\\n"' in text
    # The seeding record is on persist, root's only, and not in the running system's tree.
    record = layout.guest_path(layout.role("seed-record").path)
    assert f"stat -c '%u:%g %a' {record}\").strip() == \"0:0 600\"" in text and 'zvm.fail("test -e /zvm-provision")' in text
    # A file outside the allowlist is gone after the reboot, one inside it is still there.
    reboot = text.index("zvm.shutdown()", seeded)  # the seeded image's reboot (the unseeded boot ends first)
    assert text.index("touch /root/outside-the-allowlist") < reboot < text.index('zvm.fail("test -e /root/outside-the-allowlist")')
    assert 'cat /var/log/zvm-boot-test").strip() == "kept"' in text[reboot:]


def test_the_image_is_seeded_by_the_flakes_own_zvm_provision() -> None:
    boot = (NIX_DIR / "tests" / "boot.nix").read_text()
    assert "bash ${./seed-image.sh} ${image} $out" in boot  # the script test_seeding_script_seeds_a_disk runs
    assert "zvm-provision\n" in boot  # the flake's own package on the seeding's PATH
    # The flake hands the test its own package and the same modules as nixosConfigurations.zvm.
    flake = (NIX_DIR / "flake.nix").read_text()
    assert "inherit lib zvm-provision;\n            modules = zvmModules;" in flake
    assert "modules = zvmModules ++ [ { nixpkgs.hostPlatform = system; } ];" in flake


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
