"""Which images a fleet command works on: files, folders (their disk images) or a batch report.json (the
images it made), in the order given, each once."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

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
