"""batch-report's check that every image is the file its shard recorded: size and sha256, read in full.

report.json is what recipients run `sha256sum -c` against, so batch-report certifies only hashes it has
checked: an image changed, replaced or lost after its shard finished, or a report whose sha256 was edited,
stops the merge (exit 1, each mismatch named, nothing written). Each image sits beside its shard's report
(batch writes both into its --out-dir), so it is looked for there by the file name the report gives, whatever
folder the shard ran in.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from provision.core.text import shown
from provision.errors import ProvisionError
from provision.guest.convert import size_and_sha256

class NothingWritten(ProvisionError):
    """batch-report stopped before writing anything (exit 1): a headline, then each problem on its line."""

    def __init__(self, headline: str, problems: list[str], hint: str) -> None:
        super().__init__("\n".join([f"{headline}; nothing was written:", *(f"  {p}" for p in problems)]), hint=hint)
        self.problems = problems


class ImagesDoNotMatch(NothingWritten):
    """Some image is not what its shard's report says."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the images do not match their shards' reports", problems,
                         "run the shards of those rows again, or find out who changed the images; --no-verify "
                         "merges without this check")


def verify_images(shards: Iterable[tuple[Path, str, Iterable[Mapping[str, Any]]]]) -> int:
    """Check every entry that records a sha256, for each (folder, report file name, entries); the number of
    images checked, or ImagesDoNotMatch naming every mismatch."""
    problems: list[str] = []
    checked = 0
    for folder, report, entries in shards:
        for entry in entries:
            if isinstance(entry.get("sha256"), str):
                checked += 1
                problem = _mismatch(folder, report, entry)
                if problem:
                    problems.append(f"{shown(str(entry['name']), 80)}: {problem}")
    if problems:
        raise ImagesDoNotMatch(problems)
    return checked


def _mismatch(folder: Path, report: str, entry: Mapping[str, Any]) -> str | None:
    name = os.path.basename(str(entry.get("image") or ""))
    if name in ("", ".", ".."):
        return f"{report} records no image file name"
    image = folder / name
    try:
        size, digest = size_and_sha256(image)
    except FileNotFoundError:
        return f"{image} is missing ({report} records it)"
    except OSError as exc:
        return f"{image} cannot be read ({exc.strerror})"
    recorded_size, recorded_sha = entry.get("size"), str(entry["sha256"])
    if size != recorded_size:
        return (f"{image} does not match {report} (its size is {size} bytes, not the recorded "
                f"{shown(str(recorded_size), 20)})")
    if digest != recorded_sha.lower():
        return f"{image} does not match {report} (its sha256 is not the recorded {shown(recorded_sha[:12])}...)"
    return None


