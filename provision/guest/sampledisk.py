"""A blank disk with the zvm partition layout: GPT with ESP (vfat), nix (ext4) and persist (ext4).

Used by `zvm-provision sample-disk`, by tests and by benchmarks: the real image comes from the flake.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

from provision.core.layout import load_layout
from provision.errors import UsageError
from provision.guest import qemuimg
from provision.guest.appliance import Appliance, NewPartition
from provision.guest.diskformat import probe_image
from provision.guest.launch import Accel, Notice

Step = Callable[[str], AbstractContextManager[object]]  # the live line around one step (ui.progress.working)
SECTOR = 512
MIB_SECTORS = (1 << 20) // SECTOR
ESP_GPT_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"  # EFI system partition (sgdisk EF00)
ESP_MAX_MIB = 512
ESP_MIN_MIB = 8
MIN_FS_MIB = 16  # nix and persist each get at least this much
NIX_SHARE_PERCENT = 60


def plan_partitions(size: int) -> list[NewPartition]:
    """The zvm layout for a disk of `size` bytes (1 MiB aligned)."""
    total_sectors = size // SECTOR
    last_usable = total_sectors - 34  # the backup GPT takes the last 33 sectors
    avail_mib = (last_usable + 1) // MIB_SECTORS - 1  # the first MiB holds the GPT
    esp_mib = min(ESP_MAX_MIB, max(ESP_MIN_MIB, avail_mib // 8))
    rest = avail_mib - esp_mib
    nix_mib = rest * NIX_SHARE_PERCENT // 100
    persist_mib = rest - nix_mib
    if min(nix_mib, persist_mib) < MIN_FS_MIB:
        raise UsageError(f"a sample disk needs at least 64M, not {size} bytes")

    layout = load_layout()
    result = []
    start = MIB_SECTORS
    for name, mib, fs_type, label, gpt_type in (
        ("esp", esp_mib, "vfat", "BOOT", ESP_GPT_TYPE),  # the flake mounts /boot by-label/BOOT
        ("nix", nix_mib, "ext4", "nix", None),
        (layout.label, persist_mib, layout.fs_type, layout.label, None),
    ):
        end = start + mib * MIB_SECTORS - 1
        result.append(NewPartition(name=name, start=start, end=end, fs_type=fs_type, label=label, gpt_type=gpt_type))
        start = end + 1
    return result


def build_sample_disk(
    path: Path, size: int, partitions: list[NewPartition], *, accel: Accel, step: Step = lambda _doing: nullcontext(),
    notice: Notice | None = None,
) -> None:
    """Make a qcow2 of `size` bytes at `path` (which must not exist) and partition and format it in one launch.
    Each step runs inside `step(what it does)` (the command's live line on a terminal: it takes 45-55 s)."""
    qemuimg.create_blank(path, size)
    with Appliance([probe_image(path)], readonly=False, accel=accel, notice=notice) as appliance:
        with step("Starting the libguestfs appliance"):
            appliance.launch()
        with step("Partitioning and formatting the disk"):
            appliance.create_gpt_layout(0, partitions)
        with step("Writing the disk out and shutting the appliance down"):
            appliance.close()
