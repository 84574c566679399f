"""Many images, few launches, as batch does it: the images split into chunks (batch's plan_chunks), ONE
appliance per chunk with all of its images as disks (each disk's persist found by its device), `--jobs`
chunks at a time in threads (a launch releases the GIL), Ctrl-C as batch's (worker.Cancel: each appliance
finishes the image it is on and shuts down cleanly). The appliance's part is batch's own
(worker.work_in_one_appliance); what is done before it (the in-use check, --out-dir's copies) is the fleet's.

An image that cannot be opened (not an image, in use, refused by qemu, no persist) fails alone: its header is
probed and it is opened as a launch opens it (guest.qemuimg.open_problem) first, so it never stops the others'.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from provision.commands.batch.model import BatchProgress, describe_failure
from provision.commands.batch.run import plan_chunks
from provision.commands.batch.worker import Cancel, work_in_one_appliance
from provision.core.disk import ImageInfo
from provision.guest import qemuimg
from provision.guest.appliance import Appliance
from provision.guest.diskformat import probe_image
from provision.guest.launch import Accel


class ChunkWork(Protocol):
    """What a fleet command does with each image of a chunk."""

    def prepare(self, path: Path, info: ImageInfo) -> ImageInfo: ...  # the disk to add (a copy, or itself)
    def disk(self, appliance: Appliance, index: int, path: Path, info: ImageInfo) -> None: ...
    def failed(self, path: Path, message: str) -> None: ...
    def closed(self, paths: Sequence[Path]) -> None: ...  # after a clean shutdown: these disks are complete


def run_in_chunks(paths: Sequence[Path], work: ChunkWork, *, readonly: bool, accel: Accel, jobs: int,
                  max_disks: int, progress: BatchProgress, verb: str, debug: bool = False) -> None:
    """Run `work` over every image; KeyboardInterrupt (after every appliance shut down) on Ctrl-C. With
    `debug` (--debug), an unexpected failure's traceback goes to stderr (describe_failure)."""
    jobs, spans = plan_chunks(len(paths), jobs, max_disks)
    progress.start(len(paths))
    progress.note(f"{len(paths)} image(s) in {len(spans)} appliance launch(es), {jobs} at a time")
    cancel = Cancel(progress)
    chunks = [list(paths[start:end]) for start, end in spans]
    with concurrent.futures.ThreadPoolExecutor(jobs, thread_name_prefix="zvm-fleet") as pool:
        futures = [pool.submit(_run_chunk, number, chunk, work, readonly, accel, progress, cancel, verb, debug)
                   for number, chunk in enumerate(chunks, 1)]
        cancel.wait_for(futures)


def _run_chunk(number: int, paths: list[Path], work: ChunkWork, readonly: bool, accel: Accel,
               progress: BatchProgress, cancel: Cancel, verb: str, debug: bool) -> None:
    try:
        _open_and_work(number, paths, work, readonly, accel, progress, cancel, verb, debug)
    finally:
        progress.phase_done(number)


def _open_and_work(number: int, paths: list[Path], work: ChunkWork, readonly: bool, accel: Accel,
                   progress: BatchProgress, cancel: Cancel, verb: str, debug: bool) -> None:
    opened: list[tuple[Path, ImageInfo]] = []
    for path in paths:
        if cancel.is_set():
            return
        try:
            info = probe_image(path)
            if (problem := qemuimg.open_problem(info)) is not None:  # in use, say: it would stop the launch
                raise problem
            opened.append((path, work.prepare(path, info)))
        except qemuimg.QemuImgStopped:
            return  # Ctrl-C reached the copy too: not the image's failure
        except Exception as exc:  # noqa: BLE001 - this image fails, the others go on
            if cancel.is_set():
                return  # Ctrl-C reached the image tool too: not the image's failure
            work.failed(path, describe_failure(exc, progress, debug=debug))
    if not opened or cancel.is_set():
        return
    done = work_in_one_appliance(
        number, [info for _, info in opened], readonly=readonly, accel=accel, cancel=cancel, progress=progress,
        verb=verb, each=lambda appliance, index: work.disk(appliance, index, *opened[index]),
        fail=lambda index, message: work.failed(opened[index][0], message), debug=debug)
    if done is not None:
        work.closed([opened[index][0] for index in done])
