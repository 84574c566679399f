"""How batch's copies of the base get their bytes, and whether they fit.

- On a filesystem that shares blocks (a btrfs made in a loop-mounted file in the test's own folder), a copy of
  a qcow2 base is a reflink: its extents are the base's (filefrag says `shared`), the copy reads as the base
  does (qemu-img compare), and the free-space check counts no copy of the base's data. Where the filesystem
  cannot (ext4, tmpfs) or the base is raw, it is a real copy, silently.
- The free space is checked before the first copy, through the real command: an --out-dir on a small tmpfs
  refuses the run (exit 1) naming what is needed and what is free, and nothing is made.
- Through the real appliance, on btrfs: the seeded images share the base's blocks, hold no backing file, and
  each holds its own user's key (the overlay seeded behind the copy was committed into it).

Launches (TCG): one batch of two images on btrfs, one read-only look at them. The others launch nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from provision.commands.batch import run
from provision.commands.workcopy import REFLINK_PROBE, copy_base
from provision.guest.diskformat import probe_image
from tests.support.command import zvm
from tests.support.keyfactory import public_line

MIB = 1 << 20


def _mount(source: str, target: Path, *options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a test filesystem needs root")
    target.mkdir()
    done = subprocess.run(["mount", *options, source, str(target)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a test filesystem here ({' '.join(options)}): {done.stderr.strip()}")


def _unmount(target: Path) -> None:
    subprocess.run(["umount", str(target)], check=True)


@pytest.fixture
def btrfs(tmp_path: Path) -> Iterator[Path]:
    """A 256 MiB btrfs (it shares extents: FICLONE) in a file in the test's folder, loop-mounted."""
    if shutil.which("mkfs.btrfs") is None:
        pytest.skip("mkfs.btrfs is not installed (Debian: btrfs-progs)")
    image = tmp_path / "btrfs.img"
    with open(image, "wb") as handle:
        handle.truncate(256 * MIB)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True)
    _mount(str(image), tmp_path / "btrfs", "-o", "loop")
    yield tmp_path / "btrfs"
    _unmount(tmp_path / "btrfs")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs (no reflink) in the test's folder."""
    _mount("tmpfs", tmp_path / "small", "-t", "tmpfs", "-o", "size=24m,mode=0700")
    yield tmp_path / "small"
    _unmount(tmp_path / "small")


def qcow2_with_data(path: Path, data_mib: int) -> Path:
    """A qcow2 (no backing file) holding `data_mib` MiB of random bytes: allocated, not sparse."""
    raw = path.with_suffix(".raw")
    with open(raw, "wb") as handle:
        handle.write(os.urandom(data_mib * MIB))
        handle.truncate(4 * data_mib * MIB)
        handle.seek(510)
        handle.write(b"\x55\xaa")  # an MBR's signature: a disk image as a raw file too
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    raw.unlink()
    return path


def shares_extents(path: Path) -> bool:
    """filefrag's verdict: some extent of `path` is shared with another file."""
    listing = subprocess.run(["filefrag", "-v", str(path)], capture_output=True, text=True, check=True).stdout
    return any("shared" in line.split()[-1] for line in listing.splitlines() if ":" in line and ".." in line)


def same_content(first: Path, second: Path) -> bool:
    return subprocess.run(["qemu-img", "compare", "-q", str(first), str(second)], check=False).returncode == 0


def used(folder: Path) -> int:
    os.sync()
    stat = os.statvfs(folder)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def test_a_copy_of_a_qcow2_base_on_btrfs_is_a_reflink_sharing_its_blocks(btrfs: Path):
    base = probe_image(qcow2_with_data(btrfs / "base.qcow2", 32))
    before = used(btrfs)
    for name in ("alice", "bob", "carol"):
        copy_base(base, btrfs / f"{name}.qcow2")
    grown = used(btrfs) - before
    assert grown < 8 * MIB, f"three copies of a 32 MiB base took {grown} bytes: not shared"
    for name in ("alice", "bob", "carol"):
        copy = btrfs / f"{name}.qcow2"
        assert shares_extents(copy) and same_content(base.path, copy)
        assert probe_image(copy).backing_file is None and os.stat(copy).st_mode & 0o777 == 0o600


