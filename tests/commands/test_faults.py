"""Hostile images and faults (issue 7), through the real command and the real appliance.

Every command run here goes through `Run`, which watches it while it runs: the argv and environment of the
process and of every descendant (qemu included) are sampled from /proc, and every file in its private TMPDIR
is read while it exists. `test_no_secret_ever_leaks` checks all of that at the end, so each scenario is also
a secrets scenario (seed with --password-stdin, --password-file, --password-hash-file,
--netbird-setup-key-file, --dry-run, --json; inspect and inspect --json).

Launches are shared (about 15 s each under TCG): one writable appliance plants every hostile entry on several
copies of the sample disk, the command then runs once per scenario (several at a time: independent processes on
independent disks), and one appliance reads every disk back at the end.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provision.core.fs import TEMP_PREFIX
from provision.core.layout import load_layout
from provision.guest import watchdog
from provision.guest.appliance import Appliance, NewPartition
from provision.guest.diskformat import probe_image
from tests.conftest import qemu_holding_lock
from tests.support import libxcrypt, persist  # libxcrypt: Python's crypt module is gone in 3.13
from tests.support.files import copy_disk, sha256
from tests.support.held_writes import HOLD_WRITES_ENV
from tests.support.hypervisors import stand_in
from tests.support.keyfactory import public_line
from tests.support.persist import ASKED_FOR_ROLES, write_file

REPO = Path(__file__).resolve().parents[2]
LAYOUT = load_layout()
TEST_ACCEL = "tcg"
CACHEDIR = os.environ.get("LIBGUESTFS_CACHEDIR") or "/var/tmp"  # where the appliance is already built

# Recognisable secrets: none of them may appear anywhere but inside the image.
PASSWORD = "Zvm-Faults-Pa55word-91c7e2"
HASH_PASSWORD = "Zvm-Faults-Hashed-Pa55-4f0a"
PASSWORD_HASH = libxcrypt.crypt(HASH_PASSWORD, "$6$rounds=5000$fAuLtSsAlT$")
NETBIRD_KEY = "F4A7C0DE-5EC2-4E75-9A11-BADC0FFEE123"

SENTINEL = b"sentinel: a link's target, never to be written through\n"
MACHINE_ID = b"0123456789abcdef0123456789abcdef\n"
OLD_HASH = b"$6$rounds=5000$old$oldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldoldold\n"
OLD_KEYS = (public_line(comment="old@shared") + "\n").encode()
STALE_TEMP = b"half a secret from an interrupted run"


def image_unlocked(path: Path) -> bool:
    """qemu-img info (without -U) fails while another process holds the image's lock."""
    return subprocess.run(["qemu-img", "info", str(path)], capture_output=True).returncode == 0


def qemu_img_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-img", "check", str(path)], capture_output=True, text=True)


# -- watching a command while it runs --------------------------------------------------------------


