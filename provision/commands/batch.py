"""`zvm-provision batch`: one seeded image per employee, from a manifest.

How a run goes:

1. The whole manifest is validated (manifest.py); any bad row stops the run before anything is written.
2. Outputs that already exist are checked in one read-only appliance (resume): complete ones are skipped
   unless --force, the others are made again.
3. Generated passwords are written to DIR/initial-passwords.csv (0600 from its creation) before any image
   carrying them gets its final name, and hashed in a process pool while the copies and the launch go on.
4. Images are made in chunks of up to MAX_DISKS_PER_APPLIANCE disks: each chunk's copies are made under a
   hidden temporary name, all of them added to ONE appliance (clones share labels and UUIDs: each disk's
   persist is found by its device), seeded one after the other through seed.run_seed (the one seeding path),
   and only after the appliance shut down cleanly are they renamed to DIR/<name>.qcow2. So a file under
   its final name is always a complete image. --jobs chunks run in parallel threads (launch releases the GIL).
5. DIR/report.json records every user: no secrets in it.

A failure on one image is reported and the others go on; the exit is 1 if any failed.

Where the time goes (TCG, 2 cores, measured with scripts/bench.py): a launch with 10 disks ~18 s; then
about 1 s per disk inside the appliance (finding persist from the partitions' superblocks, mounting, reading,
writing, one sync, verifying, unmounting). Two appliances in parallel beat one on 2 cores; four are slower
(CPU-bound TCG).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import csv
import fcntl
import io
import json
import math
import multiprocessing
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provision.errors import ExitCode, ImageInUseError, ProvisionError, UsageError
from provision.core.manifest import Manifest, User, load_manifest

if TYPE_CHECKING:
    from provision.guest.diskformat import ImageInfo
    from provision.guest.appliance import Appliance, PersistFS
    from provision.commands.inspect import InspectReport
    from provision.core.plan import Operation, Plan
    from provision.secret import Secret
    from provision.core.state import ImageState

MAX_DISKS_PER_APPLIANCE = 24  # 20 disks launch in ~29 s under TCG; more per handle only lengthens one chain
MIN_DISKS_PER_APPLIANCE = 4  # below this, a second appliance costs more than it saves
MAX_AUTO_JOBS = 4
MAX_REASONS = 10  # why an existing image is made again: the first problems, then a count
PASSWORDS_FILE = "initial-passwords.csv"
REPORT_FILE = "report.json"
LOCK_FILE = ".zvm-provision-batch.lock"
PARTIAL_SUFFIX = ".partial"
PASSWORD_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/l/I
PASSWORD_GROUPS, PASSWORD_GROUP_SIZE = 5, 5  # 25 random characters (~146 bits) in 5 dash-separated groups


@dataclass(frozen=True)
class BatchOptions:
    manifest: Path
    base: Path
    out_dir: Path
    overlay: bool = False
    jobs: int = 0  # 0: automatic
    shard: tuple[int, int] | None = None
    force: bool = False
    accel: str = "auto"
    max_disks: int = MAX_DISKS_PER_APPLIANCE


@dataclass
class UserResult:
    user: User
    image: Path
    status: str = "pending"  # seeded | skipped | failed | interrupted (Ctrl-C came first)
    error: str | None = None
    redone: str | None = None  # why an existing image was made again
    password_generated: bool = False
    authorized_keys: tuple = ()
    host_key: dict[str, str | None] | None = None  # type, fingerprint, known_hosts
    machine_id: str | None = None
    netbird_setup_key: bool = False
    netbird_management_url: str | None = None

    def to_json(self, overlay: bool, base: Path) -> dict[str, Any]:
        from provision.ui import render as report

        return {
            "name": self.user.name,
            "image": str(self.image),
            "status": self.status,
            "error": self.error,
            "redone": self.redone,
            "overlay_of": str(base) if overlay else None,
            "password": "generated" if self.password_generated else "given",
            "authorized_keys": [report.key_summary(key) for key in self.authorized_keys],
            "host_key": self.host_key,
            "machine_id": self.machine_id,
            "netbird_setup_key_given": self.netbird_setup_key,
            "netbird_management_url": self.netbird_management_url,
        }


@dataclass
class BatchResult:
    options: BatchOptions
    manifest: Manifest
    results: list[UserResult]
    report_path: Path
    passwords_path: Path | None
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[UserResult]:
        return [r for r in self.results if r.status == "failed"]


# -- progress ---------------------------------------------------------------------------------------


class Progress:
    """Plain lines on stderr (logs, CI, --json); RichProgress draws a live status on a terminal."""

    def __init__(self, stream=None) -> None:
        self._stream = stream or sys.stderr
        self._lock = threading.Lock()
        self.total = 0
        self.done = 0

    def start(self, total: int) -> None:
        """`total` images are about to be made."""
        self.total = total

    def note(self, message: str) -> None:
        with self._lock:
            print(f"batch: {message}", file=self._stream, flush=True)

    def phase(self, launch: int | None, text: str) -> None:
        """What one appliance launch (or, with None, the run) is doing now: copying, starting, seeding..."""
        self.note(f"launch {launch}: {text}" if launch is not None else text)

    def phase_done(self, launch: int | None) -> None:
        pass

    def finished(self, name: str, ok: bool, detail: str = "") -> None:
        with self._lock:
            self.done += 1
            done = self.done
        self.note(f"[{done}/{self.total}] {name}: {'done' if ok else 'FAILED'}{': ' + detail if detail else ''}")

    def stop(self) -> None:
        pass


class RichProgress(Progress):
    """On a terminal: one live line per launch saying what it does and for how many seconds (copying, the
    appliance starting: the long waits), and a bar of the images made. Transient: the summary follows it."""

    def __init__(self, console=None, get_time=None) -> None:
        super().__init__()
        from rich.console import Console
        from rich.progress import BarColumn, ProgressColumn, SpinnerColumn, TextColumn
        from rich.progress import Progress as Live
        from rich.text import Text

        class Seconds(ProgressColumn):
            def render(self, task):
                return Text(f"{int(task.elapsed or 0)} s")

        class Count(ProgressColumn):
            def render(self, task):
                return Text(f"{int(task.completed)}/{int(task.total)}" if task.total is not None else "")

        class Bar(BarColumn):
            def render(self, task):
                return super().render(task) if task.total is not None else Text("")

        self._live = Live(
            SpinnerColumn(), TextColumn("{task.description}"), Bar(), Count(), Seconds(),
            console=console or Console(stderr=True), transient=True, get_time=get_time,
        )
        self._started = False
        self._overall = None
        self._phases: dict[int | None, Any] = {}

    def _show(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self._live.start()

    def renderable(self):
        return self._live.get_renderable()

    def start(self, total: int) -> None:
        super().start(total)
        self._show()
        self._overall = self._live.add_task("images made", total=total)

    def note(self, message: str) -> None:
        self._live.console.print(f"batch: {message}", markup=False, highlight=False)

    def phase(self, launch: int | None, text: str) -> None:
        self._show()
        description = f"launch {launch}: {text}" if launch is not None else text
        task = self._phases.get(launch)
        if task is None:
            self._phases[launch] = self._live.add_task(description, total=None)
        else:  # a new step: its own clock
            self._live.reset(task, description=description, total=None)

    def phase_done(self, launch: int | None) -> None:
        task = self._phases.pop(launch, None)
        if task is not None:
            self._live.remove_task(task)

    def finished(self, name: str, ok: bool, detail: str = "") -> None:
        if not ok:
            self.note(f"{name}: FAILED{': ' + detail if detail else ''}")
        if self._overall is not None:
            self._live.update(self._overall, advance=1, description=f"images made (last: {name})")

    def stop(self) -> None:
        if self._started:
            self._live.stop()


def default_progress(*, json_out: bool = False) -> Progress:
    """A live status on a terminal; plain lines (logs, CI) otherwise, and with --json. Both on stderr."""
    return RichProgress() if sys.stderr.isatty() and not json_out else Progress()


# -- the run ------------------------------------------------------------------------------------------


def run_batch(options: BatchOptions, progress: Progress | None = None) -> BatchResult:
    """Make the images; report.json is written at the end whatever happened, Ctrl-C included (then
    BatchInterrupted, exit 130, is raised after it)."""
    progress = progress or Progress()
    started = time.monotonic()
    manifest = load_manifest(options.manifest)  # every row validated; ManifestError (exit 2) otherwise
    for warning in manifest.warnings:
        progress.note(f"warning: {warning}")
    users = manifest.shard(*options.shard) if options.shard else manifest.users
    base_info = _check_base(options.base)
    out_dir = _check_out_dir(options.out_dir, users, base_info)

    out_dir.mkdir(parents=True, exist_ok=True)
    results = {u.name: UserResult(u, out_dir / u.image_name) for u in users}
    interrupted = False
    with _DirectoryLock(out_dir):
        try:
            _make_images(options, users, base_info, out_dir, results, progress)
        except KeyboardInterrupt:
            interrupted = True  # the workers have stopped and removed their temporary copies
        finally:
            progress.stop()
        for result in results.values():
            if result.status == "pending":
                result.status = "interrupted"
                result.error = "stopped by Ctrl-C before it was made" + (
                    "; the earlier image is left as it was" if os.path.lexists(result.image) else "")
        passwords_path = drop_stale_passwords(out_dir, list(results.values()))
        ordered = [results[u.name] for u in users]
        report_path = write_report(out_dir, ordered, options, interrupted=interrupted)
    outcome = BatchResult(options, manifest, ordered, report_path, passwords_path, time.monotonic() - started)
    if interrupted:
        raise BatchInterrupted(outcome)
    return outcome


class BatchInterrupted(ProvisionError):
    """Ctrl-C: the images made so far are complete, the others were not started or were discarded."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, result: BatchResult) -> None:
        super().__init__(
            f"stopped by Ctrl-C: {result.count('seeded')} image(s) made, {result.count('interrupted')} not made; "
            f"no partial image is left. {result.report_path} lists each user's state.",
            hint="run the same command again to make the rest (complete images are kept)",
        )
        self.result = result


