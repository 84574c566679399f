"""`zvm-provision batch` without the appliance: what the run does around it.

The copies are real (qemu-img on a small blank qcow2), the manifest, the lock, the passwords file and
report.json are real files; only the libguestfs appliance is replaced by a stand-in, so that a failure can
be injected where it happens. Everything here is also exercised through the real appliance in
test_batch.py and test_runs.py.
"""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from provision.commands import batch
from provision.commands.batch import lock, model, resume, run
from provision.commands.batch import worker as batch_worker
from provision.core.credentials.passwords import hash_password
from provision.errors import ProvisionError
from provision.ui import progress as ui_progress
from provision.ui import render_batch
from provision.core.apply import apply_and_verify
from provision.core.layout import load_layout
from provision.core.state import read_state
from tests.support import libxcrypt
from tests.support.fakes import MemoryFS
from tests.support.keyfactory import public_line

SENTINEL = "SENTINEL-d41d8cd9 /home/someone/private/path"  # text no report may carry


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name in ("alice", "bob"):
        (tmp_path / f"{name}.pub").write_text(public_line(comment=f"{name}@laptop") + "\n")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(tmp_path / "base.qcow2"), "64M"], check=True)
    return tmp_path


def manifest(folder: Path, rows: dict[str, str | None]) -> Path:
    """rows: name -> password hash (None: generated)."""
    path = folder / "staff.csv"
    path.write_text("name,ssh_keys,password_hash\n"
                    + "".join(f"{name},{name}.pub,{hashed or ''}\n" for name, hashed in rows.items()))
    path.chmod(0o600)
    return path


def options(folder: Path, **extra) -> batch.BatchOptions:
    return batch.BatchOptions(manifest=folder / "staff.csv", base=folder / "base.qcow2", out_dir=folder / "out",
                              accel="tcg", **extra)


class StandInAppliance:
    """Takes the place of guest.appliance.Appliance: `launch` and `close` do what the test says."""

    launch_error: BaseException | None = None
    close_error: BaseException | None = None
    launch_notice: str | None = None  # what the launch tells, as a fallback to TCG does

    def __init__(self, images, *, readonly: bool, accel: str, notice=None) -> None:
        self.images = images
        self.notice = notice

    def launch(self) -> None:
        if self.launch_notice is not None:
            self.notice(self.launch_notice)
        if self.launch_error is not None:
            raise self.launch_error

    def close(self) -> None:
        if self.close_error is not None:
            raise self.close_error


@pytest.fixture
def stand_in(monkeypatch):
    class Appliance(StandInAppliance):
        pass

    monkeypatch.setattr(batch_worker, "Appliance", Appliance)  # the chunks' appliances
    monkeypatch.setattr(resume, "Appliance", Appliance)  # resume's read-only one
    return Appliance


class SeededInMemory(dict):
    """What each user's disk held after the product's own ChunkWorker.seed_one ran on it: name -> MemoryFS."""

    order: list[str]


def seeds_in_memory(monkeypatch, fail: dict[str, BaseException] | None = None) -> SeededInMemory:
    """The worker's real seed_one (its password choice, its request, the real plan applied and verified) on an
    in-memory persist per disk instead of the appliance's: the tests assert on what the product wrote there.
    `fail` raises, for a user, what reading that disk would raise."""
    seeded = SeededInMemory()
    seeded.order = []

    class MemoryDisk:
        def __init__(self, appliance, index, info, user) -> None:
            self.info, self.user = info, user

        def read_state(self):
            if fail and self.user.name in fail:
                raise fail[self.user.name]
            self.fs = seeded[self.user.name] = MemoryFS()
            seeded.order.append(self.user.name)
            return read_state(self.fs, load_layout())

        def apply(self, plan, progress=None) -> None:
            apply_and_verify(plan, self.fs, progress)

        def close(self) -> None:
            pass

    monkeypatch.setattr(batch_worker, "_Disk", MemoryDisk)
    return seeded


