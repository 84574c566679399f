"""Images ready to hand over: which file format an output is written in, and what a recipient is told to verify
it (format, size, sha256). Seeding always happens on a qcow2; the conversion to the chosen format comes last
(guest.convert, through guest.qemuimg).

Which format for whom: a compressed qcow2 travels best (a raw image loses its sparseness in transit); VMware
takes vmdk, VirtualBox vdi; raw is for dd and for clouds that import raw disks.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from provision.errors import UsageError


class OutputFormat(StrEnum):
    QCOW2 = "qcow2"
    RAW = "raw"
    VMDK = "vmdk"
    VDI = "vdi"


FORMAT_CHOICES = tuple(f.value for f in OutputFormat)
# Formats the tool itself can open again (guest.diskformat probes them): resume inspects those; the others are
# judged by report.json's record of them (their sha256 must still match).
INSPECTABLE_FORMATS = (OutputFormat.QCOW2, OutputFormat.RAW)


@dataclass(frozen=True)
class OutputSpec:
    """How an output image is written: its format, and (qcow2 only) compressed clusters."""

    format: OutputFormat = OutputFormat.QCOW2
    compress: bool = False

    @property
    def suffix(self) -> str:
        return f".{self.format.value}"

    @property
    def converted(self) -> bool:
        """Whether the seeded qcow2 must be converted (a plain qcow2 is used as it is)."""
        return self.compress or self.format != OutputFormat.QCOW2

    @property
    def inspectable(self) -> bool:
        return self.format in INSPECTABLE_FORMATS

    def describe(self) -> str:
        return f"compressed {self.format.value}" if self.compress else self.format.value


_SUFFIXES = {".qcow2": OutputFormat.QCOW2, ".raw": OutputFormat.RAW, ".img": OutputFormat.RAW,
             ".vmdk": OutputFormat.VMDK, ".vdi": OutputFormat.VDI}


def output_spec_for_file(name: str, format_name: str | None, compress: bool) -> OutputSpec:
    """seed --output OUT: the format is --format's, or OUT's suffix says it (qcow2 when it says none); a
    suffix that names another format than --format is refused, so a file never lies about its content."""
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    named = _SUFFIXES.get(suffix)
    spec = output_spec(format_name or (named.value if named else None), compress)
    if named is not None and named != spec.format:
        raise UsageError(f"{name} ends in {suffix}, but --format is {spec.format.value}",
                         hint=f"name it with {spec.suffix}, or drop --format")
    return spec


def output_spec(format_name: str | None, compress: bool, *, overlay: bool = False) -> OutputSpec:
    """--format and --compress (and batch's --overlay) checked together; UsageError (exit 2) otherwise."""
    name = (format_name or OutputFormat.QCOW2.value).strip().lower()
    if name not in FORMAT_CHOICES:
        raise UsageError(f"--format must be one of {', '.join(FORMAT_CHOICES)}, not {format_name!r}")
    spec = OutputSpec(OutputFormat(name), compress)
    if compress and spec.format != OutputFormat.QCOW2:
        raise UsageError(f"--compress writes compressed qcow2; it cannot be combined with --format {name}",
                         hint="drop --compress, or --format")
    if overlay:
        check_overlay(spec)
    return spec


def check_overlay(spec: OutputSpec) -> None:
    """batch --overlay writes qcow2 overlays backed by the base: nothing to convert or compress."""
    if spec.converted:
        option = "--compress" if spec.compress else f"--format {spec.format.value}"
        raise UsageError(
            f"--overlay makes qcow2 overlays backed by the base; it cannot be combined with {option} "
            "(an overlay is not a file to hand over alone)",
            hint="drop --overlay to write standalone images",
        )


@dataclass(frozen=True)
class OutputRecord:
    """What a recipient checks a downloaded image against (report.json, the seed summary)."""

    format: OutputFormat
    compressed: bool
    size: int  # bytes, as a download transfers them (st_size)
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"format": self.format.value, "compressed": self.compressed, "size": self.size, "sha256": self.sha256}

    @staticmethod
    def json_fields(record: OutputRecord | None) -> dict[str, Any]:
        """The fields of an image's entry; null when no image was made."""
        if record is None:
            return {"format": None, "compressed": None, "size": None, "sha256": None}
        return record.to_json()
