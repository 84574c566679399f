"""The real KVM path, where this host's KVM works: every other "KVM" test runs TCG behind a stand-in hypervisor.

Where /dev/kvm is missing, or a kernel does not boot under KVM within the probe's time (nested KVM hangs on some
hosts and aborts qemu on others), the test skips and says why; scripts/test.sh's closing line counts it. The probe
boots the host's kernel under qemu with KVM until it panics for want of a root (about a second where KVM works,
10 s under TCG here), with a timeout, so a hanging KVM cannot hang the run.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

from tests.support.command import zvm

PROBE_TIMEOUT = 30  # seconds; a working KVM boots to the panic in one or two


@cache
def kvm_verdict() -> str | None:
    """None where KVM boots a kernel here, else why not."""
    if not os.path.exists("/dev/kvm"):
        return "/dev/kvm does not exist"
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return "/dev/kvm is not usable by this user"
    qemu = shutil.which("qemu-system-x86_64")
    kernels = sorted(glob.glob("/boot/vmlinuz-*"))
    if qemu is None or not kernels:
        return "no qemu-system-x86_64 or no kernel in /boot to probe KVM with"
    try:
        done = subprocess.run(
            [qemu, "-accel", "kvm", "-machine", "q35", "-m", "256", "-display", "none", "-nodefaults",
             "-no-reboot", "-serial", "stdio", "-kernel", kernels[-1], "-append", "console=ttyS0 panic=-1"],
            capture_output=True, text=True, timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return f"KVM hangs on this host (a kernel did not boot under it within {PROBE_TIMEOUT} s)"
    if "Kernel panic" not in done.stdout:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return f"KVM does not boot a kernel on this host (qemu exited {done.returncode}: {last})"
    return None


@pytest.fixture(scope="session")
def working_kvm() -> None:
    why = kvm_verdict()
    if why is not None:
        pytest.skip(f"the real KVM path was not run: {why}")


@pytest.mark.appliance
def test_seeding_and_inspecting_under_real_kvm(working_kvm, sample_disk: Path, tmp_path: Path):
    key = tmp_path / "alice.pub"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "alice@kvm", "-f", str(tmp_path / "alice")],
                   check=True)
    seeded = zvm(sample_disk, "--accel", "kvm", "--no-password", "--ssh-key", key, "--yes")
    assert seeded.returncode == 0, seeded.stderr
    shown = zvm("inspect", sample_disk, "--accel", "kvm", "--json")
    assert shown.returncode == 0, shown.stderr
    assert "alice@kvm" in shown.stdout
