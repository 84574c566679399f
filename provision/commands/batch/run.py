"""`zvm-provision batch`: one seeded image per employee, from a manifest.

How a run goes:

1. The whole manifest is validated (batch/manifest.py, core.manifest), each distinct gh:/gl:/https key
   source fetched once (fetch.forgekeys.KeyFetcher; a shard fetches its own rows' sources only); any bad row
   stops the run before anything is written.
2. Outputs that already exist are checked in one read-only appliance (resume.py): complete ones are skipped
   unless --force, the others are made again.
3. Generated passwords are hashed in a process pool while the copies and the launch go on; each is written
   to DIR/initial-passwords.csv (outputs.py, 0600 from its creation) just before its image gets its final
   name, so an image that fails or is not reached leaves the earlier row and image as they were.
4. The free space is checked (_check_space), then images are made in chunks (worker.py) of up to
   MAX_DISKS_PER_APPLIANCE disks: each chunk's overlays of the base are made under hidden temporary names
   (0600, exclusively: commands.workcopy), all of them added to ONE appliance (clones share labels and UUIDs:
   each disk's persist is found by its device) and seeded one after the other through
   commands.seed.apply.run_seed (the one seeding path) while the copies of the base are made behind the
   launch; only after the appliance shut down cleanly is each overlay committed into its copy (or converted)
   and renamed to DIR/<name>.qcow2. So a file under its final name is always a complete image. --jobs chunks
   run in parallel threads (launch releases the GIL).
5. DIR/report.json records every user: no secrets in it. A shard (--shard K/N) writes report-K-of-N.json and
   initial-passwords-K-of-N.csv instead, so that the shards of one roll-out can share DIR at the same time
   (lock.py: a run owns its rows' images and its own files, not the folder); batch-report merges them.

A failure on one image is reported and the others go on; the exit is 1 if any failed.

Where the time goes (TCG, 2 cores, measured with scripts/bench.py): a launch with 10 disks ~18 s; then
about 1 s per disk inside the appliance (finding persist from the partitions' superblocks, mounting, reading,
writing, one sync, verifying, unmounting). Two appliances in parallel beat one on 2 cores; four are slower
(CPU-bound TCG).
"""

from __future__ import annotations

import concurrent.futures
import math
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from provision.commands.batch.lock import OutputLock
from provision.commands.batch.manifest import load_manifest
from provision.commands.batch.model import (
    BatchOptions,
    BatchProgress,
    BatchResult,
    UserResult,
    UserStatus,
    image_path,
    passwords_name,
    report_name,
)
from provision.commands.batch.outputs import PasswordRows, drop_stale_passwords, write_report
from provision.commands.batch.resume import check_existing
from provision.commands.batch.rowkey import folder_key
from provision.commands.batch.worker import Cancel, ChunkWorker, Hasher
from provision.commands.workcopy import copies_share_blocks, remove_leftovers
from provision.core.credentials.passwords import generate_password
from provision.core.disk import ImageInfo
from provision.core.outputformat import OutputSpec, check_overlay
from provision.core.manifest import User
from provision.core.rowdigest import row_digest
from provision.core.text import human_size
from provision.errors import ExitCode, ProvisionError, UsageError
from provision.fetch.forgekeys import KeyFetcher
from provision.guest import qemuimg
from provision.guest.diskformat import probe_image, require_image_file
from provision.host.writing import make_private_dirs

MIN_DISKS_PER_APPLIANCE = 4  # below this, a second appliance costs more than it saves
MAX_AUTO_JOBS = 4
OVERLAY_BYTES = 4 << 20  # a seeded overlay: the files seed writes and the qcow2 tables they touch
MAX_REASONS = 10  # why an existing image is made again: the first problems, then a count


def run_batch(options: BatchOptions, progress: BatchProgress) -> BatchResult:
    """Make the images; report.json is written at the end whatever happened, Ctrl-C included (then
    BatchInterrupted, exit 130, is raised after it)."""
    started = time.monotonic()
    # Every row validated, each distinct gh:/gl:/https key source fetched once, before any image is copied;
    # ManifestError (exit 2; 1 when a fetch failed on the way) otherwise.
    if options.overlay:
        check_overlay(options.output)  # before anything is read or made
    require_image_file(options.base)  # a missing base is said first: before the manifest and its fetches
    manifest = load_manifest(options.manifest, KeyFetcher(), shard=options.shard)  # a shard fetches its own
    users = manifest.shard(*options.shard) if options.shard else manifest.users
    base_info = probe_image(options.base)
    out_dir = _check_out_dir(options.out_dir, users, base_info, options.output)

    make_private_dirs(out_dir)  # 0700: it will hold images and initial-passwords.csv
    results = {u.name: UserResult(u, image_path(out_dir, u, options.output)) for u in users}
    interrupted = False
    owned = [image_path(out_dir, u, options.output).name for u in users]  # alice.raw with --format raw
    owned += [report_name(options.shard), passwords_name(options.shard)]
    with OutputLock(out_dir, owned):
        key = folder_key(out_dir)
        for user in users:
            results[user.name].row_digest = row_digest(key, user, overlay_of=_overlay_of(options),
                                                       output=options.output)
        try:
            _make_images(options, users, base_info, out_dir, results, progress)
        except KeyboardInterrupt:
            interrupted = True  # the workers have stopped and removed their temporary copies
        finally:
            progress.stop()
        for result in results.values():
            if result.status == UserStatus.PENDING:
                result.status = UserStatus.INTERRUPTED
                result.error = "stopped by Ctrl-C before it was made" + (
                    "; the earlier image is left as it was" if os.path.lexists(result.image) else "")
        passwords_path = drop_stale_passwords(out_dir, list(results.values()), options.shard)
        ordered = [results[u.name] for u in users]
        report_path = write_report(out_dir, ordered, options, manifest, interrupted=interrupted)
    outcome = BatchResult(options, manifest, ordered, report_path, passwords_path, time.monotonic() - started)
    if interrupted:
        raise BatchInterrupted(outcome)
    return outcome


