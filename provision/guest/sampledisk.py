"""A blank disk with the zvm partition layout: GPT with ESP (vfat), nix (ext4) and persist (ext4).

Used by `zvm-provision sample-disk`, by tests and by benchmarks: the real image comes from the flake.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
from pathlib import Path

from provision.errors import ApplianceError, UsageError

SECTOR = 512
MIB_SECTORS = (1 << 20) // SECTOR
ESP_GPT_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"  # EFI system partition (sgdisk EF00)
ESP_MAX_MIB = 512
ESP_MIN_MIB = 8
MIN_FS_MIB = 16  # nix and persist each get at least this much
NIX_SHARE_PERCENT = 60

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """'20G' -> bytes. Binary units K, M, G, T (an optional B or iB is allowed); a bare number is bytes."""
    match = _SIZE_RE.match(text or "")
    if not match:
        raise UsageError(f"not a size: {text!r} (use a number with K, M, G or T, e.g. 20G)")
    value = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if value <= 0:
        raise UsageError(f"the size must be more than zero, not {text!r}")
    return value


def plan_partitions(size: int):
    """The zvm layout for a disk of `size` bytes, as image.NewPartition values (1 MiB aligned)."""
    from provision.guest.appliance import NewPartition
    from provision.core.layout import load_layout

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


def create_sample_disk(path: Path, size: str = "20G", *, accel: str = "auto") -> None:
    """Create a blank qcow2 at `path` with the zvm layout, in one appliance launch.

    The disk is built under a temporary name in the same folder and linked to `path` only when complete,
    so an interrupted run never leaves a half-made disk under the final name. An existing `path` is
    never overwritten.
    """
    from provision.guest.diskformat import probe_image
    from provision.guest.appliance import Appliance

    path = Path(path)
    size_bytes = parse_size(size)
    partitions = plan_partitions(size_bytes)
    if os.path.lexists(path):
        raise UsageError(f"{path} already exists; choose another name (it is never overwritten)")
    if not path.parent.is_dir():
        raise UsageError(f"{path.parent}: no such folder")

    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(6)}"
    try:
        try:
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", str(tmp), str(size_bytes)],
                check=True,
                capture_output=True,
                text=True,
            )
        except FileNotFoundError:
            raise ApplianceError("qemu-img is not installed", hint="apt-get install qemu-utils") from None
        except subprocess.CalledProcessError as exc:
            raise ApplianceError(f"qemu-img create failed: {exc.stderr.strip()}") from None
        with Appliance([probe_image(tmp)], readonly=False, accel=accel) as appliance:
            appliance.launch()
            appliance.create_gpt_layout(0, partitions)
            appliance.close()
        try:
            os.link(tmp, path)  # fails instead of replacing a file that appeared meanwhile
        except FileExistsError:
            raise UsageError(f"{path} already exists; choose another name (it is never overwritten)") from None
        except OSError:
            if os.path.lexists(path):
                raise
            os.rename(tmp, path)  # a filesystem without hard links
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
