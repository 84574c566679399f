"""The files a batch run leaves beside the images: DIR/initial-passwords.csv (generated passwords, 0600) and
DIR/report.json (every user's state, no secret). Both are replaced whole (hostfiles.write_atomic) under the
run's lock on DIR; rows and entries of users not in this run are kept."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from provision import hostfiles
from provision.commands.batch.model import PASSWORDS_FILE, REPORT_FILE, BatchOptions, UserResult, UserStatus
from provision.errors import ProvisionError


def write_passwords(out_dir: Path, plain: dict[str, str]) -> Path:
    """DIR/initial-passwords.csv (name,password): rows of an earlier run are kept unless made again here."""
    kept = [(name, password) for name, password in _read_passwords(out_dir) if name not in plain]
    return _write_passwords(out_dir, [*kept, *plain.items()])


def drop_stale_passwords(out_dir: Path, results: Sequence[UserResult]) -> Path | None:
    """A generated password that no image holds any more leaves the file: a row that now gives its own hash
    and whose image (made or kept) holds that hash. Returns the file, or None when there is none (left)."""
    path = out_dir / PASSWORDS_FILE
    done = (UserStatus.SEEDED, UserStatus.SKIPPED)
    stale = {r.user.name for r in results if r.user.password_hash is not None and r.status in done}
    if stale and os.path.lexists(path):
        try:
            rows = _read_passwords(out_dir)
        except ProvisionError:
            return path  # not ours to rewrite (write_passwords refuses it when it has rows to add)
        kept = [(name, password) for name, password in rows if name not in stale]
        if not kept:
            os.unlink(path)
            hostfiles.fsync(out_dir)
        elif len(kept) < len(rows):
            _write_passwords(out_dir, kept)
    return path if os.path.lexists(path) else None


def _read_passwords(out_dir: Path) -> list[tuple[str, str]]:
    path = out_dir / PASSWORDS_FILE
    if not os.path.lexists(path):
        return []
    if os.path.islink(path) or not path.is_file():
        raise ProvisionError(f"{path} is not a regular file; move it away")
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    if not rows or rows[0] != ["name", "password"] or any(len(r) != 2 for r in rows[1:]):
        raise ProvisionError(f"{path} is not a name,password file written by zvm-provision; move it away")
    return [(r[0], r[1]) for r in rows[1:]]


def _write_passwords(out_dir: Path, rows: Sequence[tuple[str, str]]) -> Path:
    path = out_dir / PASSWORDS_FILE
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "password"])
    writer.writerows(rows)
    hostfiles.write_atomic(path, buffer.getvalue().encode("utf-8"))  # 0600 from its creation
    return path


def write_report(
    out_dir: Path, results: Sequence[UserResult], options: BatchOptions, *, interrupted: bool = False
) -> Path:
    """DIR/report.json: one entry per user (no secrets, no exception's text); entries of users not in this
    run are kept."""
    path = out_dir / REPORT_FILE
    mine = {r.user.name for r in results}
    kept = [entry for name, entry in read_report_entries(out_dir).items() if name not in mine]
    data = {
        "base": str(options.base.absolute()),
        "overlay": options.overlay,
        "interrupted": interrupted,  # Ctrl-C stopped the run: see each user's status
        "users": [*kept, *(r.to_json(options.overlay, options.base.absolute()) for r in results)],
    }
    hostfiles.write_atomic(path, (json.dumps(data, indent=2) + "\n").encode("utf-8"), mode=0o644)
    return path


def read_report_entries(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The users' entries of an earlier run's DIR/report.json, by name; none when it is missing or unreadable."""
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        previous = json.loads((out_dir / REPORT_FILE).read_text(encoding="utf-8"))
        users = previous.get("users", [])
        return {u["name"]: u for u in users if isinstance(u, dict) and isinstance(u.get("name"), str)}
    return {}
