"""One chunk of a batch run, in its own thread: small overlays of the base under hidden names, ONE appliance
seeding all of them as disks (clones share labels and UUIDs: each disk's persist is found by its device) through
commands.seed.apply (the one seeding path) while the standalone copies of the base are made behind it (a
reflink where the filesystem shares blocks), a clean shutdown, then each overlay committed into its copy (or,
with --format/--compress, converted on every core: no copy at all) and only then renamed to DIR/<name>.qcow2, so
a file under its final name is always a complete image. Also the tools the chunks share: the password hasher (a
process pool) and the Ctrl-C flag. Long because the chunk's steps and the Ctrl-C rules they share read best
together.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from provision.host import writing as hostfiles
from provision.commands.batch.outputs import PasswordRows
from provision.commands.batch.model import (
    BatchOptions,
    BatchProgress,
    UserResult,
    UserStatus,
    describe_failure,
    image_path,
)
from provision.commands.seed.apply import run_seed
from provision.commands.workcopy import WorkCopy, copy_base
from provision.core.apply import apply_and_verify
from provision.core.credentials.certificates import host_certificate_summary
from provision.core.credentials.hostkeys import host_key_summary
from provision.core.credentials.passwords import hash_password, validate_password_hash
from provision.core.disk import ImageInfo
from provision.core.layout import load_layout
from provision.core.manifest import User
from provision.core.plan import Operation, Plan
from provision.core.request import PasswordChoice, SeedRequest
from provision.core.state import ImageState, read_state
from provision.errors import ProvisionError
from provision.guest import qemuimg
from provision.guest.appliance import Appliance
from provision.guest.convert import record_output
from provision.guest.diskformat import probe_image
from provision.guest.launch import Accel, LaunchCancelled
from provision.guest.persistfs import PersistFS
from provision.guest.qemuimg import QemuImgStopped
from provision.secret import Secret

COPY_THREADS = 4  # copies of the base made at once, behind the launch (I/O-bound: a sparse copy, or a reflink)


class Hasher:
    """Hash generated passwords in a process pool (656000 sha-512 rounds: ~0.7 s each) while the rest goes on."""

    def __init__(self, plain: dict[str, str]) -> None:
        self._plain = plain
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self._futures: dict[str, concurrent.futures.Future[str]] = {}

    def __enter__(self) -> Hasher:
        if self._plain:
            # spawn, not fork: appliance threads may be running, and a forked child would inherit their locks
            # The processes are started by the submits, here. A Ctrl-C while one starts, before its initializer
            # ran, printed that process's traceback: they are born with SIGINT ignored instead (an ignored signal
            # stays ignored through exec, and Python then installs no KeyboardInterrupt handler). A Ctrl-C in
            # the few milliseconds of the submits is lost; the next one counts.
            main = threading.current_thread() is threading.main_thread()  # only it may set a handler
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
            try:
                self._pool = concurrent.futures.ProcessPoolExecutor(
                    min(len(self._plain), os.cpu_count() or 1), mp_context=multiprocessing.get_context("spawn"),
                    initializer=_ignore_ctrl_c,
                )
                self._futures = {name: self._pool.submit(_hash_one, pw) for name, pw in self._plain.items()}
            finally:
                if main:
                    signal.signal(signal.SIGINT, signal.default_int_handler if previous is None else previous)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def hash_for(self, name: str) -> Secret:
        return validate_password_hash(self._futures[name].result())


def _ignore_ctrl_c() -> None:
    """In a hashing process: the terminal's Ctrl-C reaches the whole process group; the parent handles it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _hash_one(password: str) -> str:
    return hash_password(password).reveal()  # a Secret cannot be pickled back to the parent


