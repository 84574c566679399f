"""`zvm-provision inspect IMAGE...`: many images audited read-only, several per appliance launch. Each row is
inspect's own report of one image (guest.report.inspect_disk, the contract check, the keys a
`--find-key` names), or why the image could not be opened; one image's failure never stops the others."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from provision.commands.batch.model import MAX_DISKS_PER_APPLIANCE, BatchProgress
from provision.commands.fleet.chunks import run_in_chunks
from provision.core.contractcheck import check_image_contract
from provision.core.credentials.sshkeys import AuthorizedKey
from provision.core.disk import ImageInfo
from provision.core.fleetkeys import matching_keys
from provision.core.inspection import InspectReport
from provision.core.keyremoval import KeySelector
from provision.guest.appliance import Appliance
from provision.guest.launch import Accel
from provision.guest.report import inspect_disk


@dataclass
class AuditRow:
    path: Path
    report: InspectReport | None = None  # None: the image could not be opened (`error` says why)
    problems: list[str] = field(default_factory=list)  # departures from the contract
    matched: tuple[AuthorizedKey, ...] = ()  # the image's keys that --find-key named
    error: str | None = None


class _Audit:
    def __init__(self, rows: dict[Path, AuditRow], find: Sequence[KeySelector], progress: BatchProgress) -> None:
        self.rows = rows
        self.find = find
        self.progress = progress

    def prepare(self, path: Path, info: ImageInfo) -> ImageInfo:
        return info  # read-only: libguestfs writes only to a throw-away overlay

    def disk(self, appliance: Appliance, index: int, path: Path, info: ImageInfo) -> None:
        report = inspect_disk(appliance, index, info)
        row = self.rows[path]
        row.report, row.problems = report, check_image_contract(report)
        # a trusted user CA is found as a key is (its fingerprint or comment)
        row.matched = matching_keys((*report.authorized_keys, *report.certificates.user_cas), self.find)
        self.progress.finished(path.name, True)

    def failed(self, path: Path, message: str) -> None:
        row = self.rows[path]
        if row.report is None:  # a report read before a failed shutdown still holds
            row.error = message
            self.progress.finished(path.name, False, message)

    def closed(self, paths: Sequence[Path]) -> None:
        pass


def audit_images(paths: Sequence[Path], *, accel: Accel, progress: BatchProgress, find: Sequence[KeySelector] = (),
                 jobs: int = 0, max_disks: int = MAX_DISKS_PER_APPLIANCE, debug: bool = False) -> list[AuditRow]:
    """One row per image, in the order given. Ctrl-C: KeyboardInterrupt once every appliance is shut down."""
    rows = {path: AuditRow(path) for path in paths}
    try:
        run_in_chunks(list(paths), _Audit(rows, find, progress), readonly=True, accel=accel, jobs=jobs,
                      max_disks=max_disks, progress=progress, verb="inspecting", debug=debug)
    finally:
        progress.stop()
    return [rows[path] for path in paths]