def password_hash_written(fs: MemoryFS) -> str:
    return fs.nodes["/passwords/zvm"].data.decode().rstrip("\n")


def read_report(folder: Path) -> tuple[str, dict[str, dict]]:
    text = (folder / "out" / "report.json").read_text()
    return text, {u["name"]: u for u in json.loads(text)["users"]}


# -- report.json never carries an exception's text ----------------------------------------------


@pytest.mark.parametrize("error, expected", [
    (RuntimeError(SENTINEL), "internal error (RuntimeError); run again with --debug to see where"),
    (OSError(28, "No space left on device", SENTINEL), "host error: No space left on device"),
    (OSError(SENTINEL), "internal error (OSError); run again with --debug to see where"),
])
def test_a_failing_launch_is_reported_without_the_exception_s_text(folder, stand_in, error, expected):
    manifest(folder, {"alice": hash_password("alice's password!", rounds=5000).reveal()})
    stand_in.launch_error = error
    result = batch.run_batch(options(folder), ui_progress.Progress(io.StringIO()))
    text, users = read_report(folder)
    assert users["alice"]["status"] == "failed"
    assert users["alice"]["error"] == expected
    assert "SENTINEL" not in text and "SENTINEL" not in render_batch.render_batch(result)
    assert not list((folder / "out").glob("*.qcow2")) and not list((folder / "out").glob(".*.partial"))


def test_what_a_launch_tells_reaches_the_run_s_stderr_as_it_is(folder, stand_in):
    """guest never prints: the launch's notice (KVM fell back to TCG) goes through the progress batch passes."""
    manifest(folder, {"alice": hash_password("alice's password!", rounds=5000).reveal()})
    stand_in.launch_notice = "zvm-provision: KVM did not answer within 60 s; using software emulation (TCG) instead"
    stand_in.launch_error = RuntimeError(SENTINEL)
    stream = io.StringIO()
    batch.run_batch(options(folder), ui_progress.Progress(stream))
    assert f"{stand_in.launch_notice}\n" in stream.getvalue()


@pytest.mark.parametrize("flag", [[], ["--debug"]])
def test_batch_debug_shows_a_failed_image_s_traceback_and_the_hint_names_the_flag(folder, stand_in, monkeypatch,
                                                                                   capsys, flag):
    """Through the command's own parsing and handler (in this process, for the stand-in): --debug used to be
    ignored for a failed image, whose hint named only ZVM_PROVISION_DEBUG."""
    from provision import cli

    manifest(folder, {"alice": hash_password("alice's password!", rounds=5000).reveal()})
    stand_in.launch_error = RuntimeError(SENTINEL)
    monkeypatch.delenv("ZVM_PROVISION_DEBUG", raising=False)
    monkeypatch.setattr(cli, "_debug_requested", False)
    with pytest.raises(SystemExit) as ended:
        cli.main(["batch", str(folder / "staff.csv"), "--base", str(folder / "base.qcow2"),
                  "--out-dir", str(folder / "out"), "--accel", "tcg", *flag])
    err = capsys.readouterr().err
    assert ended.value.code == 1, err
    assert "internal error (RuntimeError); run again with --debug to see where" in err
    if flag:
        assert "Traceback" in err and f"RuntimeError: {SENTINEL}" in err, err
    else:
        assert "Traceback" not in err and SENTINEL not in err, err
    assert SENTINEL not in read_report(folder)[0]


def test_a_bug_while_seeding_one_disk_fails_that_image_only_and_says_nothing_of_its_text(folder, stand_in,
                                                                                         monkeypatch):
    given = hash_password("a given password!", rounds=5000).reveal()
    manifest(folder, {"alice": given, "bob": given})
    seeded = seeds_in_memory(monkeypatch, fail={"alice": KeyError(SENTINEL)})
    stand_in.close_error = None
    batch.run_batch(options(folder), ui_progress.Progress(io.StringIO()))
    text, users = read_report(folder)
    assert (users["alice"]["status"], users["bob"]["status"]) == ("failed", "seeded") and seeded.order == ["bob"]
    assert password_hash_written(seeded["bob"]) == given
    assert users["alice"]["error"].startswith("internal error (KeyError)")
    assert "SENTINEL" not in text


