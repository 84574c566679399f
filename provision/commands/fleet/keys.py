"""`zvm-provision keys IMAGE...`: take a key out of every image that holds it, add one to every image, or put
key Y wherever key X was, several disks per appliance launch, in place or into copies in --out-dir.

Each image goes through seed's own rules: the request (core.fleetkeys) is planned by core.plan against what
the image holds, read through a read-only mount (so an image left unchanged stays byte-identical), and
refused when nobody could log in afterwards; the writes go through PersistFS (never through a link, under a
temporary name, renamed, read back) with a seeding record entry naming the operator and the keys changed.
The images a run writes are locked as batch locks its outputs (batch.lock: one lock file per folder), so a
batch run and a keys run never write one image at once.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from provision.host import writing as hostfiles
from provision.commands.batch.lock import OutputLock
from provision.commands.batch.model import MAX_DISKS_PER_APPLIANCE, BatchProgress
from provision.commands.certoptions import CertFlags
from provision.commands.fleet.chunks import run_in_chunks
from provision.commands.fleet.renew import with_certificates
from provision.commands.flagwords import keys_refusal
from provision.commands.seed.apply import fresh_material
from provision.commands.workcopy import WorkCopy
from provision.core.apply import apply_and_verify
from provision.core.credentials.certificates import host_certificate_summary
from provision.core.credentials.sshkeys import AuthorizedKey, key_summary
from provision.core.disk import ImageInfo
from provision.core.fleetkeys import KeyChange, request_for, unchanged_reason, unmatched
from provision.core.layout import load_layout
from provision.core.plan import build_plan
from provision.core.state import read_state
from provision.errors import ExitCode, ProvisionError, UsageError
from provision.guest.appliance import Appliance
from provision.guest.diskformat import probe_image
from provision.guest.launch import Accel

REPORT_FILE = "keys-report.json"
SCHEMA_VERSION = 1


class Status(StrEnum):
    PENDING = "pending"
    CHANGED = "changed"  # with --dry-run: would change
    UNCHANGED = "unchanged"
    REFUSED = "refused"  # seed's rules said no (the last way in, an ambiguous comment): why in `reason`
    FAILED = "failed"
    INTERRUPTED = "interrupted"


@dataclass(frozen=True)
class KeysOptions:
    images: tuple[Path, ...]
    change: KeyChange | None  # None: no key changes, only certificates (`certs`)
    out_dir: Path | None = None  # None: in place
    dry_run: bool = False
    operator: str | None = None
    accel: Accel = "auto"
    jobs: int = 0
    max_disks: int = MAX_DISKS_PER_APPLIANCE
    debug: bool = False  # --debug: an unexpected failure's traceback on stderr
    certs: CertFlags = CertFlags()  # --host-ca (renew host certificates), --user-ca, --user-principal


@dataclass
class ImageResult:
    image: Path
    output: Path  # the image itself, or its copy in --out-dir
    status: Status = Status.PENDING
    reason: str | None = None
    removed: tuple[AuthorizedKey, ...] = ()
    added: tuple[AuthorizedKey, ...] = ()
    keys_after: tuple[AuthorizedKey, ...] = ()
    operations: list[str] = field(default_factory=list)  # what the plan changes, path: summary
    host_certificate: dict[str, Any] | None = None  # the host certificate signed (serial, principals...)

    @property
    def written(self) -> Path | None:
        """The file holding this image's result: the image itself in place; its --out-dir copy only once it
        was made (changed or unchanged); None for an image refused, failed or not reached, whose copy never was."""
        if self.output == self.image or self.status in (Status.CHANGED, Status.UNCHANGED):
            return self.output
        return None

    def to_json(self) -> dict[str, Any]:
        """No secret: fingerprints and comments, as authorized_keys itself shows them."""
        written = self.written
        return {
            "image": str(self.image), "output": str(written) if written else None, "status": self.status,
            "reason": self.reason,
            "removed_keys": [key_summary(k) for k in self.removed],
            "added_keys": [key_summary(k) for k in self.added],
            "authorized_keys": [key_summary(k) for k in self.keys_after], "changes": self.operations,
            "host_certificate": self.host_certificate,
        }


@dataclass
class KeysResult:
    options: KeysOptions
    results: list[ImageResult]
    report_path: Path | None
    unmatched: tuple = ()  # the --remove-key selectors no image read holds: a failure, never "unchanged"

    def count(self, status: Status) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def exit_code(self) -> ExitCode:
        bad = self.count(Status.REFUSED) + self.count(Status.FAILED) + len(self.unmatched)
        return ExitCode.FAILURE if bad else ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        change = self.options.change
        return {
            "schema_version": SCHEMA_VERSION, "command": "keys", "dry_run": self.options.dry_run,
            "operator": self.options.operator, "remove_key": [s.text for s in change.remove] if change else [],
            "unmatched_remove_key": [s.text for s in self.unmatched],
            "add_key": [key_summary(k) for k in change.add] if change else [],
            "out_dir": str(self.options.out_dir) if self.options.out_dir else None,
            "counts": {s.value: self.count(s) for s in Status if s != Status.PENDING},
            "images": [r.to_json() for r in self.results],
        }


class KeysInterrupted(ProvisionError):
    exit_code = ExitCode.INTERRUPTED

    def __init__(self, result: KeysResult) -> None:
        where = f"; {result.report_path} lists each image's state" if result.report_path else ""
        super().__init__(
            f"stopped by Ctrl-C: {result.count(Status.CHANGED)} image(s) changed, "
            f"{result.count(Status.INTERRUPTED)} not reached (left as they were){where}",
            hint="run the same command again for the rest (images already changed are left unchanged)",
        )
        self.result = result


class _Keys:
    def __init__(self, options: KeysOptions, results: dict[Path, ImageResult], progress: BatchProgress) -> None:
        self.options = options
        self.results = results
        self.progress = progress
        self.held: list[tuple[AuthorizedKey, ...]] = []  # each image's keys as read: which selectors matched

    def prepare(self, path: Path, info: ImageInfo) -> ImageInfo:
        """In place: the image itself. --out-dir: a qcow2 copy under a hidden name, renamed once complete."""
        if self.options.out_dir is None or self.options.dry_run:
            return info
        work = WorkCopy(self.results[path].output)
        work.remove()  # a killed run's, or anything planted under the name: this run holds its lock
        work.copy(info)  # a plain qcow2, synced, created 0600 and exclusively
        return probe_image(work.partial)

    def disk(self, appliance: Appliance, index: int, path: Path, info: ImageInfo) -> None:
        result = self.results[path]
        layout = load_layout()
        with appliance.mount_persist(index, writable=False) as fs:  # a first look changes nothing
            state = read_state(fs, layout)
        self.held.append(state.authorized_keys)
        change = self.options.change
        request = (request_for(change, state.authorized_keys, self.options.operator, state.update_signers_raw)
                   if change else None)
        request = with_certificates(request, self.options.certs, self.options.operator)
        if request is None:
            result.status, result.reason = Status.UNCHANGED, unchanged_reason(change) if change else None
            result.keys_after = state.authorized_keys
            self.progress.finished(path.name, True, "unchanged")
            return
        try:
            plan = build_plan(request, state, layout, fresh_material())
        except UsageError as exc:  # never lock everyone out; an ambiguous comment; no password file
            reason = keys_refusal(exc)
            result.status, result.reason = Status.REFUSED, reason
            self.progress.finished(path.name, False, f"refused: {reason}")
            return
        held = {key.blob for key in state.authorized_keys}
        result.removed = plan.removed_keys
        result.added = tuple(key for key in request.keys if key.blob not in held)
        result.keys_after = plan.authorized_keys
        result.operations = [f"{op.entry.path}: {op.summary}" for op in plan.operations if op.changes]
        result.host_certificate = host_certificate_summary(plan)
        if not plan.changes:  # the certificate flags asked for what the image already holds
            result.status = Status.UNCHANGED
            self.progress.finished(path.name, True, "unchanged")
            return
        if not self.options.dry_run:
            with appliance.mount_persist(index, writable=True) as fs:
                apply_and_verify(plan, fs)
        result.status = Status.CHANGED
        self.progress.finished(path.name, True, "would change" if self.options.dry_run else "changed")

    def failed(self, path: Path, message: str) -> None:
        result = self.results[path]
        if result.status == Status.REFUSED:  # never written: a later failed shutdown does not change that
            return
        result.status, result.reason = Status.FAILED, message
        self.progress.finished(path.name, False, message)

    def closed(self, paths: Sequence[Path]) -> None:
        if self.options.out_dir is None or self.options.dry_run:
            return
        for path in paths:
            result = self.results[path]
            partial = _partial(result.output)
            if result.status in (Status.CHANGED, Status.UNCHANGED):
                os.replace(partial, result.output)
        hostfiles.fsync(self.options.out_dir)


def run_keys(options: KeysOptions, progress: BatchProgress, report_path: Path | None) -> KeysResult:
    """Change the keys of every image; the report is written at the end whatever happened, Ctrl-C included
    (KeysInterrupted, exit 130, after it)."""
    out_dir = options.out_dir.absolute() if options.out_dir is not None else None
    results = {path: ImageResult(path, _output(path, out_dir)) for path in options.images}
    _check_outputs(list(results.values()), out_dir)
    if out_dir is not None and not options.dry_run:
        hostfiles.make_private_dirs(out_dir)
    if report_path is None and out_dir is not None and not options.dry_run:
        report_path = out_dir / REPORT_FILE
    interrupted = False
    with contextlib.ExitStack() as locks:
        if not options.dry_run:
            for folder, names in _owned(results.values(), report_path).items():
                locks.enter_context(OutputLock(folder, names))
        keys = _Keys(options, results, progress)
        try:
            run_in_chunks(list(options.images), keys, readonly=options.dry_run,
                          accel=options.accel, jobs=options.jobs, max_disks=options.max_disks, progress=progress,
                          verb="changing keys on", debug=options.debug)
        except KeyboardInterrupt:
            interrupted = True
        finally:  # the report is the record of which images changed: written whatever happened
            progress.stop()
            if out_dir is not None and not options.dry_run:  # the hidden copies this run made (and locked)
                for result in results.values():
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(_partial(result.output))
            for result in results.values():
                if result.status == Status.PENDING:
                    result.status, result.reason = Status.INTERRUPTED, "stopped before it was reached"
            outcome = KeysResult(options, list(results.values()), report_path,
                                 unmatched(options.change.remove, keys.held) if options.change else ())
            if report_path is not None:  # fingerprints and comments only: readable as batch's report.json is
                text = json.dumps(outcome.to_json(), indent=2) + "\n"
                hostfiles.write_atomic(report_path, text.encode(), mode=0o644)
    if interrupted:
        raise KeysInterrupted(outcome)
    return outcome


def _output(image: Path, out_dir: Path | None) -> Path:
    return image if out_dir is None else out_dir / f"{image.stem}.qcow2"


def _partial(output: Path) -> Path:
    return WorkCopy(output).partial  # batch's name for its copies too: the same lock covers both


def _owned(results: Sequence[ImageResult] | Any, report_path: Path | None) -> dict[Path, list[str]]:
    """The files this run writes, by folder: their names are its lock bytes there (batch.lock). A file is
    named by its real path: an image reached through a symbolic link is locked where it is, as the batch
    run that writes it there locks it."""
    owned: dict[Path, list[str]] = {}
    for path in [*(result.output for result in results), *([report_path] if report_path is not None else [])]:
        real = Path(os.path.realpath(path))
        owned.setdefault(real.parent, []).append(real.name)
    return owned


def _check_outputs(results: Sequence[ImageResult], out_dir: Path | None) -> None:
    if out_dir is None:
        return
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir} exists and is not a directory")
    seen: dict[Path, Path] = {}
    for result in results:
        if result.output in seen:
            raise UsageError(f"{seen[result.output]} and {result.image} would both be {result.output}; "
                             "rename one, or run them apart")
        seen[result.output] = result.image
        if os.path.lexists(result.output):
            raise UsageError(f"{result.output} exists: --out-dir never overwrites a file; "
                             "choose an empty folder, or leave out --out-dir to change the images in place")
