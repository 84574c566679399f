"""`zvm-provision batch-report DIR...`: the shards of one roll-out put back together. Reads every
report-K-of-N.json in the folders, checks them (core.shardmerge), and writes DIR/report.json and, if the shards
generated passwords, DIR/initial-passwords.csv (0600), both as a whole run writes them. Before that, every
image is checked against the size and sha256 its shard recorded (batch/verify.py; --no-verify skips it).

While it reads and writes it holds the reports' and its own files' lock bytes (batch/lock.py): a shard still
running (or started meanwhile) makes it stop with exit 4 rather than merge half a roll-out. Nothing is written
when the shards do not add up; the shards' own files are left as they are (the person deletes the password
files after the hand-over).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from provision.commands.batch.lock import OutputLock
from provision.commands.batch.model import PASSWORDS_FILE, REPORT_FILE, passwords_name, report_name
from provision.commands.batch.outputs import read_passwords, write_password_rows
from provision.commands.batch.verify import NothingWritten, verify_images
from provision.core.shardmerge import BadReport, ShardReport, merge_passwords, merge_reports, parse_shard_report
from provision.errors import ProvisionError, UsageError
from provision.host import writing as hostfiles
from provision.host.reading import others_can_read

SHARD_REPORT_RE = re.compile(r"report-([0-9]{1,6})-of-([0-9]{1,6})\.json", re.ASCII)
MAX_REPORT_BYTES = 64 << 20


@dataclass
class BatchReportResult:
    report_path: Path
    passwords_path: Path | None
    rows: int
    shards: int
    unfinished: list[tuple[str, str, int]]  # (row, status, shard): images the roll-out did not complete
    lacking_passwords: list[str] = field(default_factory=list)  # generated passwords found on no file
    shard_password_files: list[Path] = field(default_factory=list)  # merged, and still there
    images_checked: int | None = None  # against the shards' sizes and sha256; None: --no-verify


class ShardsDoNotAddUp(NothingWritten):
    """The reports disagree or leave rows out or in twice."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("the shard reports do not add up to the manifest", problems,
                         "run the shards named again (same manifest, same N), or move away reports of another "
                         "roll-out, then run batch-report again")


def merge_batch_reports(
    dirs: Sequence[Path], out_dir: Path | None = None, *, verify: bool = True
) -> BatchReportResult:
    for folder in dirs:
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a directory" if folder.exists() else f"{folder}: no such directory")
    if out_dir is None:
        if len({os.path.realpath(d) for d in dirs}) > 1:
            raise UsageError("several folders given: say where report.json goes with --out-dir DIR")
        out_dir = dirs[0]
    found = [(folder, name) for folder in _distinct(dirs) for name in sorted(os.listdir(folder))
             if SHARD_REPORT_RE.fullmatch(name)]
    if not found:
        raise UsageError(f"no shard report (report-K-of-N.json) in {', '.join(map(str, dirs))}",
                         hint="give the folder(s) the shards wrote to (batch --shard ... --out-dir DIR)")
    out_dir.mkdir(parents=True, exist_ok=True)

    with contextlib.ExitStack() as stack:
        _hold(stack, found, out_dir)
        reports, problems = _read_reports(found)
        merged = merge_reports(reports)
        problems += merged.problems
        if problems or merged.report is None:
            raise ShardsDoNotAddUp(problems)
        checked = _verify(found, reports) if verify else None
        passwords_path, lacking, shard_files = _merge_password_files(found, reports, merged.report, out_dir)
        report_path = out_dir / REPORT_FILE
        data = (json.dumps(merged.report, indent=2) + "\n").encode("utf-8")
        hostfiles.write_atomic(report_path, data, mode=0o644)
    return BatchReportResult(report_path, passwords_path, len(merged.report["users"]), reports[0].count,
                             merged.unfinished, lacking, shard_files, checked)


def _verify(found: list[tuple[Path, str]], reports: list[ShardReport]) -> int:
    """Every recorded image's size and sha256, read in full: the merged report certifies only what was checked."""
    folder_of = {str(folder / name): (folder, name) for folder, name in found}
    return verify_images((*folder_of[report.source], report.users) for report in reports)