class Cancel:
    """Ctrl-C in the main thread: each worker finishes the image it is writing, shuts its appliance down
    cleanly, keeps the images it completed, removes its other temporary copies and returns."""

    def __init__(self, progress: BatchProgress) -> None:
        self.event = threading.Event()
        self._progress = progress
        self._lock = threading.Lock()
        self._launching: set[Appliance] = set()

    def is_set(self) -> bool:
        return self.event.is_set()

    @contextlib.contextmanager
    def launching(self, appliance: Appliance) -> Iterator[None]:
        """Around appliance.launch(): a Ctrl-C meanwhile stops the launch at once (nothing is written before
        the appliance is up), and launch() raises LaunchCancelled."""
        with self._lock:
            self._launching.add(appliance)
            if self.event.is_set():
                appliance.cancel_launch()
        try:
            yield
        finally:
            with self._lock:
                self._launching.discard(appliance)

    def _stop(self) -> None:
        with self._lock:
            self.event.set()
            for appliance in self._launching:
                appliance.cancel_launch()

    def wait_for(self, futures: Sequence[concurrent.futures.Future]) -> None:
        """Wait for every worker; on Ctrl-C, tell them to stop, still wait, then raise KeyboardInterrupt."""
        pending = set(futures)
        while pending:
            try:
                _, pending = concurrent.futures.wait(pending, timeout=0.2)
            except KeyboardInterrupt:
                if not self.event.is_set():
                    # The stop is decided and bounded: later Ctrl-C change nothing. Ignored from here to the
                    # exit, so none lands in the hashing pool's shutdown (a Ctrl-C there left its processes
                    # waiting forever, and the exit with them) or cuts the report being written.
                    if threading.current_thread() is threading.main_thread():
                        signal.signal(signal.SIGINT, signal.SIG_IGN)
                    self._stop()
                    self._progress.note(
                        "stopping (Ctrl-C): an appliance still starting is stopped at once (nothing was written "
                        "yet); one seeding finishes the image it is on and shuts down cleanly; temporary copies "
                        "are removed; another Ctrl-C changes nothing"
                    )
        for future in futures:
            future.result()  # a bug in a worker surfaces here
        if self.event.is_set():
            raise KeyboardInterrupt


def work_in_one_appliance(
    number: int, infos: Sequence[ImageInfo], *, readonly: bool, accel: Accel, cancel: Cancel,
    progress: BatchProgress, verb: str, each: Callable[[Appliance, int], None],
    fail: Callable[[int, str], None], debug: bool, shutting_down: str | None = None,
) -> list[int] | None:
    """ONE appliance over a chunk's disks (batch's seeding, the fleet's audit and key changes): launch it (a
    Ctrl-C meanwhile stops it at once), `each` disk in turn until Ctrl-C, a checked shutdown. The indexes
    `each` completed, once the shutdown succeeded (only then are the writes complete); None when Ctrl-C
    stopped the launch (nothing written) or the appliance failed (each disk not failed yet is failed with its
    message). A disk whose `each` raised is failed alone (`fail`), and the others go on."""
    progress.phase(number, f"starting an appliance with {len(infos)} disk(s)")
    appliance: Appliance | None = None
    done: list[int] = []
    failed: set[int] = set()  # a failed shutdown fails the others, not these again
    try:
        appliance = Appliance(list(infos), readonly=readonly, accel=accel, notice=progress.say)
        with cancel.launching(appliance):
            appliance.launch()
        progress.phase(number, f"{verb} {len(infos)} disk(s)")
        for index in range(len(infos)):
            if cancel.is_set():
                break
            try:
                each(appliance, index)
                done.append(index)
            except Exception as exc:  # noqa: BLE001 - this image fails, the others go on
                failed.add(index)
                fail(index, describe_failure(exc, progress, debug=debug))
        if shutting_down:
            progress.phase(number, shutting_down)
        appliance.close()  # umount, sync, checked shutdown: only then are the disks complete
    except LaunchCancelled:  # Ctrl-C while it started: nothing written; its disks are reported as not reached
        assert appliance is not None
        appliance.close()
        return None
    except ProvisionError as exc:
        if appliance is not None:
            with contextlib.suppress(ProvisionError):
                appliance.close()
        for index in range(len(infos)):
            if index not in failed:
                fail(index, exc.message)
        return None
    except BaseException:
        if appliance is not None:
            with contextlib.suppress(Exception):
                appliance.close()  # the exception in flight says what went wrong
        raise
    return done