def _make_images(
    options: BatchOptions, users: Sequence[User], base_info: ImageInfo, out_dir: Path,
    results: dict[str, UserResult], progress: Progress,
) -> None:
    _remove_partials(out_dir, users)
    todo = list(users)
    existing = [u for u in users if os.path.lexists(out_dir / u.image_name)]
    if existing and not options.force:
        todo = [u for u in users if u not in existing]
        progress.phase(None, f"checking {len(existing)} existing image(s) (resume; --force makes them again)")
        for user, problems in _check_existing(existing, out_dir, results, options.accel, options.max_disks):
            if problems:
                results[user.name].redone = "; ".join(problems[:MAX_REASONS]) + (
                    f"; and {len(problems) - MAX_REASONS} more" if len(problems) > MAX_REASONS else "")
                todo.append(user)
            else:
                results[user.name].status = "skipped"
        progress.phase_done(None)
        order = {u.name: i for i, u in enumerate(users)}
        todo.sort(key=lambda u: order[u.name])
    elif existing:
        for user in existing:
            results[user.name].redone = "--force"
    if not todo:
        return

    _check_space(base_info, out_dir, len(todo), options.overlay)
    plain = {u.name: generate_password() for u in todo if u.password_hash is None}
    if plain:
        write_passwords(out_dir, plain)
    with _Hasher(plain) as hasher:
        jobs, chunks = plan_chunks(len(todo), options.jobs, options.max_disks)
        progress.start(len(todo))
        progress.note(
            f"{len(todo)} image(s) to make in {len(chunks)} appliance launch(es), {jobs} at a time"
            + (f"; {len(users) - len(todo)} already complete" if len(users) > len(todo) else "")
        )
        cancel = _Cancel(progress)
        worker = _ChunkWorker(options, base_info, out_dir, results, hasher, progress, cancel)
        batches = [todo[start:end] for start, end in chunks]
        with concurrent.futures.ThreadPoolExecutor(jobs, thread_name_prefix="zvm-batch") as pool:
            futures = [pool.submit(worker.run, number, batch) for number, batch in enumerate(batches, 1)]
            cancel.wait_for(futures)


