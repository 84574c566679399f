"""The files a batch run leaves beside the images: DIR/initial-passwords.csv (generated passwords, 0600) and
DIR/report.json (every user's state, no secret); a shard's are initial-passwords-K-of-N.csv and
report-K-of-N.json (model.report_name), which batch-report merges. Each is replaced whole
(hostfiles.write_atomic) while the run holds its lock bytes (lock.py); in report.json and the passwords file,
rows and entries of users not in this run are kept; a shard's report holds exactly its slice.

A report names the manifest it was made from (its sha256 and every row's name) and the shard (K of N), so that
batch-report can tell that the shards it merges cover that manifest, each row once."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from provision.host import writing as hostfiles
from provision.commands.batch.model import BatchOptions, UserResult, UserStatus, passwords_name, report_name
from provision.core.manifest import Manifest
from provision.core.rowdigest import DIGEST_FIELD
from provision.core.spreadsheet import safe_cell, unsafe_cell
from provision.errors import ProvisionError


def write_passwords(out_dir: Path, plain: dict[str, str], shard: tuple[int, int] | None = None) -> Path:
    """DIR/initial-passwords.csv (name,password), or the shard's: rows of an earlier run are kept unless made
    again here."""
    path = out_dir / passwords_name(shard)
    kept = [(name, password) for name, password in read_passwords(path) if name not in plain]
    return write_password_rows(path, [*kept, *plain.items()])


class PasswordRows:
    """initial-passwords.csv (or the shard's) written row by row, each just before its image takes its final
    name (`placing`), so that a row never hands over a password that no image in place accepts: an image that
    fails, or is not reached, leaves the earlier row (and the earlier image) as they were. The chunks' threads
    share one; the run's lock keeps other processes out."""

    def __init__(self, out_dir: Path, plain: dict[str, str], shard: tuple[int, int] | None) -> None:
        self.path = out_dir / passwords_name(shard)
        self._out_dir, self._plain, self._shard = out_dir, plain, shard
        self._lock = threading.Lock()
        if plain:
            read_passwords(self.path)  # a file that is not ours is refused before any image is made

    @contextlib.contextmanager
    def placing(self, name: str) -> Iterator[None]:
        """Around the rename that puts `name`'s image in place: its new row is written first; if the rename
        fails, the earlier row (or none) is put back."""
        if name not in self._plain:
            yield
            return
        with self._lock:
            earlier = dict(read_passwords(self.path)).get(name)
            write_passwords(self._out_dir, {name: self._plain[name]}, self._shard)
        try:
            yield
        except BaseException:
            with self._lock:
                rows = [(n, p) for n, p in read_passwords(self.path) if n != name]
                write_password_rows(self.path, rows + ([(name, earlier)] if earlier is not None else []))
            raise


def drop_stale_passwords(
    out_dir: Path, results: Sequence[UserResult], shard: tuple[int, int] | None = None
) -> Path | None:
    """A generated password that no image holds any more leaves the file: a row that now gives its own hash
    and whose image (made or kept) holds that hash. Returns the file, or None when there is none (left)."""
    path = out_dir / passwords_name(shard)
    done = (UserStatus.SEEDED, UserStatus.SKIPPED)
    stale = {r.user.name for r in results if r.user.password_hash is not None and r.status in done}
    if stale and os.path.lexists(path):
        try:
            rows = read_passwords(path)
        except ProvisionError:
            return path  # not ours to rewrite (write_passwords refuses it when it has rows to add)
        kept = [(name, password) for name, password in rows if name not in stale]
        if not kept:
            os.unlink(path)
            hostfiles.fsync(out_dir)
        elif len(kept) < len(rows):
            write_password_rows(path, kept)
    return path if os.path.lexists(path) else None


def read_passwords(path: Path) -> list[tuple[str, str]]:
    """The rows of a name,password file written by zvm-provision ([] when there is none)."""
    if not os.path.lexists(path):
        return []
    if os.path.islink(path) or not path.is_file():
        raise ProvisionError(f"{path} is not a regular file; move it away")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0] != ["name", "password"] or any(len(r) != 2 for r in rows[1:]):
        raise ProvisionError(f"{path} is not a name,password file written by zvm-provision; move it away")
    return [(unsafe_cell(r[0]), unsafe_cell(r[1])) for r in rows[1:]]


def write_password_rows(path: Path, rows: Sequence[tuple[str, str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "password"])
    writer.writerows([(safe_cell(name), safe_cell(password)) for name, password in rows])  # safe to open in Excel
    hostfiles.write_atomic(path, buffer.getvalue().encode("utf-8"))  # 0600 from its creation
    return path


def write_report(
    out_dir: Path, results: Sequence[UserResult], options: BatchOptions, manifest: Manifest, *,
    interrupted: bool = False,
) -> Path:
    """DIR/report.json: one entry per user (no secrets, no exception's text); entries of users not in this
    run are kept. A shard's report-K-of-N.json holds its slice only."""
    path = out_dir / report_name(options.shard)
    mine = {r.user.name for r in results}
    kept = []
    if options.shard is None:  # a shard's report holds its own slice only: batch-report must see each row once
        kept = [entry for name, entry in read_report_entries(out_dir).items() if name not in mine]
    earlier = read_report_entries(out_dir, options.shard)
    data = {
        "base": str(options.base.absolute()),
        "overlay": options.overlay,
        "interrupted": interrupted,  # Ctrl-C stopped the run: see each user's status
        "manifest": manifest_json(manifest),
        "shard": None if options.shard is None else {"index": options.shard[0], "count": options.shard[1]},
        "users": [*kept, *(_entry(r, options, earlier.get(r.user.name)) for r in results)],
    }
    hostfiles.write_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"), mode=0o644)
    return path


# What an entry says of the image made: where no image was made, the earlier entry's words still hold for the
# image left in place (or none is known: a later run then makes it again).
_MADE_AS = ("overlay_of", "password", DIGEST_FIELD)


def _entry(result: UserResult, options: BatchOptions, earlier: dict[str, Any] | None) -> dict[str, Any]:
    entry = result.to_json(options.overlay, options.base.absolute())
    if result.status not in (UserStatus.SEEDED, UserStatus.SKIPPED):
        entry.update({field: (earlier or {}).get(field) for field in _MADE_AS})
    return entry


def manifest_json(manifest: Manifest) -> dict[str, object]:
    """What a report says of its manifest: enough for batch-report to check coverage, nothing secret (a sha256
    of the whole file and the rows' names)."""
    return {
        "path": str(manifest.path.absolute()),
        "sha256": manifest.sha256,
        "rows": [user.name for user in manifest.users],
    }


def read_report_entries(out_dir: Path, shard: tuple[int, int] | None = None) -> dict[str, dict[str, Any]]:
    """The users' entries of an earlier run's report (report.json, or the shard's report-K-of-N.json), by name;
    none when it is missing or unreadable."""
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        previous = json.loads((out_dir / report_name(shard)).read_text(encoding="utf-8"))
        users = previous.get("users", [])
        return {u["name"]: u for u in users if isinstance(u, dict) and isinstance(u.get("name"), str)}
    return {}