def _distinct(dirs: Sequence[Path]) -> list[Path]:
    """Each folder once, however it was spelt (a report read twice would count as a second report)."""
    seen: set[str] = set()
    folders = []
    for folder in dirs:
        if os.path.realpath(folder) not in seen:
            seen.add(os.path.realpath(folder))
            folders.append(folder)
    return folders


def _hold(stack: contextlib.ExitStack, found: list[tuple[Path, str]], out_dir: Path) -> None:
    """The lock bytes of each shard report found and its passwords file, and of the merged files: one
    OutputLock per folder (closing a second descriptor of one lock file would drop the first's bytes)."""
    by_folder: dict[str, tuple[Path, list[str]]] = {}
    for folder, name in found:
        shard = _shard_of(name)
        by_folder.setdefault(os.path.realpath(folder), (folder, []))[1].extend(
            [report_name(shard), passwords_name(shard)])
    # A shard still running holds its report's name from its start, before the report exists: the names of
    # the reports not found yet are held too, in every folder given, so batch-report waits for it (exit 4).
    reported = {_shard_of(name) for _, name in found}
    missing = [report_name((index, count)) for count in sorted({count for _, count in reported})
               for index in range(1, count + 1) if (index, count) not in reported]
    for _, names in by_folder.values():
        names.extend(missing)
    out_key = os.path.realpath(out_dir)
    by_folder.setdefault(out_key, (out_dir, []))[1].extend([REPORT_FILE, PASSWORDS_FILE])
    for key, (folder, names) in by_folder.items():
        stack.enter_context(OutputLock(folder, names, create=key == out_key))


def _shard_of(name: str) -> tuple[int, int]:
    match = SHARD_REPORT_RE.fullmatch(name)
    assert match is not None
    return int(match.group(1)), int(match.group(2))


def _read_reports(found: list[tuple[Path, str]]) -> tuple[list[ShardReport], list[str]]:
    reports, problems = [], []
    for folder, name in found:
        path = folder / name
        try:
            with open(path, "rb") as handle:
                raw = handle.read(MAX_REPORT_BYTES + 1)
            if len(raw) > MAX_REPORT_BYTES:
                raise BadReport(f"larger than {MAX_REPORT_BYTES >> 20} MiB")
            try:
                data = json.loads(raw)
            except ValueError:
                raise BadReport("not JSON") from None
            report = parse_shard_report(str(path), data)
        except BadReport as exc:
            problems.append(f"{path}: {exc}")
            continue
        except OSError as exc:
            problems.append(f"{path}: cannot read it ({exc.strerror})")
            continue
        if (report.index, report.count) != _shard_of(name):
            problems.append(f"{path}: says it is shard {report.index} of {report.count}; was it renamed?")
            continue
        reports.append(report)
    return reports, problems


def _merge_password_files(
    found: list[tuple[Path, str]], reports: list[ShardReport], report: dict, out_dir: Path
) -> tuple[Path | None, list[str], list[Path]]:
    """DIR/initial-passwords.csv from the shards' files (0600), or None when no row has a generated password."""
    folder_of = {str(folder / name): folder for folder, name in found}
    shard_rows: dict[int, list[tuple[str, str]]] = {}
    shard_files = []
    for shard in reports:
        path = folder_of[shard.source] / passwords_name((shard.index, shard.count))
        if not os.path.lexists(path):
            continue
        _check_private(path)
        shard_rows[shard.index] = read_passwords(path)
        shard_files.append(path)
    merged_path = out_dir / PASSWORDS_FILE
    if os.path.lexists(merged_path):
        _check_private(merged_path)
    earlier = read_passwords(merged_path)
    rows, lacking = merge_passwords(earlier, shard_rows, report)
    if rows:
        write_password_rows(merged_path, rows)
    elif os.path.lexists(merged_path):
        os.unlink(merged_path)  # every password it held is stale: each row now gives its own hash
        hostfiles.fsync(out_dir)
    return (merged_path if rows else None), lacking, shard_files


def _check_private(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        problem = others_can_read(path, os.fstat(fd).st_mode, "the passwords file")
    finally:
        os.close(fd)
    if problem:
        raise ProvisionError(problem)
