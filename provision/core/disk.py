"""What is known of a disk image: its header (guest.diskformat reads it before anything else touches the file)
and its partitions (the appliance lists them). Plain data, shown by inspect and the wizard."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from provision.core.text import shown

ImageFormat = Literal["qcow2", "raw"]


@dataclass(frozen=True)
class ImageInfo:
    path: Path
    format: ImageFormat
    virtual_size: int
    file_size: int
    qcow2_version: int | None
    backing_file: str | None  # as written in the header (not resolved)
    read_only_file: bool
    backing_format: str | None = None  # the header's word for the backing file, checked against the file


@dataclass(frozen=True)
class Partition:
    device: str
    label: str | None  # read from the image: untrusted text
    fs_type: str | None
    size: int

    def describe(self) -> str:
        label = "no label" if self.label is None else f"label '{shown(self.label, 64)}'"
        fs_type = "unknown filesystem" if self.fs_type is None else shown(self.fs_type, 64)
        return f"{self.device} ({label}, {fs_type}, {self.size} bytes)"
