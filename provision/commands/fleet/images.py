"""Which images a fleet command works on: files, folders (their disk images) or a batch report.json (the
images it made), in the order given, each once. And whether one is in use, asked before a shared launch."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from provision.core.disk import ImageInfo
from provision.core.text import shown
from provision.errors import UsageError
from provision.host.reading import read_small_file

IMAGE_SUFFIXES = (".qcow2", ".raw", ".img")
MAX_REPORT_BYTES = 64 << 20
MADE = ("seeded", "skipped")  # report.json statuses of an image that exists and is complete


def gather_images(given: Sequence[Path]) -> list[Path]:
    """Every image named: a file as it is, a folder's *.qcow2, *.raw and *.img (not hidden ones: batch's
    temporary copies), a report.json's made images. UsageError when nothing is left."""
    found: dict[str, Path] = {}
    for item in given:
        if item.is_dir():
            paths = sorted(p for p in item.iterdir()
                           if p.suffix in IMAGE_SUFFIXES and not p.name.startswith(".") and not p.is_dir())
            if not paths:
                raise UsageError(f"{item} holds no disk image ({', '.join(IMAGE_SUFFIXES)})")
        elif item.suffix == ".json":
            paths = report_images(item)
        else:
            paths = [item]
        for path in paths:
            found.setdefault(os.path.realpath(path), path)
    if not found:
        raise UsageError("no image given")
    return list(found.values())


def report_images(report: Path) -> list[Path]:
    """The images a batch report.json lists as made (seeded, or kept as complete), relative ones from its folder."""
    data = read_small_file(report, MAX_REPORT_BYTES, "batch report")  # missing, unreadable, too big: exit 2
    try:
        users = json.loads(data)["users"]
        paths = [user["image"] for user in users if user.get("status") in MADE]
        if not all(isinstance(p, str) for p in paths):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        raise UsageError(f"{report} is not a batch report.json (no users with their images)") from None
    if not paths:
        raise UsageError(f"{report} lists no image that was made")
    return [report.parent / p for p in paths]  # an absolute path stays as it is


def in_use(info: ImageInfo) -> str | None:
    """Why the image cannot be opened because another process (a running VM) holds it, else None. One image
    in use would stop a whole shared launch, so each is asked first (qemu-img takes the same locks)."""
    try:
        result = subprocess.run(["qemu-img", "info", "-f", info.format, str(info.path)], capture_output=True,
                                text=True, timeout=60, check=False, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None  # the launch will say what is wrong
    if result.returncode != 0 and "lock" in result.stderr:
        return (f"{shown(str(info.path))} is in use by another process: a running VM, or another zvm-provision "
                "on the same image; shut the VM down or let that run finish, and try again")
    return None