class BatchInterrupted(ProvisionError):
    """Ctrl-C: the images made so far are complete, the others were not started or were discarded."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, result: BatchResult) -> None:
        super().__init__(
            f"stopped by Ctrl-C: {result.count(UserStatus.SEEDED)} image(s) made, "
            f"{result.count(UserStatus.INTERRUPTED)} not made; "
            f"no partial image is left. {result.report_path} lists each user's state.",
            hint="run the same command again to make the rest (complete images are kept)",
        )
        self.result = result


def _make_images(
    options: BatchOptions, users: Sequence[User], base_info: ImageInfo, out_dir: Path,
    results: dict[str, UserResult], progress: BatchProgress,
) -> None:
    _remove_partials(out_dir, users)
    todo = list(users)
    existing = [u for u in users if os.path.lexists(results[u.name].image)]
    if existing and not options.force:
        todo = [u for u in users if u not in existing]
        progress.phase(None, f"checking {len(existing)} existing image(s) (resume; --force makes them again)")
        for user, problems in check_existing(existing, out_dir, results, options.accel, options.max_disks,
                                             options.output, options.shard, progress=progress,
                                             debug=options.debug, overlay_of=_overlay_of(options)):
            if problems:
                results[user.name].redone = "; ".join(problems[:MAX_REASONS]) + (
                    f"; and {len(problems) - MAX_REASONS} more" if len(problems) > MAX_REASONS else "")
                todo.append(user)
            else:
                results[user.name].status = UserStatus.SKIPPED
        progress.phase_done(None)
        order = {u.name: i for i, u in enumerate(users)}
        todo.sort(key=lambda u: order[u.name])
    elif existing:
        for user in existing:
            results[user.name].redone = "--force"
    if not todo:
        return

    _check_space(base_info, out_dir, len(todo), options.overlay, options.output.converted)
    plain = {u.name: generate_password() for u in todo if u.password_hash is None}
    rows = PasswordRows(out_dir, plain, options.shard)  # each row written as its image is put in place
    with Hasher(plain) as hasher:
        jobs, chunks = plan_chunks(len(todo), options.jobs, options.max_disks)
        progress.start(len(todo))
        progress.note(
            f"{len(todo)} image(s) to make in {len(chunks)} appliance launch(es), {jobs} at a time"
            + (f"; {len(users) - len(todo)} already complete" if len(users) > len(todo) else "")
        )
        cancel = Cancel(progress)
        worker = ChunkWorker(options, base_info, out_dir, results, hasher, progress, cancel, rows)
        batches = [todo[start:end] for start, end in chunks]
        with concurrent.futures.ThreadPoolExecutor(jobs, thread_name_prefix="zvm-batch") as pool:
            futures = [pool.submit(worker.run, number, batch) for number, batch in enumerate(batches, 1)]
            cancel.wait_for(futures)


def _overlay_of(options: BatchOptions) -> str | None:
    """The base an image of this run is an overlay of, as report.json records it (None: standalone)."""
    return str(options.base.absolute()) if options.overlay else None


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


# -- checks before anything is written ----------------------------------------------------------


def _check_out_dir(out_dir: Path, users: Sequence[User], base: ImageInfo, output: OutputSpec) -> Path:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"--out-dir {out_dir} exists and is not a directory")
    out_dir = out_dir.absolute()
    base_real = os.path.realpath(base.path)
    for user in users:
        target = image_path(out_dir, user, output)
        if os.path.realpath(target) == base_real:
            raise UsageError(f"{target} is the base image itself; choose another --out-dir")
        if os.path.islink(target):
            raise UsageError(f"{target} is a symbolic link; move it away (batch never writes through a link)")
        if target.exists() and not target.is_file():
            raise UsageError(f"{target} exists and is not a regular file; move it away")
    return out_dir


def _check_space(base: ImageInfo, out_dir: Path, count: int, overlay: bool, converted: bool = False) -> None:
    """Refused before the first copy, naming what is needed and what is free, rather than failing at image 37.
    Each image needs its overlay being seeded, and (but for --overlay) its copy of the base or its conversion:
    the base's allocated size, or nothing new where the copies are reflinks sharing the base's blocks."""
    if overlay:
        per_image, how = OVERLAY_BYTES, "overlays"
    elif not converted and copies_share_blocks(base, out_dir):
        per_image, how = 2 * OVERLAY_BYTES, "reflinked copies sharing the base's blocks"
    else:
        per_image, how = _measure(base) + OVERLAY_BYTES, "converted images" if converted else "copies of the base"
    needed = per_image * count
    free = shutil.disk_usage(out_dir).free
    if needed > free:
        raise ProvisionError(
            f"not enough space in {out_dir}: {count} image(s) ({how}) need about {human_size(needed)}, "
            f"{human_size(free)} is free; nothing was made",
            hint="free some space, use --overlay (small images backed by the base), or split the run with --shard",
        )


def _measure(base: ImageInfo) -> int:
    measured = qemuimg.measure_qcow2(base)
    if measured is None:
        return os.stat(base.path).st_blocks * 512  # what the base occupies: an upper bound for a sparse copy
    return measured


def _remove_partials(out_dir: Path, users: Sequence[User]) -> None:
    """A run that was killed may leave its temporary copies (and conversions, into any format) behind: they are
    ours, and never complete."""
    for user in users:
        remove_leftovers(out_dir, user.name)