def _parents() -> dict[int, int]:
    """Every process's parent, from /proc/PID/stat (which every Linux kernel has; the per-thread children lists
    need CONFIG_PROC_CHILDREN). A process forked by any thread has the process as its parent."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat_line = fh.read()
        except OSError:
            continue  # gone meanwhile
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after its last ")"
        parents[int(entry)] = int(stat_line[stat_line.rindex(b")") + 2:].split()[1])
    return parents


def _descendants(root: int) -> set[int]:
    """`root` and every process below it (a launch thread forks qemu)."""
    children: dict[int, list[int]] = {}
    for pid, parent in _parents().items():
        children.setdefault(parent, []).append(pid)
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += children.get(pid, [])
    return found


class Run:
    """The command, started in its own session with a fresh TMPDIR, sampled every 50 ms until it ends."""

    all_runs: list[Run] = []

    def __init__(self, name: str, work: Path, *args: str, stdin: bytes = b"", env: dict[str, str] | None = None,
                 module: str = "provision"):
        self.name = name
        self.tmpdir = work / f"tmp-{name}"
        self.tmpdir.mkdir()
        self.env = {
            **os.environ, "ZVM_PROVISION_ACCEL": TEST_ACCEL, "PYTHONPATH": str(REPO), "TMPDIR": str(self.tmpdir),
            "LIBGUESTFS_CACHEDIR": CACHEDIR, **(env or {}),
        }  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=self.env, start_new_session=True,
        )  # fmt: skip
        self.pids: set[int] = set()
        self.blobs: dict[str, bytes] = {}  # "pid cmdline" / "pid environ" / "tmp path size mtime" -> content
        self._done = threading.Event()
        self._out: tuple[bytes, bytes] = (b"", b"")
        self._sampler = threading.Thread(target=self._sample_loop, daemon=True)
        self._sampler.start()
        self._talker = threading.Thread(target=self._talk, args=(stdin,), daemon=True)
        self._talker.start()
        self.started = time.monotonic()
        Run.all_runs.append(self)

    def _talk(self, stdin: bytes) -> None:
        self._out = self.proc.communicate(stdin, timeout=900)
        self._done.set()

    def _sample_loop(self) -> None:
        while not self._done.is_set():
            self.sample()
            time.sleep(0.05)

    def sample(self) -> None:
        for pid in _descendants(self.proc.pid):
            self.pids.add(pid)
            for what in ("cmdline", "environ"):
                try:
                    with open(f"/proc/{pid}/{what}", "rb") as fh:
                        self.blobs.setdefault(f"{pid} {what}", b"")
                        self.blobs[f"{pid} {what}"] += b"\n" + fh.read()
                except OSError:
                    pass
        self.scan_tmpdir()

    def scan_tmpdir(self) -> None:
        for folder, _dirs, files in os.walk(self.tmpdir):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                    if not stat.S_ISREG(st.st_mode) or st.st_size > 64 << 20:
                        continue
                    key = f"tmp {path} {st.st_size} {st.st_mtime_ns}"
                    if key not in self.blobs:
                        with open(path, "rb") as fh:
                            self.blobs[key] = fh.read()
                except OSError:
                    pass

    def wait(self) -> Run:
        self._talker.join()
        self._sampler.join()
        self.scan_tmpdir()  # whatever it left behind
        self.seconds = time.monotonic() - self.started
        return self

    @property
    def code(self) -> int:
        return self.proc.returncode

    @property
    def stdout(self) -> str:
        return self._out[0].decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self._out[1].decode("utf-8", "replace")

    def __repr__(self) -> str:
        return f"<{self.name}: exit {self.code}\nstdout: {self.stdout[-2000:]}\nstderr: {self.stderr[-3000:]}>"


def run_all(runs: list) -> list[Run]:
    """Start (name, work, args, kwargs) runs, at most three at a time on these two cores; wait for all."""
    def one(spec):
        name, work, args, kwargs = spec
        return Run(name, work, *args, **kwargs).wait()

    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(one, runs))


def kill_once_writing(name: str, work: Path, args: list[str], sig: int, *, stdin: bytes = b"") -> Run:
    """Run the command held right after its first write (tests/support/held_writes.py: it marks `writing`,
    then waits for `resume`), send `sig` to its process group once the mark is there, then let it go on.

    A marker, not a delay: the signal lands inside the writes on a fast machine, a slow one and a busy one.
    (SIGINT: Python's handler runs in the held wait or at the latest in the next write; SIGKILL: the
    process dies with one write made.)"""
    hold = work / f"hold-{name}"
    hold.mkdir()
    run = Run(name, work, *args, stdin=stdin, env={HOLD_WRITES_ENV: str(hold)}, module="tests.support.held_writes")
    deadline = time.monotonic() + 900
    while not (hold / "writing").exists() and run.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    run.writing_seen = (hold / "writing").exists()
    if run.writing_seen:
        os.killpg(run.proc.pid, sig)  # the session the command started: qemu is in its own process group
    (hold / "resume").touch()
    run.wait()
    deadline = time.monotonic() + 600
    while not image_unlocked(Path(args[0])) and time.monotonic() < deadline:  # libguestfs's recovery kills qemu
        time.sleep(0.2)
    return run


# -- the planted disks -----------------------------------------------------------------------------

DIRS = [
    ("/passwords", 0, 0, 0o700), ("/home", 0, 0, 0o755), ("/home/zvm", 1000, 100, 0o700),
    ("/etc", 0, 0, 0o755), ("/etc/ssh", 0, 0, 0o755), ("/var", 0, 0, 0o755), ("/var/lib", 0, 0, 0o755),
    ("/var/lib/netbird", 0, 0, 0o700),
]  # fmt: skip


def plant(appliance: Appliance, index: int, name: str) -> None:
    g = appliance.handle
    with appliance.mount_persist(index, writable=True) as fs:
        for path, uid, gid, mode in DIRS:
            fs.make_dir(path, uid, gid, mode)
        if name == "links":
            write_file(fs, "/etc/ssh/authorized_keys", SENTINEL, 0, 0, 0o600)
            write_file(fs, "/etc/machine-id", MACHINE_ID, 0, 0, 0o444)
            g.ln_s("/etc/ssh", "/home/zvm/.ssh")  # a directory link, absolute inside persist
            g.ln_s("../etc/machine-id", "/passwords/zvm")  # a file link, relative
            g.ln_s("/persist/etc", "/home/zvm/.config")  # the VM's view of the same place (dangling here)
        elif name == "specials":
            fs.make_dir("/home/zvm/.ssh", 1000, 100, 0o700)
            g.mknod_c(0o444, 1, 3, "/etc/machine-id")  # /dev/null's numbers
            g.mkfifo(0o600, "/var/lib/netbird/setup-key")
            write_file(fs, "/passwords/zvm", OLD_HASH, 0, 0, 0o600)
            g.ln("/passwords/zvm", "/etc/password-hardlink")
            write_file(fs, "/home/zvm/.ssh/authorized_keys", OLD_KEYS, 1000, 100, 0o600)
            g.ln("/home/zvm/.ssh/authorized_keys", "/etc/keys-hardlink")
            g.write(f"/etc/ssh/{TEMP_PREFIX}0123456789abcdef", STALE_TEMP)  # left by a killed run
            g.write(f"/passwords/{TEMP_PREFIX}fedcba9876543210", STALE_TEMP)
        elif name == "dir-for-file":
            fs.make_dir("/home/zvm/.ssh", 1000, 100, 0o700)
            fs.make_dir("/home/zvm/.ssh/authorized_keys", 1000, 100, 0o700)
            write_file(fs, "/home/zvm/.ssh/authorized_keys/notes", b"the user's data\n", 1000, 100, 0o600)
        elif name == "file-for-dir":
            fs.remove_tree("/etc/ssh")
            write_file(fs, "/etc/ssh", b"a file where a directory belongs\n", 0, 0, 0o644)
        elif name == "hardlink-kept":
            write_file(fs, "/etc/machine-id", MACHINE_ID, 0, 0, 0o444)
            g.ln("/etc/machine-id", "/etc/machine-id.hardlink")
        else:
            raise ValueError(name)


PLANTED = ["links", "specials", "dir-for-file", "file-for-dir", "hardlink-kept"]


def _part(n: int, fs_type: str, label: str) -> NewPartition:
    start = 2048 + (n - 1) * 32 * 2048
    return NewPartition(name=label, start=start, end=start + 32 * 2048 - 1, fs_type=fs_type, label=label)


BAD_LAYOUTS = {
    "no-persist": [_part(1, "vfat", "ESP"), _part(2, "ext4", "nix")],
    "two-persist": [_part(1, "ext4", "persist"), _part(2, "ext4", "persist")],
    "persist-ext2": [_part(1, "ext4", "nix"), _part(2, "ext2", "persist")],
}


def read_back(disks: dict[str, Path]) -> dict[str, dict]:
    """Contract paths (stat, content) plus what the tests planted, per disk, in one launch (a writable
    appliance, read-only mounts: a killed run's journal is replayed, nothing else is written)."""
    extra = ["/etc/ssh/authorized_keys", "/etc/password-hardlink", "/etc/keys-hardlink", "/home/zvm/.config",
             "/etc/machine-id.hardlink"]
    names = list(disks)
    back = persist.read_back([disks[n] for n in names], extra=extra, also=_listing_temps_links,
                             replay_journal=True)
    return dict(zip(names, back, strict=True))


def _listing_temps_links(fs, stats: dict) -> dict:
    """The contract's folders (those reachable through folders), the temporary files in them, every link."""
    dirs = sorted({e.parent for e in LAYOUT.files})
    listing = {}
    for d in dirs:
        st = stats.get(d)
        if st is not None and st.kind == "dir" and all(
            stats.get(a) is not None and stats[a].kind == "dir" for a in _ancestors(d)
        ):
            listing[d] = fs.listdir(d)
    temps = {}
    for d, names_in in listing.items():
        for entry in names_in:
            if entry.startswith(TEMP_PREFIX):
                temp = f"{d.rstrip('/')}/{entry}"
                temps[temp] = (fs.lstat(temp), fs.read_file(temp))
    links = {p: fs.readlink(p) for p, st in stats.items() if st is not None and st.kind == "symlink"}
    return {"listing": listing, "temps": temps, "links": links}


def _ancestors(path: str) -> list[str]:
    parts = path.strip("/").split("/")
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts))] if path != "/" else []


