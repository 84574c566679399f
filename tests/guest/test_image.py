"""image.Appliance / PersistFS and sampledisk against the real appliance (TCG).

Launches are shared: one writable appliance for every layout check (module fixture `layouts`), one
writable appliance for every PersistFS write (module fixture `rw`), and one fresh read-only appliance
that reads everything back (module fixture `readback`, which closes `rw` first: its tests come last).

--accel auto is driven through stand-in hypervisors (tests/support/hypervisors.py), so its tests do not depend on
what this host's KVM does: `readback` launches under a KVM that works, `kvm_failures` runs the real command
where KVM hangs and where it crashes, `neighbours` launches a hanging and a healthy appliance at once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from provision.commands.sample_disk import create_sample_disk
from provision.core.fs import TEMP_PREFIX, Stat
from provision.core.text import parse_size
from provision.errors import ImageInUseError, ImageUnusableError, UnsafeEntryError, UsageError
from provision.guest import rawdisk, watchdog
from provision.guest.appliance import Appliance, NewPartition
from provision.guest.diskformat import probe_image
from provision.guest.launch import LaunchCancelled, Launcher
from provision.guest.sampledisk import plan_partitions
from tests.conftest import qemu_holding_lock
from tests.support.binding import needs_guestfs
from tests.support.hypervisors import stand_in
from tests.support.persist import write_file

TEST_ACCEL = "tcg"
REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20
HOST_KEY = b"-----BEGIN OPENSSH PRIVATE KEY-----\nORIGINAL\n-----END OPENSSH PRIVATE KEY-----\n"
HASH = b"$6$rounds=656000$salt$hash\n"
MACHINE_ID = b"0123456789abcdef0123456789abcdef\n"
KEYS = b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDummy user@host\n"


# -- pure parts ------------------------------------------------------------------------------------


def test_importing_image_does_not_import_guestfs():
    code = ("import sys, provision.guest.appliance, provision.guest.sampledisk, provision.guest.session;"
            " sys.exit('guestfs' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], env=os.environ).returncode == 0


@pytest.mark.parametrize(("text", "value"), [("20G", 20 << 30), ("256M", 256 * MiB), ("512k", 512 << 10), ("1T", 1 << 40), ("4096", 4096), ("2GiB", 2 << 30)])
def test_parse_size(text, value):
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "G", "20X", "-1G", "0", "1.5G", "20 G B"])
def test_parse_size_refuses_junk(text):
    with pytest.raises(UsageError):
        parse_size(text)


@pytest.mark.parametrize("size", ["256M", "20G"])
def test_layout_scales_and_fits(size):
    total = parse_size(size) // 512
    esp, nix, persist = plan_partitions(parse_size(size))
    assert [p.name for p in (esp, nix, persist)] == ["esp", "nix", "persist"]
    assert (esp.fs_type, esp.label, nix.label, persist.label, persist.fs_type) == ("vfat", "BOOT", "nix", "persist", "ext4")
    assert esp.start == 2048 and nix.start == esp.end + 1 and persist.start == nix.end + 1
    assert persist.end <= total - 34
    if size == "20G":
        assert (esp.end - esp.start + 1) * 512 == 512 * MiB
    nix_size, persist_size = nix.end - nix.start, persist.end - persist.start
    assert 0.55 < nix_size / (nix_size + persist_size) < 0.65


def test_sample_disk_refuses_to_overwrite(tmp_path):
    existing = tmp_path / "disk.qcow2"
    existing.write_bytes(b"keep")
    with pytest.raises(UsageError, match="already exists"):
        create_sample_disk(existing, "256M", accel=TEST_ACCEL)
    assert existing.read_bytes() == b"keep"
    assert os.listdir(tmp_path) == ["disk.qcow2"]


def test_too_small_sample_disk_is_refused(tmp_path):
    with pytest.raises(UsageError, match="at least 64M"):
        create_sample_disk(tmp_path / "d.qcow2", "32M", accel=TEST_ACCEL)


@needs_guestfs
def test_read_only_image_file_is_refused_before_launch(tmp_path):
    disk = tmp_path / "d.raw"
    disk.write_bytes(b"\0" * 510 + b"\x55\xaa" + b"\0" * 1024)
    disk.chmod(0o444)
    with pytest.raises(ImageUnusableError, match="read-only"):
        Appliance([probe_image(disk)], readonly=False, accel=TEST_ACCEL).launch()


@needs_guestfs
@pytest.mark.parametrize("verdict", ["hangs", "crashes"])
def test_auto_accel_goes_straight_to_tcg_when_the_cache_has_a_kvm_verdict(tmp_path, monkeypatch, verdict):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setattr(watchdog, "kvm_usable", lambda: True)
    monkeypatch.setattr(watchdog, "host_key", lambda hv: "this host")
    watchdog.remember_kvm_verdict("this host", verdict, "seen by a test")
    assert launched_accels(tmp_path) == ["tcg"]


def launched_accels(tmp_path) -> list[str]:
    """What Appliance(accel="auto").launch() would launch, in order (the launches themselves are not run)."""
    launched = []
    disk = tmp_path / "d.raw"
    disk.write_bytes(b"\0" * 510 + b"\x55\xaa" + b"\0" * 1024)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Launcher, "_launch_once", lambda self, accel, handle=None: launched.append(accel))
        Appliance([probe_image(disk)], readonly=True, accel="auto").launch()
    return launched


def test_verdicts_written_by_many_threads_at_once_are_all_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    keys = [f"host {n}" for n in range(24)]
    start = threading.Barrier(len(keys))

    def record(key):
        start.wait()
        watchdog.remember_kvm_verdict(key, "hangs", "seen by a test")

    threads = [threading.Thread(target=record, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    cache = tmp_path / "zvm-provision"
    verdicts = json.loads((cache / "accel.json").read_text())
    assert sorted(verdicts) == sorted(keys)
    assert {v["kvm"] for v in verdicts.values()} == {"hangs"}
    assert sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock")) == ["accel.json"]


def gpt_disk(path, layout: str, size=64 * MiB) -> bytes:
    """A raw disk with a GPT written by sfdisk (util-linux), the way the kernel will read it; its first sectors."""
    if shutil.which("sfdisk") is None:
        pytest.skip("sfdisk is not installed")
    with open(path, "wb") as fh:
        fh.truncate(size)
    subprocess.run(["sfdisk", "--quiet", str(path)], input="label: gpt\n" + layout, text=True, check=True,
                   capture_output=True)  # fmt: skip
    return path.read_bytes()[: rawdisk.GPT_READ]


def test_gpt_partitions_are_numbered_as_linux_numbers_them(tmp_path):
    raw = gpt_disk(tmp_path / "d.raw", "1 : size=8MiB\n3 : size=8MiB\n4 : size=8MiB\n")  # slot 2 unused
    assert rawdisk.gpt_partitions(raw, 64 * MiB) == [(1, 1 * MiB), (3, 9 * MiB), (4, 17 * MiB)]


@pytest.mark.parametrize(
    "damage",
    ["no protective MBR", "header CRC", "entries CRC", "disk smaller than the table says", "an MBR disk"],
)
def test_an_unusual_partition_table_is_left_to_the_full_listing(tmp_path, damage):
    raw = bytearray(gpt_disk(tmp_path / "d.raw", "size=8MiB\nsize=8MiB\n"))
    disk_size = 64 * MiB
    if damage == "no protective MBR":
        raw[446 + 4] = 0x83
    elif damage == "header CRC":
        raw[512 + 40] ^= 1  # first usable LBA
    elif damage == "entries CRC":
        raw[1024 + 32] ^= 1  # the first partition's start
    elif damage == "disk smaller than the table says":
        disk_size = 32 * MiB
    else:
        subprocess.run(["sfdisk", "--quiet", "--wipe", "always", str(tmp_path / "d.raw")],
                       input="label: dos\nsize=8MiB\n", text=True, check=True, capture_output=True)
        raw = (tmp_path / "d.raw").read_bytes()[: rawdisk.GPT_READ]
    assert rawdisk.gpt_partitions(bytes(raw), disk_size) is None


# -- partitions and find_persist ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def layouts(make_disk_copy, tmp_path_factory, qemu_img):
    """One launch: disk 0 is the sample; 1 has no persist, 2 has two, 3 has a persist that is not ext4; 4 has
    labels blkid shows escaped or not at all, and an ext3."""
    folder = tmp_path_factory.mktemp("layouts")
    scratch = []
    for name in ("none", "two", "ext2", "odd"):
        qemu_img("create", "-q", "-f", "qcow2", str(folder / f"{name}.qcow2"), "128M")
        scratch.append(folder / f"{name}.qcow2")
    paths = [make_disk_copy("layouts-sample"), *scratch]
    appliance = Appliance([probe_image(p) for p in paths], readonly=False, accel=TEST_ACCEL)
    appliance.launch()

    def part(n, fs_type, label):
        start = 2048 + (n - 1) * 32 * 2048
        return NewPartition(name=label, start=start, end=start + 32 * 2048 - 1, fs_type=fs_type, label=label)

    appliance.create_gpt_layout(1, [part(1, "vfat", "ESP"), part(2, "ext4", "nix")])
    appliance.create_gpt_layout(2, [part(1, "ext4", "persist"), part(2, "ext4", "persist")])
    appliance.create_gpt_layout(3, [part(1, "ext4", "nix"), part(2, "ext2", "persist")])
    appliance.create_gpt_layout(4, [part(1, "ext4", "my data"), part(2, "ext3", ""), part(3, "ext4", "persist")])
    yield appliance
    appliance.close()


@pytest.mark.appliance
def test_partitions_are_addressed_by_device_of_their_disk(layouts):
    parts = layouts.partitions(0)
    assert [(p.device, p.label, p.fs_type) for p in parts] == [
        ("/dev/sda1", "BOOT", "vfat"),
        ("/dev/sda2", "nix", "ext4"),
        ("/dev/sda3", "persist", "ext4"),
    ]
    assert all(p.size > 0 for p in parts)
    assert [p.device for p in layouts.partitions(2)] == ["/dev/sdc1", "/dev/sdc2"]


@pytest.mark.appliance
@pytest.mark.parametrize("index", range(5))
def test_the_quick_listing_is_the_one_blkid_gives(layouts, index):
    """partitions() reads ext labels and types from the superblocks (issue 20's audit speed): it must list
    exactly what the full listing (part_list and blkid per partition) lists, and not by falling back to it."""
    assert layouts._quick_partitions(index) is not None
    assert layouts.partitions(index) == layouts._list_partitions(index)


@pytest.mark.appliance
def test_find_persist_on_the_sample_disk(layouts):
    persist = layouts.find_persist(0)
    assert (persist.device, persist.label, persist.fs_type) == ("/dev/sda3", "persist", "ext4")


@pytest.mark.appliance
@pytest.mark.parametrize(
    ("index", "problem", "listed"),
    [
        (1, "no partition labelled 'persist'", ["/dev/sdb1 (label 'ESP', vfat", "/dev/sdb2 (label 'nix', ext4"]),
        (2, "2 partitions labelled 'persist'", ["/dev/sdc1 (label 'persist', ext4", "/dev/sdc2 (label 'persist', ext4"]),
        (3, "is not ext4", ["/dev/sdd1 (label 'nix', ext4", "/dev/sdd2 (label 'persist', ext2"]),
    ],
)
def test_find_persist_refusals_list_every_partition(layouts, index, problem, listed):
    with pytest.raises(ImageUnusableError) as info:
        layouts.find_persist(index)
    message = info.value.message
    assert str(layouts.images[index].path) in message and problem in message
    for entry in listed:
        assert entry in message


@pytest.mark.appliance
def test_an_error_while_closing_an_appliance_does_not_replace_the_error_that_caused_the_close(layouts):
    """The last `layouts` test: it kills that appliance's qemu, so closing it fails."""
    os.kill(layouts.handle.get_pid(), signal.SIGKILL)
    with pytest.raises(UnsafeEntryError, match="the cause") as info:
        with layouts:
            raise UnsafeEntryError("the cause")
    assert any("did not shut down cleanly" in note for note in getattr(info.value, "__notes__", []))


# -- the image lock ----------------------------------------------------------------------------------


@pytest.mark.appliance
def test_image_in_use_by_a_running_qemu_is_detected(sample_disk):
    with qemu_holding_lock(sample_disk), pytest.raises(ImageInUseError) as info:
        Appliance([probe_image(sample_disk)], readonly=False, accel=TEST_ACCEL).launch()
    assert f"{sample_disk} is in use by another process" in info.value.message


# -- PersistFS writes --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rw(make_disk_copy):
    """A writable appliance with persist mounted, seeded with a small tree and planted symlinks:

    /etc/ssh/ssh_host_ed25519_key   the host key (0:0 0600)
    /home/zvm/.ssh -> /etc/ssh      a symlinked directory component
    /passwords/zvm                  a hash (0:0 0600)
    /etc/machine-id -> /passwords/zvm   a symlink at a final component
    """
    disk = make_disk_copy("rw")
    appliance = Appliance([probe_image(disk)], readonly=False, accel=TEST_ACCEL)
    appliance.launch()
    with appliance.mount_persist(0) as fs:
        for path, uid, gid, mode in [
            ("/etc", 0, 0, 0o755), ("/etc/ssh", 0, 0, 0o755), ("/passwords", 0, 0, 0o700),
            ("/home", 0, 0, 0o755), ("/home/zvm", 1000, 100, 0o700),
        ]:  # fmt: skip
            fs.make_dir(path, uid, gid, mode)
        write_file(fs, "/etc/ssh/ssh_host_ed25519_key", HOST_KEY, 0, 0, 0o600)
        write_file(fs, "/passwords/zvm", HASH, 0, 0, 0o600)
        g = appliance.handle
        g.ln_s("/etc/ssh", "/home/zvm/.ssh")
        g.ln_s("/passwords/zvm", "/etc/machine-id")
        yield appliance, fs, disk
    appliance.close()


@pytest.mark.appliance
def test_handle_is_safe_and_qemu_is_out_of_the_terminals_process_group(rw):
    appliance, _fs, _disk = rw
    assert not appliance.handle.get_trace()
    assert not appliance.handle.get_network()
    assert os.getpgid(appliance.handle.get_pid()) != os.getpgrp()


@pytest.mark.appliance
def test_lstat_and_readlink(rw):
    _appliance, fs, _disk = rw
    assert fs.lstat("/nope") is None
    assert fs.lstat("/home/zvm/.ssh").kind == "symlink"
    assert fs.readlink("/home/zvm/.ssh") == "/etc/ssh"
    assert fs.lstat("/home/zvm") == Stat("dir", 1000, 100, 0o700, 2, fs.lstat("/home/zvm").size)
    assert fs.read_file("/etc/ssh/ssh_host_ed25519_key") == HOST_KEY


@pytest.mark.appliance
def test_lstat_many_answers_as_lstat_does(rw):
    _appliance, fs, _disk = rw
    paths = [
        "/", "/etc", "/etc/ssh/ssh_host_ed25519_key", "/home/zvm/.ssh", "/etc/machine-id",  # dir, file, links
        "/home/zvm/.ssh/ssh_host_ed25519_key",  # below a directory link: followed, as lstat follows it
        "/nope", "/nope/deeper/still", "/etc/ssh/ssh_host_ed25519_key/below-a-file", "/passwords/zvm",
    ]  # fmt: skip
    expected = {path: fs.lstat(path) for path in paths}
    assert expected["/nope"] is None and expected["/home/zvm/.ssh"].kind == "symlink"
    assert fs.lstat_many(paths) == expected


@pytest.mark.appliance
@pytest.mark.parametrize(
    "operation",
    [
        lambda fs: write_file(fs, "/home/zvm/.ssh/authorized_keys", KEYS, 1000, 100, 0o600),
        lambda fs: write_file(fs, "/home/zvm/.ssh/ssh_host_ed25519_key", b"EVIL", 1000, 100, 0o644),
        lambda fs: fs.make_dir("/home/zvm/.ssh/sub", 1000, 100, 0o700),
        lambda fs: fs.set_owner_mode("/home/zvm/.ssh/ssh_host_ed25519_key", 1000, 100, 0o644),
        lambda fs: fs.set_owner_mode("/home/zvm/.ssh", 1000, 100, 0o700),
        lambda fs: fs.read_file("/home/zvm/.ssh/ssh_host_ed25519_key"),
        lambda fs: fs.listdir("/home/zvm/.ssh"),
        lambda fs: fs.remove("/home/zvm/.ssh/ssh_host_ed25519_key"),
        lambda fs: fs.remove_tree("/home/zvm/.ssh/x"),
    ],
    ids=["write", "overwrite", "make_dir", "set_owner_mode", "chmod-link", "read", "listdir", "remove", "remove_tree"],
)
def test_a_symlinked_component_is_never_followed(rw, operation):
    _appliance, fs, _disk = rw
    with pytest.raises(UnsafeEntryError, match="symbolic link"):
        operation(fs)
    key = fs.lstat("/etc/ssh/ssh_host_ed25519_key")
    assert (key.uid, key.gid, key.mode) == (0, 0, 0o600)
    assert fs.read_file("/etc/ssh/ssh_host_ed25519_key") == HOST_KEY
    assert fs.listdir("/etc/ssh") == ["ssh_host_ed25519_key"]


@pytest.mark.appliance
def test_write_file_replaces_a_final_symlink_without_following_it(rw):
    _appliance, fs, _disk = rw
    write_file(fs, "/etc/machine-id", MACHINE_ID, 0, 0, 0o444)
    assert fs.lstat("/etc/machine-id").kind == "file"
    assert fs.read_file("/passwords/zvm") == HASH


@pytest.mark.appliance
def test_write_file_sets_owner_and_mode_and_leaves_no_temp_file(rw):
    _appliance, fs, _disk = rw
    fs.make_dir("/home/zvm/keys", 1000, 100, 0o700)
    write_file(fs, "/home/zvm/keys/authorized_keys", KEYS, 1000, 100, 0o600)
    write_file(fs, "/home/zvm/keys/authorized_keys", KEYS * 2, 1000, 100, 0o600)  # replace
    st = fs.lstat("/home/zvm/keys/authorized_keys")
    assert (st.kind, st.uid, st.gid, st.mode, st.nlink, st.size) == ("file", 1000, 100, 0o600, 1, 2 * len(KEYS))
    assert fs.listdir("/home/zvm/keys") == ["authorized_keys"]


@pytest.mark.appliance
def test_refusals_on_the_final_component(rw):
    _appliance, fs, _disk = rw
    with pytest.raises(UnsafeEntryError, match="directory"):
        write_file(fs, "/etc/ssh", b"x", 0, 0, 0o600)
    with pytest.raises(UnsafeEntryError, match="remove_tree"):
        fs.remove("/etc")
    with pytest.raises(UnsafeEntryError, match="where a directory is expected"):
        fs.make_dir("/etc/ssh/ssh_host_ed25519_key", 0, 0, 0o755)
    with pytest.raises(UnsafeEntryError, match="does not exist"):
        fs.make_dir("/var/lib/nixos", 0, 0, 0o755)  # one level at a time, never mkdir -p
    write_file(fs, "/etc/big", b"x" * 100, 0, 0, 0o600)
    with pytest.raises(UnsafeEntryError, match="more than"):
        fs.read_file("/etc/big", limit=10)


@pytest.mark.appliance
def test_remove_unlinks_a_symlink_not_its_target(rw):
    _appliance, fs, _disk = rw
    write_file(fs, "/etc/target", b"stay", 0, 0, 0o600)
    _appliance.handle.ln_s("/etc/target", "/etc/link")
    fs.remove("/etc/link")
    assert fs.lstat("/etc/link") is None
    assert fs.read_file("/etc/target") == b"stay"
    fs.make_dir("/var", 0, 0, 0o755)
    fs.make_dir("/var/tree", 0, 0, 0o755)
    write_file(fs, "/var/tree/file", b"x", 0, 0, 0o600)
    fs.remove_tree("/var/tree")
    assert fs.listdir("/var") == []


@pytest.mark.appliance
def test_make_dir_on_an_existing_directory_sets_owner_and_mode(rw):
    _appliance, fs, _disk = rw
    fs.make_dir("/etc/ssh", 0, 0, 0o750)
    assert fs.lstat("/etc/ssh").mode == 0o750
    fs.set_owner_mode("/etc/ssh", 0, 0, 0o755)
    assert fs.lstat("/etc/ssh").mode == 0o755


# -- read back with a fresh read-only handle (closes `rw`: keep these tests last) ----------------------


@pytest.fixture(scope="module")
def readback(rw, open_readonly, tmp_path_factory):
    """Close the writable appliance durably, then read persist back with a FRESH read-only handle.

    This launch also takes accel="auto" where KVM works, on any host: a stand-in hypervisor plays a working
    KVM (it runs the real qemu with TCG), and the launch must use it and record no verdict.
    """
    appliance, _fs, disk = rw
    appliance.close()
    appliance.close()  # idempotent
    folder = tmp_path_factory.mktemp("kvm-works")
    kvm = stand_in(folder / "hv", "kvm")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(folder / "cache"))
        patch.setenv("LIBGUESTFS_HV", str(kvm.path))
        patch.setattr(watchdog, "kvm_usable", lambda: True)
        with open_readonly(disk, accel="auto") as (ro, fs):
            return {
                "accel": ro.accel_used,
                "boots": kvm.boots(),
                "cache": folder / "cache" / "zvm-provision" / "accel.json",
                "stat": {p: fs.lstat(p) for p in [
                    "/etc/ssh/ssh_host_ed25519_key", "/etc/machine-id", "/passwords/zvm",
                    "/home/zvm/keys", "/home/zvm/keys/authorized_keys", "/home/zvm/.ssh",
                ]},  # fmt: skip
                "data": {p: fs.read_file(p) for p in [
                    "/etc/ssh/ssh_host_ed25519_key", "/etc/machine-id", "/passwords/zvm",
                    "/home/zvm/keys/authorized_keys",
                ]},  # fmt: skip
                "etc": fs.listdir("/etc"),
            }