def plan_chunks(count: int, jobs: int, max_disks: int) -> tuple[int, list[tuple[int, int]]]:
    """How many appliances run at once, and which [start, end) slice of the images each launch takes."""
    if count <= 0:
        return 1, []
    if jobs <= 0:  # automatic: one appliance per core, each with at least a few disks
        jobs = max(1, min(os.cpu_count() or 1, MAX_AUTO_JOBS, count // MIN_DISKS_PER_APPLIANCE))
    launches = max(jobs, math.ceil(count / max_disks))
    launches = min(launches, count)
    size = math.ceil(count / launches)
    chunks = [(start, min(start + size, count)) for start in range(0, count, size)]
    return min(jobs, len(chunks)), chunks


def generate_password() -> str:
    groups = ("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_GROUP_SIZE))
              for _ in range(PASSWORD_GROUPS))
    return "-".join(groups)


# -- checks before anything is written ----------------------------------------------------------


def _check_base(base: Path) -> ImageInfo:
    from provision.guest.diskformat import probe_image

    return probe_image(base)


def _check_out_dir(out_dir: Path, users: Sequence[User], base: ImageInfo) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir} exists and is not a directory")
    out_dir = out_dir.absolute()
    base_real = os.path.realpath(base.path)
    for user in users:
        target = out_dir / user.image_name
        if os.path.realpath(target) == base_real:
            raise UsageError(f"{target} is the base image itself; choose another --out-dir")
        if os.path.islink(target):
            raise UsageError(f"{target} is a symbolic link; move it away (batch never writes through a link)")
        if target.exists() and not target.is_file():
            raise UsageError(f"{target} exists and is not a regular file; move it away")
    return out_dir


def _check_space(base: ImageInfo, out_dir: Path, count: int, overlay: bool) -> None:
    per_image = 4 << 20 if overlay else _measure(base)
    needed = per_image * count
    free = shutil.disk_usage(out_dir).free
    if needed > free:
        raise ProvisionError(
            f"not enough space in {out_dir}: {count} image(s) need about {_size(needed)}, {_size(free)} is free",
            hint="free some space, use --overlay (small images backed by the base), or split the run with --shard",
        )


def _measure(base: ImageInfo) -> int:
    try:
        out = subprocess.run(
            ["qemu-img", "measure", "--output=json", "-f", base.format, "-O", "qcow2", str(base.path)],
            capture_output=True, text=True, timeout=120, check=True,
        ).stdout
        return int(json.loads(out)["required"])
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return os.stat(base.path).st_blocks * 512  # what the base occupies: an upper bound for a sparse copy


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


class _DirectoryLock:
    """One batch run per output folder at a time."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / LOCK_FILE
        self._fd: int | None = None

    def __enter__(self) -> _DirectoryLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ImageInUseError(
                f"another zvm-provision batch is writing to {self.path.parent}",
                hint="wait for it to finish, or give this run another --out-dir",
            ) from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            os.close(self._fd)


def _partial_path(out_dir: Path, user: User) -> Path:
    return out_dir / f".{user.image_name}{PARTIAL_SUFFIX}"


def _remove_partials(out_dir: Path, users: Sequence[User]) -> None:
    """A run that was killed may leave its temporary copies behind: they are ours, and never complete."""
    for user in users:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(_partial_path(out_dir, user))


# -- resume: which existing images are complete ---------------------------------------------------


def _check_existing(
    users: Sequence[User], out_dir: Path, results: dict[str, UserResult], accel: str, max_disks: int
) -> Iterator[tuple[User, list[str]]]:
    """Yield (user, problems) for each existing output; no problems means complete for this manifest."""
    from provision.guest.diskformat import probe_image
    from provision.guest.appliance import Appliance
    from provision.commands.inspect import check_image_contract, inspect_disk

    openable: list[tuple[User, ImageInfo]] = []
    for user in users:
        try:
            openable.append((user, probe_image(out_dir / user.image_name)))
        except ProvisionError as exc:
            yield user, [f"cannot open it: {exc.message}"]
    for start in range(0, len(openable), max_disks):
        chunk = openable[start : start + max_disks]
        judged: set[str] = set()
        try:
            with Appliance([info for _, info in chunk], readonly=True, accel=accel) as appliance:
                appliance.launch()
                for index, (user, info) in enumerate(chunk):
                    try:
                        report = inspect_disk(appliance, index, info)
                        problems = check_image_contract(report) + row_problems(report, user, results[user.name])
                        if not problems and user.password_hash is not None:
                            problems = _hash_problems(appliance, index, user)
                    except Exception as exc:  # noqa: BLE001 - a bug while checking: make the image again
                        problems = [describe_failure(exc)]
                    judged.add(user.name)
                    yield user, problems
        except Exception as exc:  # noqa: BLE001 - the appliance did not start or stop: make them again
            for user, _ in chunk:
                if user.name not in judged:  # a verdict read before a failed shutdown still holds
                    yield user, [f"cannot check it: {describe_failure(exc)}"]


def row_problems(report: InspectReport, user: User, result: UserResult) -> list[str]:
    """Beyond inspect's contract check: does the image hold what this user's row asks for?"""
    problems = []
    if report.password.state != "set":
        problems.append(f"its password is {report.password.state}")
    if {k.blob for k in report.authorized_keys} != {k.blob for k in user.keys}:
        problems.append("its authorized keys differ from the manifest's")
    if report.host_key.state != "present":
        problems.append(f"its host key is {report.host_key.state}")
    if report.machine_id.state != "valid":
        problems.append(f"its machine-id is {report.machine_id.state}")
    if user.netbird_setup_key is not None and report.netbird.setup_key != "present":
        problems.append("it has no Netbird setup key")
    if user.netbird_management_url is not None and report.netbird.management_url != user.netbird_management_url:
        problems.append("its Netbird management URL differs from the manifest's")
    result.authorized_keys = report.authorized_keys
    host = report.host_key
    result.host_key = {"type": host.type, "fingerprint": host.fingerprint, "known_hosts": host.known_hosts}
    result.machine_id = report.machine_id.value
    result.netbird_setup_key = report.netbird.setup_key == "present"
    result.netbird_management_url = report.netbird.management_url
    result.password_generated = user.password_hash is None
    return problems


def _hash_problems(appliance: Appliance, index: int, user: User) -> list[str]:
    from provision.core.layout import load_layout

    assert user.password_hash is not None
    with appliance.mount_persist(index) as fs:
        held = fs.read_file(load_layout().role("password-hash").path, 4096).decode("ascii", "replace").strip()
    return [] if held == user.password_hash.reveal() else ["its password hash differs from the manifest's"]


# -- secrets files ----------------------------------------------------------------------------------


def _create_private(path: Path) -> int:
    """A new file that is 0600 from its creation (O_EXCL: never an existing file, never through a link)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_passwords(out_dir: Path, plain: dict[str, str]) -> Path:
    """DIR/initial-passwords.csv (name,password): rows of an earlier run are kept unless made again here."""
    kept = [(name, password) for name, password in _read_passwords(out_dir) if name not in plain]
    return _write_passwords(out_dir, [*kept, *plain.items()])


def drop_stale_passwords(out_dir: Path, results: Sequence[UserResult]) -> Path | None:
    """A generated password that no image holds any more leaves the file: a row that now gives its own hash
    and whose image (made or kept) holds that hash. Returns the file, or None when there is none (left)."""
    path = out_dir / PASSWORDS_FILE
    stale = {r.user.name for r in results if r.user.password_hash is not None and r.status in ("seeded", "skipped")}
    if stale and os.path.lexists(path):
        try:
            rows = _read_passwords(out_dir)
        except ProvisionError:
            return path  # not ours to rewrite (write_passwords refuses it when it has rows to add)
        kept = [(name, password) for name, password in rows if name not in stale]
        if not kept:
            os.unlink(path)
            _fsync_dir(out_dir)
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
    """Atomically: a new 0600 file beside it, synced, renamed over it."""
    path = out_dir / PASSWORDS_FILE
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "password"])
    writer.writerows(rows)
    tmp = out_dir / f".{PASSWORDS_FILE}.tmp"
    fd = _create_private(tmp)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(out_dir)
    return path