# -- the whole scenario: runs once per session -----------------------------------------------------


@pytest.fixture(scope="module")
def world(sample_disk_template, tmp_path_factory, qemu_img):
    work = tmp_path_factory.mktemp("faults")
    started_wall = time.time()
    key = work / "alice.pub"
    key.write_text(public_line(comment="alice@laptop") + "\n")
    pw_file = work / "password.txt"
    pw_file.write_text(PASSWORD + "\n")
    hash_file = work / "hash.txt"
    hash_file.write_text(PASSWORD_HASH + "\n")
    nb_file = work / "netbird.key"
    nb_file.write_text(NETBIRD_KEY + "\n")
    for f in (pw_file, hash_file, nb_file):
        f.chmod(0o600)

    disks = {name: copy_disk(sample_disk_template, work / f"{name}.qcow2") for name in [*PLANTED, "killed", "interrupted", "in-use", "read-only"]}
    for name in BAD_LAYOUTS:
        qemu_img("create", "-q", "-f", "qcow2", str(work / f"{name}.qcow2"), "128M")
        disks[name] = work / f"{name}.qcow2"

    # 1 launch: plant every hostile entry and make the bad partition layouts.
    planted = [*PLANTED, *BAD_LAYOUTS]
    with Appliance([probe_image(disks[n]) for n in planted], readonly=False, accel=TEST_ACCEL) as appliance:
        appliance.launch()
        for index, name in enumerate(planted):
            if name in BAD_LAYOUTS:
                appliance.create_gpt_layout(index, BAD_LAYOUTS[name])
            else:
                plant(appliance, index, name)
    before = {name: sha256(path) for name, path in disks.items()}
    disks["read-only"].chmod(0o444)

    refuse = ["--no-password", "--ssh-key", str(key)]
    runs: dict[str, Run] = {}

    # A cached "KVM hangs" verdict for this host: --accel auto must go straight to TCG, without waiting. The
    # host's hypervisor is a stand-in that crashes under KVM, so a KVM attempt would show in its log whatever
    # this machine's KVM does.
    kvm_crashes = stand_in(work / "hv", "crash")
    cache_home = work / "xdg-cache"
    os.environ["XDG_CACHE_HOME"] = str(cache_home)
    try:
        watchdog.remember_kvm_verdict(watchdog.host_key(str(kvm_crashes.path)), "hangs", "planted by the test")
    finally:
        os.environ.pop("XDG_CACHE_HOME")

    # The image in use: a paused qemu holds its write lock.
    with qemu_holding_lock(disks["in-use"]):
        before["in-use"] = sha256(disks["in-use"])
        specs = [
            ("links", work, [str(disks["links"]), "--password-stdin", "--ssh-key", str(key), "--json"],
             {"stdin": PASSWORD.encode() + b"\n"}),
            ("specials", work, [str(disks["specials"]), "--password-file", str(pw_file), "--ssh-key", str(key),
                                "--netbird-setup-key-file", str(nb_file)], {}),
            ("in-use", work, [str(disks["in-use"]), *refuse], {}),
            ("read-only-dry-run", work, [str(disks["read-only"]), *refuse, "--dry-run", "--json", "--accel", "auto"],
             {"env": {"XDG_CACHE_HOME": str(cache_home), "LIBGUESTFS_HV": str(kvm_crashes.path)}}),
            *[(name, work, [str(disks[name]), *refuse], {}) for name in
              ["dir-for-file", "file-for-dir", "hardlink-kept", *BAD_LAYOUTS]],
        ]  # fmt: skip
        for run in run_all(specs):
            runs[run.name] = run
    after = {name: sha256(path) for name, path in disks.items()}

    # SIGKILL and Ctrl-C (SIGINT to the process group, as a terminal sends it) while writing, then reruns.
    killed_args = [str(disks["killed"]), "--password-hash-file", str(hash_file), "--ssh-key", str(key)]
    interrupted_args = [str(disks["interrupted"]), "--password-stdin", "--ssh-key", str(key),
                        "--netbird-setup-key-file", str(nb_file)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        killed = pool.submit(kill_once_writing, "killed", work, killed_args, signal.SIGKILL)
        interrupted = pool.submit(kill_once_writing, "interrupted", work, interrupted_args, signal.SIGINT,
                                  stdin=PASSWORD.encode() + b"\n")
        runs["killed"], runs["interrupted"] = killed.result(), interrupted.result()
    checks = {"killed": qemu_img_check(disks["killed"]), "interrupted": qemu_img_check(disks["interrupted"])}
    aftermath = {
        "killed-aftermath": copy_disk(disks["killed"], work / "killed-aftermath.qcow2"),
        "interrupted-aftermath": copy_disk(disks["interrupted"], work / "interrupted-aftermath.qcow2"),
    }
    for run in run_all([
        ("killed-rerun", work, killed_args, {}),
        ("interrupted-rerun", work, interrupted_args, {"stdin": PASSWORD.encode() + b"\n"}),
        ("inspect", work, ["inspect", str(disks["links"])], {}),
        ("inspect-json", work, ["inspect", str(disks["links"]), "--json"], {}),
    ]):
        runs[run.name] = run
    checks["killed-rerun"] = qemu_img_check(disks["killed"])
    checks["interrupted-rerun"] = qemu_img_check(disks["interrupted"])

    back = read_back({n: disks[n] for n in ["links", "specials", "killed", "interrupted"]} | aftermath)
    return {
        "work": work, "disks": disks, "runs": runs, "before": before, "after": after, "back": back,
        "checks": checks, "started_wall": started_wall, "kvm_crashes": kvm_crashes,
    }


def no_traceback(run: Run) -> None:
    assert "Traceback" not in run.stderr and "Traceback" not in run.stdout, run


def assert_contract(back: dict, *, netbird: bool) -> None:
    """Every contract path has its kind, owner and mode; the content is well-formed."""
    for entry in LAYOUT.entries:
        st = back["stats"][entry.path]
        if entry.role in ("netbird-setup-key", "netbird-management-url", "hostname", *ASKED_FOR_ROLES) and st is None:
            assert not (netbird and entry.role == "netbird-setup-key"), entry.path
            continue
        assert st is not None, entry.path
        assert (st.kind, st.uid, st.gid, st.mode) == (entry.kind, entry.uid, entry.gid, entry.mode), (entry.path, st)
    files = back["files"]
    assert files["/etc/machine-id"].decode().strip().isalnum() and len(files["/etc/machine-id"]) == 33
    private = files["/etc/ssh/ssh_host_ed25519_key"].decode()
    assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----") and private.endswith("-----END OPENSSH PRIVATE KEY-----\n")
    assert files["/etc/ssh/ssh_host_ed25519_key.pub"].startswith(b"ssh-ed25519 ")
    if netbird:
        assert files["/var/lib/netbird/setup-key"] == (NETBIRD_KEY + "\n").encode()
    assert not back["temps"], back["temps"]


# -- symlinks ----------------------------------------------------------------------------------------


@pytest.mark.appliance
def test_planted_symlinks_are_replaced_by_real_entries_and_their_targets_untouched(world):
    run = world["runs"]["links"]
    assert run.code == 0, run
    back = world["back"]["links"]
    assert_contract(back, netbird=False)
    assert back["stats"]["/home/zvm/.ssh"].kind == "dir"  # was -> /etc/ssh
    assert back["stats"]["/passwords/zvm"].kind == "file"  # was -> ../etc/machine-id
    assert back["files"]["/etc/ssh/authorized_keys"] == SENTINEL  # the directory link's target: byte-identical
    assert back["files"]["/etc/machine-id"] == MACHINE_ID  # the file link's target: byte-identical
    assert back["listing"]["/etc/ssh"] == sorted(["authorized_keys", "ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"])
    hashed = back["files"]["/passwords/zvm"].decode().strip()
    assert libxcrypt.crypt(PASSWORD, hashed) == hashed
    assert back["stats"]["/home/zvm/.config"].kind == "dir"  # was -> /persist/etc (the VM's view)
    assert back["links"] == {}


# -- hard links, fifos, devices, stale temporary files -------------------------------------------------


@pytest.mark.appliance
def test_devices_fifos_and_hard_links_are_replaced_by_fresh_files(world):
    run = world["runs"]["specials"]
    assert run.code == 0, run
    back = world["back"]["specials"]
    assert_contract(back, netbird=True)
    for path in ("/passwords/zvm", "/home/zvm/.ssh/authorized_keys", "/etc/machine-id"):
        assert back["stats"][path].nlink == 1, path
    # the other names of the hard-linked files keep the old content: nothing written through a shared inode
    assert back["files"]["/etc/password-hardlink"] == OLD_HASH
    assert back["files"]["/etc/keys-hardlink"] == OLD_KEYS
    assert back["stats"]["/etc/password-hardlink"].nlink == 1
    hashed = back["files"]["/passwords/zvm"].decode().strip()
    assert libxcrypt.crypt(PASSWORD, hashed) == hashed
    keys = back["files"]["/home/zvm/.ssh/authorized_keys"].decode()
    assert OLD_KEYS.decode() in keys and "alice@laptop" in keys  # keys are added, the old one kept


@pytest.mark.appliance
def test_stale_temporary_files_in_contract_directories_are_removed(world):
    back = world["back"]["specials"]
    for folder in ("/etc/ssh", "/passwords"):
        assert not [n for n in back["listing"][folder] if n.startswith(TEMP_PREFIX)], back["listing"][folder]


@pytest.mark.appliance
@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("dir-for-file", ["/home/zvm/.ssh/authorized_keys", "directory"]),
        ("file-for-dir", ["/etc/ssh", "file", "directory"]),
        ("hardlink-kept", ["/etc/machine-id", "hard-linked"]),
    ],
)
def test_entries_that_hold_data_are_refused_and_the_image_untouched(world, name, words):
    run = world["runs"][name]
    assert run.code == 3, run
    for word in words:
        assert word in run.stderr, run
    no_traceback(run)
    assert world["after"][name] == world["before"][name]