@pytest.mark.appliance
def test_readback_owner_mode_and_content(readback):
    st, data = readback["stat"], readback["data"]
    owner_mode = {p: (s.kind, s.uid, s.gid, s.mode) for p, s in st.items()}
    assert owner_mode == {
        "/etc/ssh/ssh_host_ed25519_key": ("file", 0, 0, 0o600),
        "/etc/machine-id": ("file", 0, 0, 0o444),
        "/passwords/zvm": ("file", 0, 0, 0o600),
        "/home/zvm/keys": ("dir", 1000, 100, 0o700),
        "/home/zvm/keys/authorized_keys": ("file", 1000, 100, 0o600),
        "/home/zvm/.ssh": ("symlink", 0, 0, 0o777),
    }
    assert data["/etc/ssh/ssh_host_ed25519_key"] == HOST_KEY  # byte-identical behind the planted link
    assert data["/passwords/zvm"] == HASH
    assert data["/etc/machine-id"] == MACHINE_ID
    assert data["/home/zvm/keys/authorized_keys"] == KEYS * 2
    assert not [name for name in readback["etc"] if name.startswith(TEMP_PREFIX)]


@pytest.mark.appliance
def test_auto_accel_uses_a_working_kvm_and_records_no_verdict(readback):
    assert readback["accel"] == "kvm"
    assert readback["boots"] == ["kvm"]
    assert not readback["cache"].exists()