def test_a_bug_while_closing_fails_the_chunk_and_says_nothing_of_its_text(folder, stand_in, monkeypatch):
    manifest(folder, {"alice": hash_password("alice's password!", rounds=5000).reveal()})
    seeds_in_memory(monkeypatch)
    stand_in.close_error = ValueError(SENTINEL)
    batch.run_batch(options(folder), ui_progress.Progress(io.StringIO()))
    text, users = read_report(folder)
    assert users["alice"]["status"] == "failed" and "SENTINEL" not in text
    assert not (folder / "out" / "alice.qcow2").exists()  # never renamed: the appliance did not close cleanly


# -- Ctrl-C between two disks of one appliance ----------------------------------------------------


def test_ctrl_c_between_two_disks_keeps_the_finished_image_and_reports_the_other(folder, stand_in, monkeypatch):
    given = hash_password("a given password!", rounds=5000).reveal()
    manifest(folder, {"alice": given, "bob": given})
    out = folder / "out"
    seeded: list[str] = []
    closed_with: list[list[str]] = []

    def seed_one(self, appliance, index, info, user):
        seeded.append(user.name)
        self.cancel.event.set()  # what the main thread does on Ctrl-C, while alice's image is written

    stand_in.close = lambda self: closed_with.append(sorted(p.name for p in out.iterdir()))
    monkeypatch.setattr(batch_worker.ChunkWorker, "seed_one", seed_one)
    with pytest.raises(batch.BatchInterrupted) as caught:
        batch.run_batch(options(folder, jobs=1), ui_progress.Progress(io.StringIO()))
    assert caught.value.exit_code == 130
    assert caught.value.message.startswith("stopped by Ctrl-C: 1 image(s) made, 1 not made; no partial image")
    assert seeded == ["alice"]  # bob's disk was not started
    # the appliance (seeding overlays while the copies are made behind it) was shut down before alice's image
    # got its final name
    assert len(closed_with) == 1 and {".alice.qcow2.seeding", ".bob.qcow2.seeding"} <= set(closed_with[0])
    assert set(closed_with[0]) <= {".alice.qcow2.seeding", ".bob.qcow2.seeding", ".alice.qcow2.partial",
                                   ".bob.qcow2.partial", ".zvm-provision-batch.key", ".zvm-provision-batch.lock"}
    assert sorted(p.name for p in out.iterdir()) == [".zvm-provision-batch.key", ".zvm-provision-batch.lock",
                                                     "alice.qcow2", "report.json"]
    report = json.loads((out / "report.json").read_text())
    assert report["interrupted"] is True
    assert [(u["name"], u["status"], u["error"]) for u in report["users"]] == [
        ("alice", "seeded", None), ("bob", "interrupted", "stopped by Ctrl-C before it was made")]


# -- a stale generated password leaves initial-passwords.csv -------------------------------------


def passwords(folder: Path) -> dict[str, str]:
    path = folder / "out" / model.PASSWORDS_FILE
    if not path.exists():
        return {}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rows = list(csv.reader(path.open(newline="")))
    assert rows[0] == ["name", "password"]
    return dict(rows[1:])


