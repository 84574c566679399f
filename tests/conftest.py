"""Shared fixtures. Appliance launches cost ~15 s each under TCG: share them, and pass accel="tcg".

A test that launches the appliance must be marked `@pytest.mark.appliance` (and only such a test), so that
`-m "not appliance"` is a fast subset. The guard below enforces it: a test whose fixtures include one that
launches the appliance fails at setup without the mark (before the launch), and a launch in this process
during an unmarked test fails that test at teardown. (A launch by a `zvm-provision` subprocess on an image
the test made itself is not seen: mark such tests by hand.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.files import copy_disk

TEST_ACCEL = "tcg"  # nested KVM hangs on these machines; tests never depend on ZVM_PROVISION_ACCEL
SAMPLE_SIZE = "512M"

# Property-based tests (tests/*/test_properties_*.py): a short run by default; ZVM_PROPERTY_EXAMPLES=N for a long one.
PROPERTY_EXAMPLES = int(os.environ.get("ZVM_PROPERTY_EXAMPLES") or 300)
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # not installed: the property tests fail to import and say so
    pass
else:
    settings.register_profile(
        "zvm",
        max_examples=PROPERTY_EXAMPLES,
        deadline=None,  # a shared, loaded machine: timing says nothing
        database=None,  # leave no .hypothesis folder behind; a failure prints its reproduction
        print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    settings.load_profile("zvm")

# pytester: test_appliance_marks.py runs the guard on inner test files; skipsummary: the closing skip line
pytest_plugins = ("pytester", "tests.support.skipsummary")

# Fixtures that launch the appliance (those depending on them are found through the fixture closure).
APPLIANCE_FIXTURES = frozenset({"sample_disk_template", "open_readonly"})
_MARK_HINT = "mark it @pytest.mark.appliance (the fast subset `-m 'not appliance'` must not launch it)"


def _is_marked(item: pytest.Item) -> bool:
    return item.get_closest_marker("appliance") is not None


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    uses = sorted(APPLIANCE_FIXTURES & set(getattr(item, "fixturenames", ())))
    if uses and not _is_marked(item):
        pytest.fail(f"{item.nodeid} uses {', '.join(uses)}, which launches the appliance: {_MARK_HINT}",
                    pytrace=False)


class _LaunchWatch:
    """Counts libguestfs launches in this process while an unmarked test (setup, call or teardown) runs."""

    def __init__(self) -> None:
        self.item: pytest.Item | None = None
        self.unmarked_launches = 0

    def launched(self) -> None:
        if self.item is not None and not _is_marked(self.item):
            self.unmarked_launches += 1


_watch = _LaunchWatch()


def pytest_configure(config: pytest.Config) -> None:
    try:
        import guestfs
    except ImportError:  # no libguestfs: nothing can launch
        return
    original = guestfs.GuestFS.launch
    if getattr(original, "_zvm_watched", False):
        return

    def launch(self, *args, **kwargs):
        _watch.launched()
        return original(self, *args, **kwargs)

    launch._zvm_watched = True  # type: ignore[attr-defined]
    guestfs.GuestFS.launch = launch


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    _watch.item, _watch.unmarked_launches = item, 0
    yield
    _watch.item = None


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    if _watch.unmarked_launches:
        count, _watch.unmarked_launches = _watch.unmarked_launches, 0
        pytest.fail(f"{item.nodeid} launched the appliance ({count}x) but is not marked: {_MARK_HINT}",
                    pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Session and module fixtures (which run before any test's own) get a HOME of their own too."""
    with pytest.MonkeyPatch.context() as patch:
        _point_home_at(patch, tmp_path_factory.mktemp("session-home"))
        yield


@pytest.fixture(autouse=True)
def _own_home(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test gets its own empty HOME and XDG_CACHE_HOME (the accel verdict is cached there), so none reads
    or writes the real home; `python -m provision` runs inherit them. A test setting its own wins (it runs later).
    Not under tmp_path: tests list that folder."""
    _point_home_at(monkeypatch, tmp_path_factory.mktemp("home"))


def _point_home_at(patch: pytest.MonkeyPatch, home: Path) -> None:
    patch.setenv("HOME", str(home))
    patch.setenv("XDG_CACHE_HOME", str(home / ".cache"))


def run_qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", *args], check=True, capture_output=True, text=True)


@pytest.fixture(scope="session")
def qemu_img() -> Callable[..., None]:
    """qemu_img("create", "-f", "qcow2", ...): run qemu-img, failing the test on an error."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    return run_qemu_img


@pytest.fixture(scope="session")
def sample_disk_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One blank zvm-layout disk (ESP, nix, persist) per session. Never write to it: copy it."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed")
    from provision.commands.sample_disk import create_sample_disk

    path = tmp_path_factory.mktemp("sample") / "template.qcow2"
    create_sample_disk(path, SAMPLE_SIZE, accel=TEST_ACCEL)
    return path


@pytest.fixture(scope="session")
def make_disk_copy(sample_disk_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """For module-scoped fixtures: make_disk_copy("name") -> a fresh copy of the sample disk."""

    def make(name: str) -> Path:
        return copy_disk(sample_disk_template, tmp_path_factory.mktemp(name) / f"{name}.qcow2")

    return make


@pytest.fixture
def sample_disk(sample_disk_template: Path, tmp_path: Path) -> Path:
    """This test's own copy of the sample disk."""
    return copy_disk(sample_disk_template, tmp_path / "disk.qcow2")


@pytest.fixture(scope="session")
def open_readonly():
    """open_readonly(path) -> context manager yielding (appliance, PersistFS) on a FRESH read-only handle."""
    from provision.guest.appliance import Appliance
    from provision.guest.diskformat import probe_image

    @contextmanager
    def opener(path: Path, *, accel: str = TEST_ACCEL, **options) -> Iterator:
        with Appliance([probe_image(path)], readonly=True, accel=accel, **options) as appliance:
            appliance.launch()
            with appliance.mount_persist(0) as fs:
                yield appliance, fs

    return opener


@contextmanager
def qemu_holding_lock(disk: Path) -> Iterator[subprocess.Popen]:
    """A paused qemu that holds `disk`'s write lock, as a running VM would; killed on exit."""
    import time

    qemu = subprocess.Popen(
        ["qemu-system-x86_64", "-nodefaults", "-display", "none", "-S",
         "-drive", f"file={disk},format=qcow2,if=none,id=d0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        # Wait until qemu holds the lock (qemu-img refuses to open a locked image without -U), however slow the
        # machine; a test never goes on without it. The bound is only against a qemu that never takes it.
        locked, deadline = False, time.monotonic() + 600
        while not locked and qemu.poll() is None and time.monotonic() < deadline:
            locked = subprocess.run(["qemu-img", "info", str(disk)], capture_output=True).returncode != 0
            if not locked:
                time.sleep(0.2)
        assert qemu.poll() is None, "the paused qemu did not start"
        assert locked, f"the paused qemu did not take {disk.name}'s lock within 600 s"
        yield qemu
    finally:
        qemu.kill()
        qemu.wait()