# -- --accel auto where KVM hangs or crashes: the real command, stand-in hypervisors -----------------------

# The real command, with two host facts decided by the test: /dev/kvm is usable (the stand-in plays KVM) and
# the KVM watchdog's timeout (the first argument, in seconds).
COMMAND_WITH_KVM = (
    "import sys; import provision.guest.watchdog as watchdog, provision.guest.launch as launch; "
    "watchdog.kvm_usable = lambda: True; "
    "launch.KVM_LAUNCH_TIMEOUT = float(sys.argv.pop(1)); sys.argv[0] = 'zvm-provision'; "
    "from provision.cli import main; main()"
)
KVM_WATCHDOG_S = 5


@pytest.fixture(scope="module")
def kvm_failures(make_disk_copy, tmp_path_factory):
    """`zvm-provision IMAGE --dry-run --accel auto` on a host where KVM hangs and on one where it crashes,
    at the same time, each with its own hypervisor and verdict cache."""
    from tests.support.keyfactory import public_line

    folder = tmp_path_factory.mktemp("kvm-failures")
    disk = make_disk_copy("kvm-failures")
    key = folder / "alice.pub"
    key.write_text(public_line() + "\n")
    runs = {}
    for behaviour in ("hang", "crash"):
        hv = stand_in(folder / behaviour, behaviour)
        cache = folder / behaviour / "cache"
        env = {**os.environ, "LIBGUESTFS_HV": str(hv.path), "XDG_CACHE_HOME": str(cache),
               "PYTHONPATH": str(REPO)}  # fmt: skip
        env.pop("ZVM_PROVISION_ACCEL", None)
        process = subprocess.Popen(
            [sys.executable, "-c", COMMAND_WITH_KVM, str(KVM_WATCHDOG_S), str(disk), "--dry-run", "--json",
             "--no-password", "--ssh-key", str(key), "--accel", "auto"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        runs[behaviour] = (process, hv, cache)
    results = {}
    for behaviour, (process, hv, cache) in runs.items():
        stdout, stderr = process.communicate(timeout=900)
        results[behaviour] = {"code": process.returncode, "stdout": stdout, "stderr": stderr, "hv": hv,
                              "cache": cache}  # fmt: skip
    return results


@pytest.mark.appliance
@pytest.mark.parametrize(("behaviour", "verdict", "said"), [("hang", "hangs", "did not answer within 5 s"),
                                                            ("crash", "crashes", "crashed")])
def test_auto_accel_verdict(kvm_failures, behaviour, verdict, said):
    run = kvm_failures[behaviour]
    assert run["code"] == 0, run["stderr"]
    assert json.loads(run["stdout"])["dry_run"] is True
    # First use: one line saying what happened, not screens of libguestfs errors.
    lines = [line for line in run["stderr"].splitlines() if line.strip()]
    assert len(lines) == 1, run["stderr"]
    assert said in lines[0] and "software emulation" in lines[0] and "remembered" in lines[0]
    assert run["hv"].boots() == ["kvm", "tcg"]  # KVM tried once, then TCG
    verdicts = json.loads((run["cache"] / "zvm-provision" / "accel.json").read_text())
    assert list(verdicts) == [watchdog.host_key(str(run["hv"].path))]
    assert [v["kvm"] for v in verdicts.values()] == [verdict]


@pytest.mark.appliance
@pytest.mark.parametrize("behaviour", ["hang", "crash"])
def test_later_runs_skip_kvm_by_the_verdict_the_real_command_recorded(kvm_failures, behaviour, tmp_path):
    run = kvm_failures[behaviour]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(run["cache"]))
        patch.setenv("LIBGUESTFS_HV", str(run["hv"].path))
        patch.setattr(watchdog, "kvm_usable", lambda: True)
        assert launched_accels(tmp_path) == ["tcg"]


def launch_under_a_hanging_kvm(appliance: Appliance, hang) -> tuple[threading.Thread, list[BaseException]]:
    """Launch `appliance` in a thread (its error is kept in the list); return once the hanging qemu is up."""
    errors: list[BaseException] = []

    def launch() -> None:
        try:
            appliance.launch()
        except BaseException as exc:  # noqa: BLE001 - examined by the test
            errors.append(exc)

    thread = threading.Thread(target=launch)
    thread.start()
    deadline = time.monotonic() + 300
    while not hang.boots() and time.monotonic() < deadline:
        time.sleep(0.1)
    return thread, errors


# -- a cancelled launch (Ctrl-C before the appliance is up) ------------------------------------------------


@pytest.mark.appliance
def test_a_cancelled_kvm_launch_under_auto_ends_at_once_records_no_verdict_and_tries_no_tcg(make_disk_copy, tmp_path,
                                                                                            monkeypatch):
    """The run is stopping: a KVM launch killed on purpose says nothing about this host's KVM, and no TCG
    launch follows. The KVM here hangs, with a watchdog of 600 s: only the cancel can end the launch sooner."""
    hang = stand_in(tmp_path / "hv", "hang")
    monkeypatch.setenv("LIBGUESTFS_HV", str(hang.path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(watchdog, "kvm_usable", lambda: True)
    appliance = Appliance([probe_image(make_disk_copy("cancelled"))], readonly=True, accel="auto", kvm_timeout=600)
    thread, errors = launch_under_a_hanging_kvm(appliance, hang)
    try:
        appliance.cancel_launch()
        thread.join(300)  # far beyond a cancel (a second), far below the 600 s watchdog
        assert not thread.is_alive(), "the cancel did not end the launch"
    finally:
        if not thread.is_alive():  # a handle still launching must not be closed under the launch
            appliance.close()
    assert [type(e) for e in errors] == [LaunchCancelled]
    assert hang.boots() == ["kvm"]
    assert not (tmp_path / "cache" / "zvm-provision" / "accel.json").exists()


# -- two appliances in one process (batch --jobs): a watchdog kills only its own qemu ----------------------


@pytest.fixture(scope="module")
def neighbours(make_disk_copy, tmp_path_factory):
    """Two appliances launched at once in this process: one under a KVM that hangs (short watchdog), and a
    healthy TCG one (an ImageSession, launched in the background as the command does)."""
    from provision.guest.session import ImageSession

    folder = tmp_path_factory.mktemp("neighbours")
    hang = stand_in(folder / "hv", "hang")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LIBGUESTFS_HV", str(hang.path))
        stuck = Appliance([probe_image(make_disk_copy("stuck"))], readonly=True, accel="kvm", kvm_timeout=20)
    stuck_thread, stuck_error = launch_under_a_hanging_kvm(stuck, hang)  # its watchdog runs
    session = ImageSession(probe_image(make_disk_copy("healthy")), readonly=True, accel="tcg").start()
    stuck_thread.join()
    yield {"session": session, "stuck": stuck, "stuck_error": stuck_error, "hang": hang}
    session.close()
    stuck.close()


@pytest.mark.appliance
def test_a_watchdog_kills_only_its_own_qemu(neighbours):
    session = neighbours["session"]
    [error] = neighbours["stuck_error"]
    assert "did not start within 20 s (KVM)" in str(error)
    assert neighbours["hang"].boots() == ["kvm"]
    session.wait()  # the healthy appliance started...
    os.kill(session.appliance.handle.get_pid(), 0)
    state = session.read_state()  # ...and works
    assert state.is_blank and state.stat("/") is not None


@pytest.mark.appliance
def test_an_error_while_closing_a_session_does_not_replace_the_error_that_caused_the_close(neighbours):
    session = neighbours["session"]
    session.wait()
    os.kill(session.appliance.handle.get_pid(), signal.SIGKILL)  # closing it will now fail
    with pytest.raises(UnsafeEntryError, match="the cause") as info:
        with session:
            raise UnsafeEntryError("the cause")
    assert any("did not shut down cleanly" in note for note in getattr(info.value, "__notes__", []))