def write_report(
    out_dir: Path, results: Sequence[UserResult], options: BatchOptions, *, interrupted: bool = False
) -> Path:
    """DIR/report.json: one entry per user (no secrets, no exception's text); entries of users not in this
    run are kept."""
    path = out_dir / REPORT_FILE
    mine = {r.user.name for r in results}
    kept = []
    with contextlib.suppress(OSError, ValueError, TypeError, AttributeError):
        previous = json.loads(path.read_text(encoding="utf-8"))
        kept = [u for u in previous.get("users", []) if isinstance(u, dict) and u.get("name") not in mine]
    data = {
        "base": str(options.base.absolute()),
        "overlay": options.overlay,
        "interrupted": interrupted,  # Ctrl-C stopped the run: see each user's status
        "users": [*kept, *(r.to_json(options.overlay, options.base.absolute()) for r in results)],
    }
    tmp = out_dir / f".{REPORT_FILE}.tmp"
    fd = _create_private(tmp)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(json.dumps(data, indent=2) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    return path


class _Hasher:
    """Hash generated passwords in a process pool (656000 sha-512 rounds: ~0.7 s each) while the rest goes on."""

    def __init__(self, plain: dict[str, str]) -> None:
        self._plain = plain
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._futures: dict[str, concurrent.futures.Future[str]] = {}

    def __enter__(self) -> _Hasher:
        if self._plain:
            # spawn, not fork: appliance threads may be running, and a forked child would inherit their locks
            self._pool = concurrent.futures.ProcessPoolExecutor(
                min(len(self._plain), os.cpu_count() or 1), mp_context=multiprocessing.get_context("spawn"),
                initializer=_ignore_ctrl_c,
            )
            self._futures = {name: self._pool.submit(_hash_one, pw) for name, pw in self._plain.items()}
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def hash_for(self, name: str) -> Secret:
        from provision.core.credentials import validate_password_hash

        return validate_password_hash(self._futures[name].result())


def _ignore_ctrl_c() -> None:
    """In a hashing process: the terminal's Ctrl-C reaches the whole process group; the parent handles it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _hash_one(password: str) -> str:
    from provision.core.credentials import hash_password

    return hash_password(password).reveal()  # a Secret cannot be pickled back to the parent


class _Cancel:
    """Ctrl-C in the main thread: each worker finishes the image it is writing, shuts its appliance down
    cleanly, keeps the images it completed, removes its other temporary copies and returns."""

    def __init__(self, progress: Progress) -> None:
        self.event = threading.Event()
        self._progress = progress

    def is_set(self) -> bool:
        return self.event.is_set()

    def wait_for(self, futures: Sequence[concurrent.futures.Future]) -> None:
        """Wait for every worker; on Ctrl-C, tell them to stop, still wait, then raise KeyboardInterrupt."""
        pending = set(futures)
        while pending:
            try:
                _, pending = concurrent.futures.wait(pending, timeout=0.2)
            except KeyboardInterrupt:
                if not self.event.is_set():
                    self.event.set()
                    self._progress.note(
                        "stopping (Ctrl-C): each appliance finishes the image it is on and shuts down cleanly; "
                        "temporary copies are removed"
                    )
        for future in futures:
            future.result()  # a bug in a worker surfaces here
        if self.event.is_set():
            raise KeyboardInterrupt


# -- one chunk: copies, one appliance, seeding, rename ---------------------------------------------


class _CopyStopped(Exception):
    """qemu-img got the terminal's Ctrl-C: not a failure of the image."""


def describe_failure(exc: BaseException) -> str:
    """What the report and the screen say about a failure. The tool's own errors carry messages written
    for that; any other exception's text could hold anything (a path, part of a file), so only its kind
    is said (a host error by its errno), and the traceback goes to stderr with ZVM_PROVISION_DEBUG=1."""
    if isinstance(exc, ProvisionError):
        return exc.message
    if isinstance(exc, OSError) and exc.errno:
        return f"host error: {os.strerror(exc.errno)}"
    if os.environ.get("ZVM_PROVISION_DEBUG") == "1":
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    return f"internal error ({type(exc).__name__}); run again with ZVM_PROVISION_DEBUG=1 to see where"



class _Disk:
    """One disk of a shared appliance, shaped like seed.ImageSession so seed.run_seed seeds it.

    Persist is mounted read-write once for reading the state, applying and verifying: these are fresh
    copies this run owns, so the read-only first look that protects a person's own image is not needed.
    """

    def __init__(self, appliance: Appliance, index: int, info: ImageInfo, user: User) -> None:
        self.appliance = appliance
        self.index = index
        self.info = info
        self.user = user
        self._stack = contextlib.ExitStack()
        self._fs: PersistFS | None = None

    def read_state(self) -> ImageState:
        from provision.core.layout import load_layout
        from provision.core.state import read_state

        self._fs = self._stack.enter_context(self.appliance.mount_persist(self.index))  # the handle is read-write
        state = read_state(self._fs, load_layout())
        if state.netbird_setup_key_present and self.user.netbird_setup_key is None:
            raise ProvisionError(
                "the base image carries a Netbird setup key, which every copy would share; "
                "give this user a netbird_setup_key or use a base without one"
            )
        return state

    def apply(self, plan: Plan, progress: Callable[[Operation], None] | None = None) -> None:
        from provision.core.apply import apply_and_verify

        assert self._fs is not None
        apply_and_verify(plan, self._fs, progress)

    def close(self) -> None:
        self._stack.close()


class _ChunkWorker:
    def __init__(self, options, base, out_dir, results, hasher, progress, cancel) -> None:
        self.options: BatchOptions = options
        self.base: ImageInfo = base
        self.out_dir: Path = out_dir
        self.results: dict[str, UserResult] = results
        self.hasher: _Hasher = hasher
        self.progress: Progress = progress
        self.cancel: _Cancel = cancel
        self.counted: set[str] = set()  # users the progress bar has counted

    def fail(self, user: User, message: str) -> None:
        result = self.results[user.name]
        result.status, result.error = "failed", message
        if user.name in self.counted:
            self.progress.note(f"{user.name}: FAILED: {message}")
        else:
            self.counted.add(user.name)
            self.progress.finished(user.name, False, message)

    def run(self, number: int, users: list[User]) -> None:
        partials = {u.name: _partial_path(self.out_dir, u) for u in users}
        try:
            self._run(number, users, partials)
        except Exception as exc:  # a bug or a host I/O error: this chunk's unfinished images fail, others go on
            message = describe_failure(exc)
            for user in users:
                if self.results[user.name].status not in ("seeded", "failed"):
                    self.fail(user, message)
        finally:
            self.progress.phase_done(number)
            for path in partials.values():
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)

    def _run(self, number: int, users: list[User], partials: dict[str, Path]) -> None:
        """Copies, one appliance, seeding, a clean shutdown, then the renames. After Ctrl-C no new step
        starts: users left pending are reported as interrupted."""
        from provision.guest.diskformat import probe_image
        from provision.guest.appliance import Appliance

        if self.cancel.is_set():
            return
        kind = "overlay(s)" if self.options.overlay else "copies of the base"
        self.progress.phase(number, f"making {len(users)} {kind}")
        copied: list[tuple[User, ImageInfo]] = []
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            copies = {u.name: pool.submit(self.copy, partials[u.name]) for u in users}
            for user in users:
                try:
                    copies[user.name].result()
                    copied.append((user, probe_image(partials[user.name])))
                except _CopyStopped:
                    pass  # Ctrl-C reached qemu-img too
                except ProvisionError as exc:
                    self.fail(user, exc.message)
        if not copied or self.cancel.is_set():
            return
        self.progress.phase(number, f"starting an appliance with {len(copied)} disk(s)")
        appliance: Appliance | None = None
        seeded: list[User] = []
        try:
            appliance = Appliance([info for _, info in copied], readonly=False, accel=self.options.accel)
            appliance.launch()
            self.progress.phase(number, f"seeding {len(copied)} disk(s)")
            for index, (user, info) in enumerate(copied):
                if self.cancel.is_set():
                    break
                try:
                    self.seed_one(appliance, index, info, user)
                    seeded.append(user)
                    self.counted.add(user.name)
                    self.progress.finished(user.name, True)
                except Exception as exc:  # noqa: BLE001 - this image fails, the others go on
                    self.fail(user, describe_failure(exc))
            self.progress.phase(number, "writing to disk and shutting the appliance down")
            appliance.close()  # umount, sync, checked shutdown: only then are the copies complete
        except ProvisionError as exc:
            if appliance is not None:
                with contextlib.suppress(ProvisionError):
                    appliance.close()
            for user, _ in copied:
                if self.results[user.name].status != "failed":
                    self.fail(user, exc.message)
            return
        except BaseException:
            if appliance is not None:
                with contextlib.suppress(Exception):
                    appliance.close()  # the exception in flight says what went wrong
            raise
        for user in seeded:
            os.replace(partials[user.name], self.out_dir / user.image_name)
            self.results[user.name].status = "seeded"
        _fsync_dir(self.out_dir)

    def copy(self, target: Path) -> None:
        """A standalone sparse qcow2 copy of the base, or an overlay backed by it (absolute path, format given)."""
        base = self.base
        if self.options.overlay:
            command = ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(Path(base.path).absolute()),
                       "-F", base.format, str(target)]
        else:
            command = ["qemu-img", "convert", "-q", "-f", base.format, "-O", "qcow2", str(base.path), str(target)]
        try:
            subprocess.run(command, capture_output=True, text=True, check=True, stdin=subprocess.DEVNULL)
        except FileNotFoundError:
            raise ProvisionError("qemu-img is not installed (Debian: apt-get install qemu-utils)") from None
        except subprocess.CalledProcessError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(target)
            if exc.returncode == -signal.SIGINT:
                raise _CopyStopped() from None
            text = (exc.stderr or "").strip()
            if "No space left" in text:
                raise ProvisionError(f"the host disk is full: no space left in {self.out_dir} to copy the base") from None
            first = text.splitlines()[-1] if text else f"exit status {exc.returncode}"
            raise ProvisionError(f"qemu-img could not copy the base: {first}") from None

    def seed_one(self, appliance: Appliance, index: int, info: ImageInfo, user: User) -> None:
        from provision.ui import render as report
        from provision.core.request import PasswordChoice, SeedRequest
        from provision.commands.seed import run_seed

        result = self.results[user.name]
        if user.password_hash is not None:
            hashed = user.password_hash
        else:
            hashed = self.hasher.hash_for(user.name)
            result.password_generated = True
        request = SeedRequest(
            password=PasswordChoice.from_hash(hashed),
            keys=user.keys,
            replace_keys=True,  # only this user's keys, whatever the base holds
            host_keys=True,
            new_host_keys=True,  # every copy its own host key and machine-id
            new_machine_id=True,
            netbird_setup_key=user.netbird_setup_key,
            netbird_management_url=user.netbird_management_url,
        )
        disk = _Disk(appliance, index, info, user)
        try:
            outcome = run_seed(disk, request, dry_run=False)  # type: ignore[arg-type]
        finally:
            disk.close()
        plan = outcome.plan
        result.authorized_keys = plan.authorized_keys
        result.host_key = report.host_key_summary(plan.host_public_line)
        result.machine_id = plan.machine_id
        result.netbird_setup_key = user.netbird_setup_key is not None
        result.netbird_management_url = user.netbird_management_url


# -- what the command prints -----------------------------------------------------------------------


def render_result(result: BatchResult) -> str:
    lines = []
    for r in result.results:
        detail = r.error if r.status == "failed" else (f"made again: {r.redone}" if r.redone else "")
        lines.append(f"  {r.status:<8} {r.user.name:<24} {r.image.name}" + (f"  ({detail})" if detail else ""))
    lines.append("")
    lines.append(
        f"{result.count('seeded')} seeded, {result.count('skipped')} already complete, "
        f"{result.count('failed')} failed in {result.seconds:.0f} s. Report: {result.report_path}"
    )
    if result.passwords_path is not None:
        lines.append(
            f"Generated passwords are in {result.passwords_path} (mode 0600): hand them over, then delete the file."
        )
    if result.options.overlay:
        lines.append(
            f"The images are overlays backed by {result.options.base.absolute()}: copy the base along with "
            "them, to the same path, and never change it."
        )
    return "\n".join(lines)