def test_a_row_that_now_gives_its_own_hash_drops_its_generated_password(folder, stand_in, monkeypatch):
    seeded = seeds_in_memory(monkeypatch)
    manifest(folder, {"alice": None, "bob": None})
    batch.run_batch(options(folder), ui_progress.Progress(io.StringIO()))
    first = passwords(folder)
    assert set(first) == {"alice", "bob"}
    for name in ("alice", "bob"):  # the password handed over is the one the image's hash lets in
        written = password_hash_written(seeded[name])
        assert libxcrypt.crypt(first[name], written) == written

    # alice now brings her own hash and her image is made again (--force): her old password must go
    given = hash_password("alice's own password", rounds=5000).reveal()
    manifest(folder, {"alice": given, "bob": None})
    result = batch.run_batch(options(folder, force=True), ui_progress.Progress(io.StringIO()))
    second = passwords(folder)
    assert set(second) == {"bob"} and second["bob"] != first["bob"]
    assert password_hash_written(seeded["alice"]) == given
    written = password_hash_written(seeded["bob"])
    assert libxcrypt.crypt(second["bob"], written) == written
    assert result.passwords_path == folder / "out" / model.PASSWORDS_FILE
    _, users = read_report(folder)
    assert (users["alice"]["password"], users["bob"]["password"]) == ("given", "generated")
    leftovers = sorted(p.name for p in (folder / "out").iterdir())
    assert leftovers == [".zvm-provision-batch.key", ".zvm-provision-batch.lock", "alice.qcow2", "bob.qcow2",
                         "initial-passwords.csv", "report.json"]  # written atomically: no temporary file left


def test_when_the_new_image_fails_the_old_one_keeps_its_password_in_the_file(folder, stand_in, monkeypatch):
    seeds_in_memory(monkeypatch)
    manifest(folder, {"alice": None})
    batch.run_batch(options(folder), ui_progress.Progress(io.StringIO()))
    first = passwords(folder)

    seeds_in_memory(monkeypatch, fail={"alice": ProvisionError("injected failure")})
    manifest(folder, {"alice": hash_password("alice's own password", rounds=5000).reveal()})
    batch.run_batch(options(folder, force=True), ui_progress.Progress(io.StringIO()))
    assert passwords(folder) == first  # alice.qcow2 of the first run is still there, with that password


def test_the_last_stale_password_removes_the_file(folder, stand_in, monkeypatch):
    seeds_in_memory(monkeypatch)
    manifest(folder, {"alice": None})
    first = batch.run_batch(options(folder), ui_progress.Progress(io.StringIO()))
    assert first.passwords_path is not None
    manifest(folder, {"alice": hash_password("alice's own password", rounds=5000).reveal()})
    second = batch.run_batch(options(folder, force=True), ui_progress.Progress(io.StringIO()))
    assert second.passwords_path is None and not (folder / "out" / model.PASSWORDS_FILE).exists()
    assert "Generated passwords" not in render_batch.render_batch(second)


# -- the live status -----------------------------------------------------------------------------


def test_the_live_status_is_only_for_a_terminal_and_never_with_json(monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert type(ui_progress.default_progress()) is ui_progress.RichProgress
    assert type(ui_progress.default_progress(json_out=True)) is ui_progress.Progress
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert type(ui_progress.default_progress()) is ui_progress.Progress


def test_the_live_status_shows_each_launch_s_step_with_its_elapsed_seconds():
    from rich.console import Console

    now = [100.0]
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100, color_system=None)
    progress = ui_progress.RichProgress(console=console, get_time=lambda: now[0])
    progress.start(3)
    progress.phase(1, "copying 2 image(s)")
    progress.phase(2, "copying 1 image(s)")
    now[0] += 4
    assert "launch 1: copying 2 image(s)" in render_live(progress) and " 4 s" in render_live(progress)
    progress.phase(1, "starting the appliance with 2 disk(s)")
    now[0] += 17
    screen = render_live(progress)
    assert "launch 1: starting the appliance with 2 disk(s)" in screen and "17 s" in screen  # its own clock
    assert "launch 2: copying 1 image(s)" in screen and "21 s" in screen
    progress.finished("alice", True)
    assert "1/3" in render_live(progress)
    progress.phase_done(1)
    assert "launch 1" not in render_live(progress)
    progress.stop()


def render_live(progress: ui_progress.RichProgress) -> str:
    from rich.console import Console

    buffer = io.StringIO()
    # what the live display draws at its next refresh (rich's own call; the product has no hook for it)
    Console(file=buffer, width=100, color_system=None).print(progress._live.get_renderable())
    return buffer.getvalue()