# -- partitions ----------------------------------------------------------------------------------------


@pytest.mark.appliance
@pytest.mark.parametrize(
    ("name", "problem", "listed"),
    [
        ("no-persist", "no partition labelled 'persist'", ["/dev/sda1 (label 'ESP', vfat", "/dev/sda2 (label 'nix', ext4"]),
        ("two-persist", "2 partitions labelled 'persist'", ["/dev/sda1 (label 'persist', ext4", "/dev/sda2 (label 'persist', ext4"]),
        ("persist-ext2", "is not ext4", ["/dev/sda1 (label 'nix', ext4", "/dev/sda2 (label 'persist', ext2"]),
    ],
)
def test_bad_partition_layouts_are_refused_listing_what_was_found(world, name, problem, listed):
    run = world["runs"][name]
    assert run.code == 3, run
    assert problem in run.stderr, run
    for entry in listed:
        assert entry in run.stderr, run
    no_traceback(run)
    assert world["after"][name] == world["before"][name]


# -- in use, read-only -----------------------------------------------------------------------------------


@pytest.mark.appliance
def test_an_image_in_use_exits_4_and_is_untouched(world):
    run = world["runs"]["in-use"]
    assert run.code == 4, run
    assert "in use" in run.stderr, run
    no_traceback(run)
    assert world["after"]["in-use"] == world["before"]["in-use"]