class _Disk:
    """One disk of a shared appliance: a commands.seed.apply.SeedTarget, as a guest.session.ImageSession is.

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
        self._fs = self._stack.enter_context(self.appliance.mount_persist(self.index))  # the handle is read-write
        state = read_state(self._fs, load_layout())
        if state.netbird_setup_key_present and self.user.netbird_setup_key is None:
            raise ProvisionError(
                "the base image carries a Netbird setup key, which every copy would share; "
                "give this user a netbird_setup_key or use a base without one"
            )
        return state

    def apply(self, plan: Plan, progress: Callable[[Operation], None] | None = None) -> None:
        assert self._fs is not None
        apply_and_verify(plan, self._fs, progress)

    def close(self) -> None:
        self._stack.close()


class ChunkWorker:
    def __init__(self, options: BatchOptions, base: ImageInfo, out_dir: Path, results: dict[str, UserResult],
                 hasher: Hasher, progress: BatchProgress, cancel: Cancel, rows: PasswordRows | None = None,
                 ) -> None:
        self.options = options
        self.base = base
        self.out_dir = out_dir
        self.results = results
        self.hasher = hasher
        self.progress = progress
        self.cancel = cancel
        self.rows = rows  # the generated passwords' rows, each written as its image is put in place
        self.counted: set[str] = set()  # users the progress bar has counted

    def fail(self, user: User, message: str) -> None:
        result = self.results[user.name]
        result.status, result.error = UserStatus.FAILED, message
        if user.name in self.counted:
            self.progress.note(f"{user.name}: FAILED: {message}")
        else:
            self.counted.add(user.name)
            self.progress.finished(user.name, False, message)

    def run(self, number: int, users: list[User]) -> None:
        work = {u.name: self.work_copy(u) for u in users}
        try:
            self._run(number, users, work)
        except Exception as exc:  # a bug or a host I/O error: this chunk's unfinished images fail, others go on
            message = describe_failure(exc, self.progress, debug=self.options.debug)
            for user in users:
                if self.results[user.name].status not in (UserStatus.SEEDED, UserStatus.FAILED):
                    self.fail(user, message)
        finally:
            self.progress.phase_done(number)
            for copy in work.values():
                copy.remove()

    def work_copy(self, user: User) -> WorkCopy:
        """Where the user's image is made: its hidden names beside DIR/<name>.qcow2 (.raw, ...)."""
        return WorkCopy(image_path(self.out_dir, user, self.options.output))

    def _run(self, number: int, users: list[User], work: dict[str, WorkCopy]) -> None:
        """Overlays of the base, then at once ONE appliance seeding them while the standalone copies are made
        behind it (a reflink where the filesystem shares blocks), a clean shutdown, then each overlay committed
        into its copy (or, --format/--compress, converted: no copy at all) and renamed. After Ctrl-C no new
        step starts: users left pending are reported as interrupted."""
        if self.cancel.is_set():
            return
        output = self.options.output
        copying = not self.options.overlay and not output.converted  # a standalone qcow2 of the base
        self.progress.phase(number, f"making {len(users)} overlay(s) of the base")
        targets: list[tuple[User, ImageInfo]] = []
        for user in users:
            try:
                targets.append((user, probe_image(self.make_target(work[user.name]))))
            except QemuImgStopped:
                break  # Ctrl-C reached the overlay too
            except ProvisionError as exc:
                self.fail(user, exc.message)
        if not targets or self.cancel.is_set():
            return
        with concurrent.futures.ThreadPoolExecutor(COPY_THREADS, thread_name_prefix="zvm-copy") as copier:
            copies = {u.name: copier.submit(copy_base, self.base, work[u.name].partial) for u, _ in targets
                      } if copying else {}
            try:
                seeded = self._seed(number, targets)
                if seeded:
                    self._place_all(number, seeded, work, copies)
            finally:
                for future in copies.values():
                    future.cancel()  # the copies not started yet; the pool waits for the others

    def make_target(self, work: WorkCopy) -> Path:
        """What the appliance seeds: with --overlay the image itself (an overlay of the base), else an overlay
        of the base to commit into the copy (or to convert)."""
        if self.options.overlay:
            work.make(self.base, overlay=True, failed=qemuimg.COPY_FAILED, full="to copy the base")
            return work.partial
        work.make_seeding(self.base)
        return work.seeding

    def _seed(self, number: int, targets: list[tuple[User, ImageInfo]]) -> list[User] | None:
        """ONE appliance seeding every target; the users seeded once it shut down cleanly, else None."""
        seeded: list[User] = []

        def seed(appliance: Appliance, index: int) -> None:
            user, info = targets[index]
            self.seed_one(appliance, index, info, user)
            seeded.append(user)
            self.counted.add(user.name)
            self.progress.finished(user.name, True)

        def fail(index: int, message: str) -> None:
            self.fail(targets[index][0], message)

        done = work_in_one_appliance(
            number, [info for _, info in targets], readonly=False, accel=self.options.accel, cancel=self.cancel,
            progress=self.progress, verb="seeding", each=seed, fail=fail, debug=self.options.debug,
            shutting_down="writing to disk and shutting the appliance down")
        return None if done is None else seeded  # None: Ctrl-C while it started, or the appliance failed

    def _place_all(self, number: int, seeded: list[User], work: dict[str, WorkCopy],
                   copies: dict[str, concurrent.futures.Future[None]]) -> None:
        """Every seeded image under its final name, on every core at once: each waits for its copy, is committed
        into it (or converted) and hashed; a user whose copy or conversion failed fails alone."""
        output = self.options.output
        waiting = "waiting for the copies of the base" if copies else f"writing {len(seeded)} image(s)"
        self.progress.phase(number, waiting + (f" ({output.describe()})" if output.converted else ""))
        stopped = threading.Event()

        def place(user: User) -> None:
            if stopped.is_set() or (self.cancel.is_set() and output.converted):
                return  # not converted yet: interrupted, its hidden files removed with the others
            try:
                copy = copies.get(user.name)
                if copy is not None:
                    copy.result()
                self.place(user, work[user.name], committed=copy is not None)
            except QemuImgStopped:
                stopped.set()  # Ctrl-C reached the copy or the conversion too
            except ProvisionError as exc:
                self.fail(user, exc.message)

        try:
            # every core: a conversion, or a commit and the sha256 of a whole image (hashlib releases the GIL)
            with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="zvm-place") as pool:
                for future in [pool.submit(place, user) for user in seeded]:
                    future.result()
        finally:
            hostfiles.fsync(self.out_dir)

    def place(self, user: User, work: WorkCopy, *, committed: bool) -> None:
        """A seeded image under its final name: the overlay committed into its copy (`committed`), or
        (--format, --compress) the overlay converted under a hidden name, then renamed; its size and sha256
        recorded for report.json."""
        output = self.options.output
        if committed:
            work.commit_seeding()
        seeded = work.seeding if output.converted and not self.options.overlay else None
        placing = self.rows.placing(user.name) if self.rows is not None else contextlib.nullcontext()
        work.finish(output, convert=output.converted, replace=True, seeded=seeded, placing=placing)
        result = self.results[user.name]
        result.output = record_output(work.final, output)
        result.status = UserStatus.SEEDED

    def seed_one(self, appliance: Appliance, index: int, info: ImageInfo, user: User) -> None:
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
            hostname=user.hostname,
            update_signers=self.options.update_signers,
            operator=self.options.operator,
            batch_row=user.name,
            host_cert=self.options.certs.host_cert,
            user_cas=self.options.certs.user_cas,
            user_principals=self.options.certs.user_principals,
        )
        disk = _Disk(appliance, index, info, user)
        try:
            outcome = run_seed(disk, request, dry_run=False)
        finally:
            disk.close()
        plan = outcome.plan
        result.authorized_keys = plan.authorized_keys
        result.host_key = host_key_summary(plan.host_public_line, user.hostname)
        result.machine_id = plan.machine_id
        result.host_certificate = host_certificate_summary(plan)
        result.netbird_setup_key = user.netbird_setup_key is not None
        result.netbird_management_url = user.netbird_management_url
