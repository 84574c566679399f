"""The host failing under a run (issue 25), with the real appliance: a full host disk while the appliance
writes, an fsync that fails when the written image is closed, and a read-only look at an image whose ext4
journal needs replaying.

A full disk is a tmpfs of a few MiB that the test mounts (it needs root; skipped otherwise) and unmounts.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import struct
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provision.errors import ProvisionError
from provision.guest import rawdisk
from provision.guest.appliance import Appliance
from provision.guest.diskformat import probe_image
from provision.host import writing as hostfiles
from tests.conftest import TEST_ACCEL
from tests.support.command import zvm
from tests.support.files import sha256
from tests.support.keyfactory import public_line
from tests.support.persist import write_file

EXT4_INCOMPAT_RECOVER = 0x0004  # the journal holds transactions not yet written to their place


@pytest.fixture
def full_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder on a tmpfs of 16 MiB, mounted for this test only."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> None:
    """Take every free byte of `folder`'s filesystem."""
    with open(folder / "filler", "wb") as handle:
        chunk = bytes(1 << 16)
        try:
            while True:
                handle.write(chunk)
                handle.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


@pytest.mark.appliance
def test_a_full_host_disk_while_seeding_fails_the_run_instead_of_pausing_it_forever(
        sample_disk_template, full_folder, tmp_path):
    """qemu's default for a write the host cannot store (werror=enospc) pauses the appliance: every call then
    waited forever, and the run with it. The appliance now gets an I/O error, and the run fails (exit 1)."""
    image = full_folder / "disk.raw"  # raw and sparse: every new block the appliance writes needs host space
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(sample_disk_template), str(image)],
                   check=True)
    fill(full_folder)
    key = tmp_path / "it.pub"
    key.write_text(public_line(comment="it@desk") + "\n")
    result = zvm("seed", image, "--no-password", "--ssh-key", key, "--yes", timeout=1200)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr


@pytest.mark.appliance
def test_an_fsync_failure_after_the_appliance_wrote_an_image_fails_its_close(sample_disk, monkeypatch):
    """Appliance.close() fsyncs each written image; a failure (EIO) was swallowed, and a run reported an image
    the host may not have kept."""
    appliance = Appliance([probe_image(sample_disk)], readonly=False, accel=TEST_ACCEL)
    appliance.launch()
    with appliance.mount_persist(0, writable=True) as fs:
        write_file(fs, "/written-by-the-test", b"data\n", 0, 0, 0o600)

    def failing(path):
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))

    monkeypatch.setattr(hostfiles, "fsync", failing)
    with pytest.raises(ProvisionError, match="could not be written out to the host disk"):
        appliance.close()


def persist_needs_recovery(raw: Path) -> bool:
    """Whether the persist filesystem of a raw disk has the ext4 journal-needs-recovery flag."""
    with open(raw, "rb") as handle:
        head = handle.read(rawdisk.GPT_READ)
        for _number, first, _size in rawdisk.gpt_entries(head, os.path.getsize(raw)) or []:
            handle.seek(first + 1024)
            superblock = handle.read(1024)
            found = rawdisk.ext_probe(superblock)
            if found and found[0] == "persist":
                return bool(struct.unpack_from("<I", superblock, 0x60)[0] & EXT4_INCOMPAT_RECOVER)
    raise AssertionError("no persist partition")


@pytest.fixture(scope="module")
def dirty(sample_disk_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A raw disk whose persist was being written when its appliance died: its journal needs replaying."""
    raw = tmp_path_factory.mktemp("dirty") / "dirty.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(sample_disk_template), str(raw)],
                   check=True)
    appliance = Appliance([probe_image(raw)], readonly=False, accel=TEST_ACCEL)
    appliance.launch()
    with contextlib.suppress(Exception):  # the unmount fails: the appliance died with persist mounted
        with appliance.mount_persist(0, writable=True) as fs:
            write_file(fs, "/half-written", b"x" * 4096, 0, 0, 0o600)
            os.kill(appliance.handle.get_pid(), signal.SIGKILL)
    with pytest.raises(ProvisionError):
        appliance.close()
    assert persist_needs_recovery(raw)
    return raw


@pytest.mark.appliance
def test_a_read_only_look_at_a_disk_whose_journal_needs_replaying_leaves_it_byte_identical(dirty, tmp_path):
    """inspect and a dry run mount persist read-only: the kernel replays the journal into the read-only
    drive's snapshot overlay, never into the file."""
    key = tmp_path / "it.pub"
    key.write_text(public_line(comment="it@desk") + "\n")
    before = sha256(dirty)
    with ThreadPoolExecutor(2) as pool:
        looks = [pool.submit(zvm, "inspect", dirty),
                 pool.submit(zvm, "seed", dirty, "--no-password", "--ssh-key", key, "--dry-run")]
        results = [look.result() for look in looks]
    for result in results:
        assert result.returncode in (0, 1), result.stderr  # 1: drift is fine here; no crash, no refusal
        assert "Traceback" not in result.stderr
    assert sha256(dirty) == before
    assert persist_needs_recovery(dirty)  # still for the VM's first boot to replay