@pytest.mark.appliance
def test_dry_run_on_a_read_only_image_works_and_auto_accel_uses_the_cached_verdict(world):
    run = world["runs"]["read-only-dry-run"]
    assert run.code == 0, run
    report = json.loads(run.stdout)
    assert report["dry_run"] is True and report["changed"] is False
    assert world["after"]["read-only"] == world["before"]["read-only"]
    assert "KVM" not in run.stderr  # the cached "KVM hangs" verdict: no watchdog wait, nothing to say
    assert world["kvm_crashes"].boots() == ["tcg"]  # straight to TCG: KVM was never tried
    # argv samples (NUL-separated) that boot the appliance; a substring test would also catch supermin's
    # --copy-kernel, sampled now and then while it checks the appliance
    samples = [blob.split(b"\n") for key, blob in run.blobs.items() if key.endswith("cmdline")]
    appliance_qemu = [argv for argvs in samples for argv in argvs if b"-kernel" in argv.split(b"\0")]
    assert appliance_qemu, "the appliance's qemu was never seen"
    assert all(b"accel=tcg" in argv and b"accel=kvm" not in argv for argv in appliance_qemu)


@pytest.mark.appliance
def test_a_read_only_image_is_refused_saying_so(sample_disk, tmp_path):
    key = tmp_path / "k.pub"
    key.write_text(public_line() + "\n")
    sample_disk.chmod(0o444)
    before = sha256(sample_disk)
    run = Run("read-only", tmp_path, str(sample_disk), "--no-password", "--ssh-key", str(key),
              env={"LIBGUESTFS_HV": "/nonexistent/qemu"}).wait()
    assert run.code == 3, run  # refused before the appliance, with the appliance's exit code for it
    assert "read-only" in run.stderr
    no_traceback(run)
    assert sha256(sample_disk) == before