def test_where_blocks_cannot_be_shared_the_copy_is_a_real_one_silently(btrfs: Path, tmp_path: Path):
    on_btrfs = probe_image(qcow2_with_data(btrfs / "base.qcow2", 8))
    copy_base(on_btrfs, tmp_path / "across.qcow2")  # btrfs -> ext4 (or whatever holds tmp_path): no reflink
    assert not shares_extents(tmp_path / "across.qcow2") and same_content(on_btrfs.path, tmp_path / "across.qcow2")
    raw = btrfs / "base.raw"
    subprocess.run(["qemu-img", "convert", "-q", "-O", "raw", str(on_btrfs.path), str(raw)], check=True)
    copy_base(probe_image(raw), btrfs / "from-raw.qcow2")  # a raw base: the copy is converted into qcow2
    assert probe_image(btrfs / "from-raw.qcow2").format == "qcow2" and same_content(raw, btrfs / "from-raw.qcow2")


def test_the_space_check_counts_no_copy_of_the_data_where_copies_are_reflinks(btrfs: Path, small_tmpfs: Path):
    base = probe_image(qcow2_with_data(btrfs / "base.qcow2", 64))
    free = shutil.disk_usage(btrfs).free
    count = free // (64 * MIB) + 1  # real copies would not fit
    run._check_space(base, btrfs, count, overlay=False)  # reflinks do
    assert sorted(p.name for p in btrfs.iterdir()) == ["base.qcow2"]  # the probe is gone
    assert not (btrfs / REFLINK_PROBE).exists()
    with pytest.raises(Exception, match="not enough space"):
        run._check_space(base, btrfs, count, overlay=False, converted=True)  # a conversion writes the data


def test_a_run_that_cannot_fit_is_refused_before_the_first_copy_naming_needed_and_free(tmp_path: Path,
                                                                                      small_tmpfs: Path):
    base = qcow2_with_data(tmp_path / "base.qcow2", 8)
    for name in ("alice", "bob", "carol"):
        (tmp_path / f"{name}.pub").write_text(public_line(comment=f"{name}@laptop") + "\n")
    manifest = tmp_path / "staff.csv"
    manifest.write_text("username,ssh_keys\n" + "".join(f"{n},{n}.pub\n" for n in ("alice", "bob", "carol")))
    done = zvm("batch", manifest, "--base", base, "--out-dir", small_tmpfs / "out", "--accel", "tcg")
    assert done.returncode == 1, done.stderr
    line = " ".join(done.stderr.split())
    assert "not enough space in" in line and "3 image(s)" in line and "is free" in line, done.stderr
    assert "nothing was made" in line
    assert not [p.name for p in (small_tmpfs / "out").iterdir() if not p.name.startswith(".zvm-provision-batch")]
    assert "starting an appliance" not in done.stderr


@pytest.mark.appliance
def test_batch_on_btrfs_makes_reflinked_images_each_seeded_for_its_user(btrfs: Path, sample_disk_template: Path,
                                                                        open_readonly):
    base = btrfs / "base.qcow2"
    shutil.copyfile(sample_disk_template, base)
    keys = {name: public_line(comment=f"{name}@laptop") for name in ("alice", "bob")}
    for name, line in keys.items():
        (btrfs / f"{name}.pub").write_text(line + "\n")
    manifest = btrfs / "staff.csv"
    manifest.write_text("name,ssh_keys\n" + "".join(f"{n},{n}.pub\n" for n in keys))
    done = zvm("batch", manifest, "--base", base, "--out-dir", btrfs / "out", "--accel", "tcg", "--jobs", "1")
    assert done.returncode == 0, done.stderr
    out = btrfs / "out"
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".zvm")) == [
        "alice.qcow2", "bob.qcow2", "initial-passwords.csv", "report.json"]  # no overlay, copy or probe left
    for name, line in keys.items():
        image = out / f"{name}.qcow2"
        assert shares_extents(image), f"{name}'s image shares no block with the base"
        assert probe_image(image).backing_file is None  # standalone: the overlay was committed into the copy
        with open_readonly(image) as (_, fs):
            assert fs.read_file("/home/zvm/.ssh/authorized_keys") == (line + "\n").encode()