def test_plain_progress_prints_each_step_once_as_a_line():
    stream = io.StringIO()
    progress = ui_progress.Progress(stream)
    progress.start(2)
    progress.phase(1, "starting an appliance with 2 disk(s)")
    progress.finished("alice", True)
    progress.phase_done(1)
    progress.stop()
    assert stream.getvalue().splitlines() == [
        "batch: launch 1: starting an appliance with 2 disk(s)",
        "batch: [1/2] alice: done",
    ]


# -- the out-dir lock ------------------------------------------------------------------------------


def test_a_cell_with_a_line_break_keeps_the_refusal_one_line_per_problem(folder):
    """A quoted CSV cell may hold a newline: the missing key file's name split the problem over two lines, so
    the second read as a line of its own (and a script counting problems by line miscounted)."""
    manifest = folder / "staff.csv"
    manifest.write_text('name,ssh_keys,password_hash\nalice,"alice\nextra line.pub",\nbob,"bob\rx.pub",\n')
    manifest.chmod(0o600)
    result = subprocess.run(
        [sys.executable, "-m", "provision", "batch", str(manifest), "--base", str(folder / "base.qcow2"),
         "--out-dir", str(folder / "out"), "--accel", "tcg"],
        capture_output=True, text=True, timeout=120, env={**os.environ, "ZVM_PROVISION_ACCEL": "tcg"},
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].endswith("2 bad rows; nothing was created:") and lines[-1].startswith("hint:")
    assert lines[1:-1] == [f"  line 2: SSH key file {folder}/alice\\nextra line.pub: no such file",
                           f"  line 4: SSH key file {folder}/bob\\rx.pub: no such file"]
    assert not (folder / "out").exists()


def test_batch_with_format_raw_locks_the_raw_images_it_writes(folder):
    """batch --format raw writes alice.raw: it locked alice.qcow2, so a keys run on DIR/alice.raw (which locks
    alice.raw) and this batch wrote one image at once. The real command is refused while alice.raw is held."""
    manifest(folder, {"alice": None})
    out = folder / "out"
    out.mkdir()
    with lock.OutputLock(out, ["alice.raw"]):  # as `keys DIR/alice.raw` holds it
        result = subprocess.run(
            [sys.executable, "-m", "provision", "batch", str(folder / "staff.csv"), "--base",
             str(folder / "base.qcow2"), "--out-dir", str(out), "--format", "raw", "--accel", "tcg"],
            capture_output=True, text=True, timeout=600, env={**os.environ, "ZVM_PROVISION_ACCEL": "tcg"},
        )
    assert result.returncode == 4, result.stderr
    assert f"is writing to {out}: alice.raw" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".zvm-provision-batch.lock"]


def test_a_second_batch_on_a_locked_out_dir_is_refused_with_exit_4_and_touches_nothing(folder):
    """The lock is held here, as a running batch holds it; the real command is refused."""
    manifest(folder, {"alice": None})
    out = folder / "out"
    out.mkdir()
    (out / ".alice.qcow2.partial").write_bytes(b"the running batch's copy")
    with lock.OutputLock(out, ["alice.qcow2"]):
        result = subprocess.run(
            [sys.executable, "-m", "provision", "batch", str(folder / "staff.csv"), "--base",
             str(folder / "base.qcow2"), "--out-dir", str(out), "--accel", "tcg"],
            capture_output=True, text=True, timeout=120, env={**os.environ, "ZVM_PROVISION_ACCEL": "tcg"},
        )
    assert result.returncode == 4, result.stderr
    # whoever holds it (batch, keys or batch-report: the lock does not say), never only "another batch"
    assert (f"another zvm-provision run (batch, keys or batch-report) is writing to {out}: alice.qcow2"
            in result.stderr)
    assert sorted(p.name for p in out.iterdir()) == [".alice.qcow2.partial", ".zvm-provision-batch.lock"]