# -- SIGKILL and Ctrl-C while writing ------------------------------------------------------------------


def _check_ok(result: subprocess.CompletedProcess[str]) -> bool:
    return result.returncode == 0 or result.returncode == 3  # qemu-img check: 3 = leaked clusters only


@pytest.mark.appliance
@pytest.mark.parametrize("name", ["killed", "interrupted"])
def test_a_run_stopped_while_writing_leaves_a_sound_image_and_a_rerun_converges(world, name):
    run = world["runs"][name]
    assert run.writing_seen, f"{name}: the command never started writing: {run}"
    if name == "killed":
        assert run.code == -signal.SIGKILL, run
    else:  # the Ctrl-C landed inside the writes (kill_once_writing): they finish, then the run says it stopped
        assert run.code == 130, run
        no_traceback(run)
        assert "stopped" in run.stderr
    checks = world["checks"]
    assert _check_ok(checks[name]), checks[name].stdout
    rerun = world["runs"][f"{name}-rerun"]
    assert rerun.code == 0, rerun
    assert _check_ok(checks[f"{name}-rerun"]), checks[f"{name}-rerun"].stdout
    back = world["back"][name]
    assert_contract(back, netbird=name == "interrupted")
    hashed = back["files"]["/passwords/zvm"].decode().strip()
    assert libxcrypt.crypt(HASH_PASSWORD if name == "killed" else PASSWORD, hashed) == hashed


@pytest.mark.appliance
@pytest.mark.parametrize("name", ["killed-aftermath", "interrupted-aftermath"])
def test_no_half_written_file_is_visible_under_its_final_name(world, name):
    """What the stopped run left (before the rerun): each contract file is absent or complete."""
    back = world["back"][name]
    files = back["files"]
    expected_complete = {
        "/home/zvm/.ssh/authorized_keys": lambda d: d.endswith(b"alice@laptop\n") and d.count(b"\n") == 1,
        "/etc/machine-id": lambda d: len(d) == 33 and d.endswith(b"\n"),
        "/etc/ssh/ssh_host_ed25519_key": lambda d: d.endswith(b"-----END OPENSSH PRIVATE KEY-----\n"),
        "/etc/ssh/ssh_host_ed25519_key.pub": lambda d: d.startswith(b"ssh-ed25519 ") and d.endswith(b"\n"),
        "/passwords/zvm": lambda d: d.startswith(b"$6$") and d.endswith(b"\n") and d.count(b"\n") == 1,
        "/var/lib/netbird/setup-key": lambda d: d == (NETBIRD_KEY + "\n").encode(),
    }
    for path, complete in expected_complete.items():
        if path in files:
            assert complete(files[path]), (path, len(files[path]))
        st = back["stats"][path]
        if st is not None:
            assert st.kind == "file" and st.mode & 0o077 in (0, 0o044), (path, st)
    # SIGKILL may leave staged temporary files (the rerun removes them). A staged file already has its final
    # owner and mode, so only a public file's (machine-id, host public key) may be readable by others.
    for temp, (st, data) in back["temps"].items():
        secret = data.startswith(b"$6$") or b"PRIVATE KEY" in data or NETBIRD_KEY.encode() in data
        assert st.kind == "file" and (st.mode & 0o077 == 0 or not secret), (temp, st)


# -- refused before the appliance: the header, read in Python --------------------------------------------


@pytest.fixture
def hostile_headers(tmp_path, qemu_img):
    def create(name: str, *options: str) -> Path:
        path = tmp_path / f"{name}.qcow2"
        qemu_img("create", "-q", "-f", "qcow2", *options, str(path), "64M")
        return path

    truncated = create("truncated")
    os.truncate(truncated, 100_000)
    corrupt = create("corrupt")
    with open(corrupt, "r+b") as fh:
        fh.seek(72 + 7)
        fh.write(bytes([0x02]))  # incompatible_features: the corrupt bit
    encrypted = tmp_path / "encrypted.qcow2"
    for _attempt in range(3):  # LUKS times its key derivation: on a busy host qemu-img may fail to measure it
        made = subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "--object", "secret,id=sec0,data=x",
             "-o", "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=100", str(encrypted), "64M"],
            capture_output=True, text=True,
        )  # fmt: skip
        if made.returncode == 0:
            break
    else:  # the same header as qemu-img writes for LUKS: crypt_method 2
        create("encrypted")
        with open(encrypted, "r+b") as fh:
            fh.seek(32)
            fh.write((2).to_bytes(4, "big"))
    data_file = create("data-file", "-o", f"data_file={tmp_path / 'data.raw'}")
    backing = create("backing-hostname", "-u", "-b", "/etc/hostname", "-F", "raw")
    return {
        "truncated": (truncated, "truncated"), "corrupt": (corrupt, "corrupt"),
        "encrypted": (encrypted, "encrypted"), "data-file": (data_file, "external data file"),
        "backing-hostname": (backing, "/etc/hostname"),
    }


@pytest.mark.parametrize("debug", [False, True])
def test_hostile_headers_are_refused_before_any_launch(hostile_headers, tmp_path, debug):
    key = tmp_path / "k.pub"
    key.write_text(public_line() + "\n")
    # Any launch would fail differently (exit 1, "appliance failed to start"): the refusal came first.
    no_launch = {"LIBGUESTFS_HV": "/nonexistent/qemu-system-x86_64"}
    for name, (path, word) in hostile_headers.items():
        before = sha256(path)
        args = ["--debug"] if debug else []
        run = Run(f"header-{name}-{debug}", tmp_path, str(path), "--no-password", "--ssh-key", str(key), *args,
                  env=no_launch).wait()
        if debug:
            assert run.code != 0 and "failed to start" not in run.stderr, run
            assert "ImageUnusableError" in run.stderr, run  # --debug shows the traceback
        else:
            assert run.code == 3, run
            assert word in run.stderr and "appliance" not in run.stderr, run
            no_traceback(run)
        assert not [p for p in run.pids if p != run.proc.pid], f"{name}: a child process was started"
        assert sha256(path) == before
        if debug:
            continue
        inspect = Run(f"inspect-{name}-{debug}", tmp_path, "inspect", str(path), env=no_launch).wait()
        assert inspect.code == 3 and word in inspect.stderr, inspect
        no_traceback(inspect)


# -- appliance problems ----------------------------------------------------------------------------------


@pytest.mark.appliance
def test_a_launch_that_fails_gives_the_libguestfs_hint_and_no_traceback(sample_disk, tmp_path):
    key = tmp_path / "k.pub"
    key.write_text(public_line() + "\n")
    before = sha256(sample_disk)
    run = Run("hv-false", tmp_path, str(sample_disk), "--no-password", "--ssh-key", str(key),
              env={"LIBGUESTFS_HV": "/bin/false"}).wait()
    assert run.code == 1, run
    assert "libguestfs-test-tool" in run.stderr, run
    no_traceback(run)
    assert sha256(sample_disk) == before


# -- secrets: every run of this module, watched while it ran ----------------------------------------------


@pytest.mark.appliance
def test_no_secret_ever_leaks(world):
    secrets = [PASSWORD, HASH_PASSWORD, PASSWORD_HASH, PASSWORD_HASH.split("$")[-1], NETBIRD_KEY,
               NETBIRD_KEY.lower(), NETBIRD_KEY[:13]]
    for name in ("links", "specials", "killed", "interrupted"):
        files = world["back"][name]["files"]
        secrets.append(files["/passwords/zvm"].decode().strip().split("$")[-1])
        secrets += unique_key_lines(files["/etc/ssh/ssh_host_ed25519_key"].decode())
    secret_bytes = [s.encode() for s in secrets]
    runs = [r for r in Run.all_runs if r.name in world["runs"]]
    assert {"links", "specials", "killed", "killed-rerun", "interrupted", "interrupted-rerun", "inspect",
            "inspect-json", "read-only-dry-run"} <= {r.name for r in runs}
    qemu_seen = 0
    for run in runs:
        for secret in secrets:
            assert secret not in run.stdout and secret not in run.stderr, (run.name, "output")
        for where, blob in run.blobs.items():
            qemu_seen += where.endswith("cmdline") and b"qemu-system" in blob
            for secret in secret_bytes:
                assert secret not in blob, (run.name, where.split()[0:2])
    assert qemu_seen, "qemu's argv was never sampled"
    # what is left on the host: every run's TMPDIR, the libguestfs cache touched during the session,
    # the accel verdict cache
    leftovers = [world["work"]]
    cache = Path(CACHEDIR) / f".guestfs-{os.getuid()}"  # the appliance cache the runs used, not all of it
    for folder in leftovers + [cache]:
        for root, _dirs, names in os.walk(folder):
            for n in names:
                path = Path(root) / n
                try:
                    st = path.lstat()
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode) or st.st_size > 64 << 20 or path.suffix == ".qcow2":
                    continue
                if folder == cache and st.st_mtime < world["started_wall"]:
                    continue
                if path.name in ("password.txt", "hash.txt", "netbird.key"):  # the test's own inputs
                    continue
                data = path.read_bytes()
                for secret in secret_bytes:
                    assert secret not in data, (str(path), "holds a secret")


def unique_key_lines(private: str) -> list[str]:
    """The base64 lines of an OpenSSH private key that hold its own material: the lines every unencrypted
    ed25519 key shares (its header) are left out, so only this run's keys can match, whatever else the
    machine writes."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()).decode()
    shared = set(other.splitlines())
    lines = [line for line in private.splitlines()[1:-1] if line not in shared and len(line) > 20]
    assert lines, "the key holds no line of its own"
    return lines


def test_unique_key_lines_leave_out_what_every_key_shares():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    def new_key() -> str:
        return Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption()).decode()

    mine, stranger = new_key(), new_key()
    lines = unique_key_lines(mine)
    assert all(line in mine for line in lines)
    assert not any(line in stranger for line in lines)  # a stranger's key under the cache matches nothing
    assert len("".join(lines)) >= 64  # and the key's own material is still looked for


# -- stale temporary files, in memory (the appliance case is in `world`) ---------------------------------


def test_stale_temporary_files_are_planned_for_removal_shown_and_removed():
    from provision.commands.seed.apply import fresh_material
    from provision.core.apply import apply_plan, verify_plan
    from provision.core.credentials.sshkeys import parse_authorized_keys
    from provision.core.plan import build_plan
    from provision.core.request import PasswordChoice, SeedRequest
    from provision.core.state import read_state
    from tests.support.fakes import MemoryFS

    fs = MemoryFS()
    for path, uid, gid, mode in DIRS:
        fs.add_dir(path, uid, gid, mode)
    fs.add_file(f"/passwords/{TEMP_PREFIX}0011223344556677", STALE_TEMP)
    fs.add_dir(f"/etc/{TEMP_PREFIX}notours")  # a directory with the prefix is not something the tool made
    state = read_state(fs, LAYOUT)
    assert state.stale_temps == (f"/passwords/{TEMP_PREFIX}0011223344556677",)
    request = SeedRequest(password=PasswordChoice.locked(),
                          keys=tuple(parse_authorized_keys(public_line() + "\n", "test")))
    plan = build_plan(request, state, LAYOUT, fresh_material())
    assert plan.changes and plan.stale_temps == state.stale_temps
    apply_plan(plan, fs)
    verify_plan(plan, fs)
    assert fs.lstat(f"/passwords/{TEMP_PREFIX}0011223344556677") is None
    assert fs.lstat(f"/etc/{TEMP_PREFIX}notours") is not None


# -- batch: the host disk fills up ------------------------------------------------------------------------


@pytest.mark.appliance
def test_batch_on_a_full_disk_fails_clearly_and_leaves_no_partial_image(request, tmp_path):
    pytest.importorskip("provision.commands.batch", reason="batch is not merged into this branch yet")
    sample_disk_template = request.getfixturevalue("sample_disk_template")
    out = tmp_path / "out"
    out.mkdir()
    base_size = sample_disk_template.stat().st_size
    size_kib = max(64, base_size // 1024 // 2)  # room for half a copy of the base
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(out)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        key = tmp_path / "alice.pub"
        key.write_text(public_line(comment="alice@laptop") + "\n")
        manifest = tmp_path / "staff.csv"
        manifest.write_text("name,ssh_keys,password_hash,netbird_setup_key,netbird_management_url\n"
                            f"alice,alice.pub,{PASSWORD_HASH},,\nbob,alice.pub,{PASSWORD_HASH},,\n")
        manifest.chmod(0o600)  # it holds password hashes: refused when others can read it
        run = Run("batch-full", tmp_path, "batch", str(manifest), "--base", str(sample_disk_template),
                  "--out-dir", str(out)).wait()
        assert run.code != 0, run
        no_traceback(run)
        assert "space" in run.stderr.lower(), run
        for name in ("alice.qcow2", "bob.qcow2"):
            assert not (out / name).exists(), f"a partial {name} is left under its final name"
        for secret in (PASSWORD_HASH, PASSWORD_HASH.split("$")[-1]):
            assert secret not in run.stdout and secret not in run.stderr
    finally:
        subprocess.run(["umount", str(out)], check=False)
