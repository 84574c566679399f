#!/usr/bin/env python3
"""The project's benchmark (design.md, "Performance targets"): zvm-provision against guestfish, side by side.

  (a) one image, non-interactive: `zvm-provision IMAGE --password-hash-file H --ssh-key K` against one
      `guestfish --rw -a IMAGE -f script` doing the same writes (mkdir/upload/chown/chmod of the contract).
      Target: ratio <= 1.0 (the launch is the same for both; the work after it must cost no more). The
      row "one: after launch" compares that work alone: from the appliance being up to the command's exit.
  (b) batch of N images (default 8 and 20): `zvm-provision batch` against a loop running one guestfish launch
      per image, with the same writes; both make their copies with `qemu-img convert`.
      Targets: <= 0.3 for 8, <= 0.12 for 20.
  (c) `zvm-provision --help` wall time. Target: < 0.3 s.
  (d) interactive: the wizard on a pseudo-terminal (pexpect types the answers); the time from the final
      confirmation to the command's exit, since the appliance starts while the person answers.
      Target: < 5 s.
  (e) images to hand over: `zvm-provision seed IMAGE --output OUT --compress`, its conversion step (qemu-img
      convert into a hidden name, fsync, link to OUT) against `qemu-img convert` with the same options of the
      same seeded image alone, and its size; also the sha256 the tool computes for report.json, and qemu-img's
      default zlib `-c` for reference. Target: the conversion step <= 1.1x qemu-img's own.
  (f) the fleet after a roll-out, N images made by batch (default 20): auditing them in one `zvm-provision
      inspect` run against a loop of N single `inspect` runs, and revoking one key from them in one
      `zvm-provision keys` run against a loop of N `seed --remove-key` runs (both on fresh copies each pair;
      the copying is not timed). The baseline is the shell loop README used to give, not guestfish.
      Target: <= 0.12 each at 20.
  At a real size: a base built on the host, no appliance (build_real_base: mke2fs -d of a fixed, reproducible
  file set of --real-size GiB in nix; or --real-base):
  (g) batch of N (--real-sizes, default 8 and 20) against the copies alone (qemu-img, 4 at a time) then one bare
      launch, and against cp + one guestfish launch per image (leave it out with --no-loop).
      Targets: <= 1.0 and <= 0.35.
  (h) on btrfs in a loop-mounted file (root): batch of --reflink-size from the real base against the same from
      the blank one (the copies are reflinks), and how much `df` grew. Target: <= 1.2.
  (i) --compress and --format vmdk at --handover-size (default 8) against a loop of the same conversions of the
      base with the tool's options. Target: <= 0.6.
  (k) keys revoking one key from --fleet-size images: one appliance (--jobs 1) against two (--jobs 2).
  (m) on btrfs: one batch per --memory-sizes (default 20 and 100): seconds and the peak RSS of the tool and of
      its appliances (sampled from /proc).
  (s) a batch into a folder without room for it: refused before the first copy (the message it gives).

One launch under TCG varies by several seconds from run to run on a shared machine, so single samples decide
nothing: (a) and (b) run --pairs interleaved pairs (zvm-provision first in even pairs, guestfish first in odd
ones), and every part prints its median and its spread (min-max); a ratio is taken within each pair, then its
median. --calls adds one seeding run inside this process with every libguestfs call timed (where the time
after the launch goes).

It is not part of the test suite. Under TCG (LIBGUESTFS_BACKEND_SETTINGS=force_tcg for guestfish,
--accel tcg for zvm-provision) a pair of (a) takes about a minute, of (b) several minutes; choose parts with
--parts, sizes with --sizes and the number of pairs with --pairs.

    python scripts/bench.py                          # everything, 3 pairs
    python scripts/bench.py --parts a --pairs 5      # one image, 5 interleaved pairs
    python scripts/bench.py --parts a --calls        # ... and one run's per-call timing
    python scripts/bench.py --parts b --sizes 8      # one batch size
    python scripts/bench.py --json                   # the results (every sample) as JSON on stdout
    python scripts/bench.py --parts e --base big.qcow2 --pairs 5   # --compress on an image with data in it
    python scripts/bench.py --parts f --fleet-size 20 --pairs 3     # inspect and keys over 20 images
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = {"one image": 1.0, "one: after launch": 1.0, "batch 8": 0.3, "batch 20": 0.12, "compress": 1.1,
           "audit 20": 0.12, "revoke 20": 0.12, "real 8": 1.0, "real 20": 1.0, "reflink 20": 1.2,
           "compress 8": 0.6, "vmdk 8": 0.6}
LOOP_TARGET = 0.35  # batch at a real size against the cp+guestfish loop
HELP_TARGET = 0.3
WIZARD_TARGET = 5.0


def env(accel: str) -> dict[str, str]:
    result = dict(os.environ)
    result["PYTHONPATH"] = str(ROOT) + (os.pathsep + result["PYTHONPATH"] if result.get("PYTHONPATH") else "")
    result["LIBGUESTFS_BACKEND"] = "direct"
    if accel == "tcg":
        result["LIBGUESTFS_BACKEND_SETTINGS"] = "force_tcg"
    return result


def zvm(*args: str) -> list[str]:
    return [sys.executable, "-m", "provision", *args]


def zvm_marked(marks: Path, *args: str) -> list[str]:
    """zvm-provision, noting in `marks` the moment its appliance is up ("launched <time.monotonic()>")."""
    return [sys.executable, str(ROOT / "scripts" / "bench.py"), "--marked-child", str(marks), *args]


def marked_child(marks: str, args: list[str]) -> None:
    """Run zvm-provision in this process, with Appliance.launch wrapped to note when it returns: the product
    itself carries no benchmark hook. time.monotonic() is the system-wide clock the parent reads too."""
    from provision.cli import main as zvm_main
    from provision.guest.appliance import Appliance

    launch = Appliance.launch

    def launch_and_mark(self: Appliance) -> None:
        launch(self)
        with open(marks, "a", encoding="utf-8") as handle:
            handle.write(f"launched {time.monotonic():.6f}\n")

    setattr(Appliance, "launch", launch_and_mark)
    sys.argv = ["zvm-provision", *args]
    zvm_main()


def compress_child(marks: str, args: list[str]) -> None:
    """Run zvm-provision in this process with its conversion and its sha256 noting their start and end in
    `marks` ("convert <start> <end>", "sha256 <start> <end>"): the product carries no benchmark hook."""
    from provision.cli import main as zvm_main
    from provision.commands import workcopy
    from provision.commands.seed import output

    def noted(name: str, fn):
        def wrapper(*a, **k):
            start = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                with open(marks, "a", encoding="utf-8") as handle:
                    handle.write(f"{name} {start:.6f} {time.perf_counter():.6f}\n")
        return wrapper

    workcopy.convert_image = noted("convert", workcopy.convert_image)
    workcopy._link_new = noted("link", workcopy._link_new)
    output.record_output = noted("sha256", output.record_output)
    sys.argv = ["zvm-provision", *args]
    zvm_main()


def run(command: list[str], environ: dict[str, str], **kwargs) -> None:
    result = subprocess.run(command, env=environ, capture_output=True, text=True, stdin=subprocess.DEVNULL, **kwargs)
    if result.returncode != 0:
        sys.exit(f"bench: {' '.join(command[:4])}... failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def copy_base(base: Path, target: Path, environ: dict[str, str]) -> None:
    run(["qemu-img", "convert", "-q", "-f", "qcow2", "-O", "qcow2", str(base), str(target)], environ)


# -- a base of a real size, built on the host ------------------------------------------------------

STORE_SEED = 27  # the file set is the same on every machine and every run
STORE_FILES_MAX = 8 << 20


def store_files(folder: Path, total: int) -> int:
    """A fixed, reproducible set of files standing for a Nix store: `total` bytes in files of 4 KiB to 8 MiB,
    in folders named as store paths, each file half pseudo-random bytes and half text (a store compresses
    about 2x). Returns the bytes written."""
    import random

    rng = random.Random(STORE_SEED)
    written = 0
    number = 0
    while written < total:
        size = min(total - written, rng.choice((4096, 4096, 65536, 65536, 1 << 20, STORE_FILES_MAX)))
        package = folder / "store" / f"{rng.getrandbits(128):032x}-package-{number // 16}"
        package.mkdir(parents=True, exist_ok=True)
        half = size // 2
        text = (f"/nix/store/{number:08d}-lib/share/doc line {number}\n" * (half // 40 + 1)).encode()[: size - half]
        (package / f"file-{number}").write_bytes(rng.randbytes(half) + text)
        written += size
        number += 1
    return written


def build_real_base(path: Path, nix_bytes: int, work: Path) -> dict:
    """A zvm-layout qcow2 at `path` made on the host, no appliance: a GPT (sgdisk) with the ESP (mkfs.vfat),
    nix (mke2fs -d: store_files of `nix_bytes`) and a blank persist (mke2fs), each formatted in place at its
    offset, then converted into a qcow2 (qemu-img). Returns what it holds."""
    from provision.guest.sampledisk import ESP_GPT_TYPE, SECTOR, plan_partitions

    files = work / "nix-files"
    shutil.rmtree(files, ignore_errors=True)
    files.mkdir(parents=True)
    written = store_files(files, nix_bytes)
    size = (nix_bytes * 2 + (1 << 30)) // (1 << 20) << 20  # nix gets 60% of what the ESP leaves: room to spare
    partitions = plan_partitions(size)
    raw = path.with_suffix(".raw")
    with open(raw, "wb") as handle:
        handle.truncate(size)
    for part in partitions:
        offset, sectors = part.start * SECTOR, part.end - part.start + 1
        if part.fs_type == "vfat":
            command = ["mkfs.vfat", "-F", "16", "-n", part.label, "--offset", str(part.start), str(raw),
                       str(sectors // 2)]
        else:
            command = ["mke2fs", "-q", "-F", "-t", part.fs_type, "-L", part.label, "-E", f"offset={offset}",
                       *(["-d", str(files)] if part.name == "nix" else []), str(raw), f"{sectors // 2}k"]
        subprocess.run(command, check=True, capture_output=True, env=dict(os.environ, E2FSPROGS_FAKE_TIME="0"))
    subprocess.run(["sgdisk", "--clear", str(raw)], check=True, capture_output=True)  # last: mkfs wipes sector 0
    gpt = ["sgdisk"]
    for number, part in enumerate(partitions, start=1):
        gpt += [f"--new={number}:{part.start}:{part.end}", f"--change-name={number}:{part.name}"]
        if part.gpt_type == ESP_GPT_TYPE:
            gpt += [f"--typecode={number}:EF00"]
    subprocess.run([*gpt, str(raw)], check=True, capture_output=True)
    subprocess.run(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(path)], check=True)
    raw.unlink()
    shutil.rmtree(files)
    return {"path": str(path), "nix_files_bytes": written, "virtual_size": size,
            "allocated_bytes": os.stat(path).st_blocks * 512}


# -- the guestfish baseline -------------------------------------------------------------------------


def guestfish_script(folder: Path, hash_file: Path, key_file: Path, device: str, marks: Path | None = None) -> Path:
    """What a sysadmin would script: the same contract paths, owners, modes and content as zvm-provision.
    With `marks`, the moment the appliance is up is appended to it (wall clock, by `date`)."""
    from provision.core.layout import load_layout

    host_key = folder / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@zvm", "-f", str(host_key)],
                   check=True, stdin=subprocess.DEVNULL)
    machine_id = folder / "machine-id"
    machine_id.write_text(secrets.token_hex(16) + "\n")
    sources = {
        "password-hash": hash_file, "authorized-keys": key_file, "host-key": host_key,
        "host-key-public": host_key.with_name(host_key.name + ".pub"), "machine-id": machine_id,
    }
    lines = ["run", *([f"!date +%s.%N >> {marks}"] if marks else []), f"mount {device} /"]
    for entry in load_layout().entries:
        if entry.kind == "dir":
            if entry.path != "/":
                lines.append(f"mkdir-mode {entry.path} 0{entry.mode:o}")
        elif entry.role in sources:
            lines.append(f"upload {sources[entry.role]} {entry.path}")
        else:
            continue  # optional Netbird files: not given in either run
        lines.append(f"chown {entry.uid} {entry.gid} {entry.path}")
        lines.append(f"chmod 0{entry.mode:o} {entry.path}")
    lines += ["umount-all", "exit"]
    script = folder / "seed.gf"
    script.write_text("\n".join(lines) + "\n")
    return script


def guestfish_one(image: Path, folder: Path, hash_file: Path, key_file: Path, device: str, environ,
                  marks: Path | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    script = guestfish_script(folder, hash_file, key_file, device, marks)
    run(["guestfish", "--rw", "--format=qcow2", "-a", str(image), "-f", str(script)], environ)


# -- the parts --------------------------------------------------------------------------------------


def interleaved(pairs: int, ours, theirs, label: str = "") -> tuple[list[float], list[float]]:
    """`pairs` pairs of samples, ours(i) and theirs(i) each returning seconds; the order alternates."""
    mine, other = rotated(pairs, ours, theirs, label=label)
    return mine, other


def rotated(pairs: int, *sides, label: str = "", names: tuple[str, ...] = ("zvm-provision", "baseline", "bound")
            ) -> list[list[float]]:
    """`pairs` rounds of one sample per side (each side(i) returns seconds); who goes first rotates each round.
    Each sample is printed on stderr as it is taken, with the load average, so a long run can be watched."""
    samples: list[list[float]] = [[] for _ in sides]
    for i in range(pairs):
        order = list(range(len(sides)))
        order = order[i % len(order):] + order[: i % len(order)] if len(order) > 2 else (
            order if i % 2 == 0 else order[::-1])
        for n in order:
            seconds = sides[n](i)
            samples[n].append(seconds)
            if label:
                print(f"bench: {label}: round {i + 1}: {names[n]} {seconds:.1f} s (load {os.getloadavg()[0]:.1f})",
                      file=sys.stderr, flush=True)
    return samples


def bench_one(work: Path, base: Path, hash_file: Path, key_file: Path, device: str, environ, accel,
              pairs: int) -> list[dict]:
    """The whole command, and the work after the launch: zvm-provision runs through `--marked-child`, which
    notes when its appliance is up, the guestfish script runs `date` right after `run`."""
    after: dict[str, list[float]] = {"zvm": [], "gf": []}

    def ours(i: int) -> float:
        image, marks = work / f"one-{i}" / "zvm.qcow2", work / f"one-{i}" / "zvm-marks.txt"
        image.parent.mkdir(exist_ok=True)
        copy_base(base, image, environ)
        seconds = timed(lambda: run(zvm_marked(marks, str(image), "--password-hash-file", str(hash_file),
                                               "--ssh-key", str(key_file), "--yes", "--accel", accel), environ))
        end = time.monotonic()
        after["zvm"].append(end - float(marks.read_text().split()[1]))
        return seconds

    def theirs(i: int) -> float:
        image, marks = work / f"one-{i}" / "gf.qcow2", work / f"one-{i}" / "gf-marks.txt"
        image.parent.mkdir(exist_ok=True)
        copy_base(base, image, environ)
        seconds = timed(lambda: guestfish_one(image, work / f"one-{i}" / "gf", hash_file, key_file, device,
                                              environ, marks=marks))
        end = time.time()
        after["gf"].append(end - float(marks.read_text().split()[0]))
        return seconds

    mine, other = interleaved(pairs, ours, theirs, label="one image")
    return [{"part": "one image", "zvm_provision_s": mine, "guestfish_s": other},
            {"part": "one: after launch", "zvm_provision_s": after["zvm"], "guestfish_s": after["gf"]}]


def bench_batch(work: Path, base: Path, hash_file: Path, key_file: Path, device: str, environ, accel, size: int,
                jobs: int, pairs: int) -> dict:
    folder = work / f"batch{size}"
    folder.mkdir()
    shutil.copy(key_file, folder / "user.pub")
    hashed = hash_file.read_text().strip()
    manifest = folder / "staff.csv"
    manifest.write_text("name,ssh_keys,password_hash\n" + "".join(f"user{i:03d},user.pub,{hashed}\n"
                                                                   for i in range(size)))
    manifest.chmod(0o600)  # it holds password hashes: zvm-provision refuses it readable by others

    def ours(i: int) -> float:
        command = zvm("batch", str(manifest), "--base", str(base), "--out-dir", str(folder / f"zvm-{i}"),
                      "--accel", accel)
        if jobs:
            command += ["--jobs", str(jobs)]
        return timed(lambda: run(command, environ))

    def theirs(i: int) -> float:
        def loop() -> None:
            for n in range(size):
                image = folder / f"gf-{i}" / f"user{n:03d}.qcow2"
                image.parent.mkdir(exist_ok=True)
                copy_base(base, image, environ)
                guestfish_one(image, folder / f"gf-{i}" / f"user{n:03d}", hash_file, key_file, device, environ)

        return timed(loop)

    mine, other = interleaved(pairs, ours, theirs, label=f"batch {size}")
    return {"part": f"batch {size}", "zvm_provision_s": mine, "guestfish_s": other, "jobs": jobs or "auto"}


# -- (g, h, i) at a real size: the copies, reflinks, memory, conversions --------------------------------


def tree_rss(root: int) -> dict[str, int]:
    """RSS in bytes of `root` and its descendants, now, by kind: the tool (python: the command and its hashing
    processes), the appliances (qemu-system), and the helpers (qemu-img, cp...)."""
    page = os.sysconf("SC_PAGE_SIZE")
    children: dict[int, list[int]] = {}
    info: dict[int, tuple[str, int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
            with open(f"/proc/{entry}/statm", encoding="ascii") as handle:
                rss = int(handle.read().split()[1]) * page
        except (OSError, IndexError, ValueError):
            continue
        comm, ppid = stat[stat.index("(") + 1 : stat.rindex(")")], int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(entry))
        info[int(entry)] = (comm, rss)
    kinds = {"tool": 0, "appliances": 0, "helpers": 0}
    stack = [root]
    while stack:
        pid = stack.pop()
        comm, rss = info.get(pid, ("", 0))
        kind = "tool" if comm.startswith("python") else "appliances" if comm.startswith("qemu-system") else "helpers"
        kinds[kind] += rss
        stack += children.get(pid, [])
    return kinds


def measured(command: list[str], environ: dict[str, str], peaks: dict[str, int]) -> float:
    """Run `command`; its seconds. `peaks` gets the peak RSS of each kind of its process tree (tree_rss, sampled
    every 0.2 s)."""
    start = time.perf_counter()
    child = subprocess.Popen(command, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             stdin=subprocess.DEVNULL, text=True)
    import threading

    errors: list[str] = []
    reader = threading.Thread(target=lambda: errors.append(child.stderr.read()), daemon=True)
    reader.start()
    while child.poll() is None:
        for kind, rss in tree_rss(child.pid).items():
            peaks[kind] = max(peaks.get(kind, 0), rss)
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    reader.join()
    if child.returncode != 0:
        sys.exit(f"bench: {' '.join(command[:4])}... failed ({child.returncode}):\n{''.join(errors)}")
    return seconds


def staff(folder: Path, size: int, hash_file: Path, key_file: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(key_file, folder / "user.pub")
    hashed = hash_file.read_text().strip()
    manifest = folder / "staff.csv"
    manifest.write_text("name,ssh_keys,password_hash\n" + "".join(f"user{i:03d},user.pub,{hashed}\n"
                                                                   for i in range(size)))
    manifest.chmod(0o600)  # it holds password hashes
    return manifest


def mounted_btrfs(work: Path, size: int) -> Path:
    """A btrfs of `size` bytes in a file in `work`, loop-mounted at work/btrfs (root only; unmount_btrfs)."""
    image, mount = work / "btrfs.img", work / "btrfs"
    with open(image, "wb") as handle:
        handle.truncate(size)
    subprocess.run(["mkfs.btrfs", "-q", str(image)], check=True, capture_output=True)
    mount.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    return mount


def unmount_btrfs(work: Path) -> None:
    if (work / "btrfs").is_mount():
        subprocess.run(["umount", str(work / "btrfs")], check=True)
    with contextlib.suppress(FileNotFoundError):
        (work / "btrfs.img").unlink()


def used_bytes(folder: Path) -> int:
    os.sync()
    stat = os.statvfs(folder)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


def bench_real(where: Path, base: Path, hash_file: Path, key_file: Path, device: str, environ, accel, size: int,
               pairs: int, loop: bool, reflink: bool) -> dict:
    """(g) batch of `size` at a real size against the copies alone then one bare launch (what batch cannot beat
    without hiding one behind the other) and, with `loop`, cp + one guestfish launch per image. With `reflink`
    the copies alone are cp --reflink=always (where batch reflinks too), else qemu-img's, 4 at a time as batch's."""
    folder = where / f"real{size}"
    manifest = staff(folder, size, hash_file, key_file)
    peaks: dict[str, int] = {}

    def ours(i: int) -> float:
        out = folder / f"zvm-{i}"
        seconds = measured(zvm("batch", str(manifest), "--base", str(base), "--out-dir", str(out), "--accel", accel),
                           environ, peaks)
        shutil.rmtree(out)
        return seconds

    def copies_then_launch(i: int) -> float:
        out = folder / f"bound-{i}"
        out.mkdir()
        launch = folder / "launch.gf"
        launch.write_text("run\nexit\n")

        def copy(n: int) -> None:
            target = out / f"user{n:03d}.qcow2"
            if reflink:
                run(["cp", "--reflink=always", str(base), str(target)], environ)
            else:
                copy_base(base, target, environ)

        def both() -> None:
            import concurrent.futures

            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                list(pool.map(copy, range(size)))
            run(["guestfish", "--ro", "--format=qcow2", "-a", str(base), "-f", str(launch)], environ)

        seconds = timed(both)
        shutil.rmtree(out)
        return seconds

    def cp_loop(i: int) -> float:
        out = folder / f"loop-{i}"

        def each() -> None:
            for n in range(size):
                image = out / f"user{n:03d}.qcow2"
                image.parent.mkdir(exist_ok=True)
                run(["cp", "--sparse=always", str(base), str(image)], environ)
                guestfish_one(image, out / f"user{n:03d}", hash_file, key_file, device, environ)

        seconds = timed(each)
        shutil.rmtree(out)
        return seconds

    sides = (ours, copies_then_launch, cp_loop) if loop else (ours, copies_then_launch)
    label = f"real {size}{' on btrfs' if reflink else ''}"
    samples = rotated(pairs, *sides, label=label, names=("batch", "copies then one launch", "cp+guestfish loop"))
    row = {"part": label, "zvm_provision_s": samples[0], "guestfish_s": samples[1],
           "baseline": "the copies alone, then one bare launch", "peak_rss": peaks,
           "base_allocated": os.stat(base).st_blocks * 512}
    if loop:
        row["loop_s"] = samples[2]
    return row


def bench_reflink(where: Path, real_base: Path, blank_base: Path, hash_file: Path, key_file: Path, environ, accel,
                  size: int, pairs: int) -> dict:
    """(h) on btrfs: batch of `size` from the real base against the same from a blank one (reflinks: the size of
    the base should not matter), and the space the real run's images took (df: shared blocks take none)."""
    folder = where / f"reflink{size}"
    manifest = staff(folder, size, hash_file, key_file)
    grown: list[int] = []

    def real(i: int) -> float:
        out = folder / f"real-{i}"
        before = used_bytes(where)
        seconds = timed(lambda: run(zvm("batch", str(manifest), "--base", str(real_base), "--out-dir", str(out),
                                        "--accel", accel), environ))
        grown.append(used_bytes(where) - before)
        shutil.rmtree(out)
        return seconds

    def blank(i: int) -> float:
        out = folder / f"blank-{i}"
        seconds = timed(lambda: run(zvm("batch", str(manifest), "--base", str(blank_base), "--out-dir", str(out),
                                        "--accel", accel), environ))
        shutil.rmtree(out)
        return seconds

    mine, other = interleaved(pairs, real, blank, label=f"reflink {size}")
    return {"part": f"reflink {size}", "zvm_provision_s": mine, "guestfish_s": other,
            "baseline": "the same batch from a blank base", "used_growth_bytes": grown,
            "base_allocated": os.stat(real_base).st_blocks * 512}


def bench_handover(where: Path, base: Path, hash_file: Path, key_file: Path, environ, accel, size: int, pairs: int,
                   fmt: str) -> dict:
    """(i) batch of `size` to hand over (--compress, or --format vmdk/vdi) against a loop of `size` conversions of
    the base alone with the tool's own options (the work the tool cannot skip: one conversion per image)."""
    from provision.core.outputformat import OutputFormat, OutputSpec
    from provision.guest.qemuimg import convert_command

    folder = where / f"handover-{fmt}{size}"
    manifest = staff(folder, size, hash_file, key_file)
    flags = ["--compress"] if fmt == "compress" else ["--format", fmt]
    spec = OutputSpec(OutputFormat.QCOW2, compress=True) if fmt == "compress" else OutputSpec(OutputFormat(fmt))

    def ours(i: int) -> float:
        out = folder / f"zvm-{i}"
        seconds = timed(lambda: run(zvm("batch", str(manifest), "--base", str(base), "--out-dir", str(out),
                                        "--accel", accel, *flags), environ))
        shutil.rmtree(out)
        return seconds

    def conversions(i: int) -> float:
        out = folder / f"loop-{i}"
        out.mkdir()
        seconds = timed(lambda: [run(convert_command(base, "qcow2", out / f"user{n:03d}{spec.suffix}", spec), environ)
                                 for n in range(size)])
        shutil.rmtree(out)
        return seconds

    mine, other = interleaved(pairs, ours, conversions, label=f"{fmt} {size}")
    return {"part": f"{fmt} {size}", "zvm_provision_s": mine, "guestfish_s": other,
            "baseline": f"a loop of {size} qemu-img conversions of the base, the tool's options"}


def bench_memory(where: Path, base: Path, hash_file: Path, key_file: Path, environ, accel, sizes: list[int]
                 ) -> list[dict]:
    """(m) one batch per size (on reflinks, so that N = 100 fits): its seconds and the peak RSS of the tool and of
    its appliances, to see whether memory grows with N and how time does."""
    rows = []
    for size in sizes:
        folder = where / f"memory{size}"
        manifest = staff(folder, size, hash_file, key_file)
        peaks: dict[str, int] = {}
        seconds = measured(zvm("batch", str(manifest), "--base", str(base), "--out-dir", str(folder / "out"),
                               "--accel", accel), environ, peaks)
        print(f"bench: memory {size}: {seconds:.1f} s, peak RSS {peaks} (load {os.getloadavg()[0]:.1f})",
              file=sys.stderr, flush=True)
        shutil.rmtree(folder / "out")
        rows.append({"part": f"memory {size}", "zvm_provision_s": [seconds], "peak_rss": peaks})
    return rows


def bench_space(work: Path, base: Path, hash_file: Path, key_file: Path, environ, accel, size: int) -> dict:
    """(s) a batch of `size` at a real size into a folder without room for it: refused before the first copy."""
    folder = work / f"space{size}"
    manifest = staff(folder, size, hash_file, key_file)
    start = time.perf_counter()
    result = subprocess.run(zvm("batch", str(manifest), "--base", str(base), "--out-dir", str(folder / "out"),
                                "--accel", accel), env=environ, capture_output=True, text=True,
                            stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    message = " ".join(result.stderr.split())
    print(f"bench: space {size}: exit {result.returncode} after {seconds:.1f} s: {message}", file=sys.stderr)
    return {"part": f"space {size}", "zvm_provision_s": [seconds], "exit": result.returncode, "message": message}


def bench_keys_chunks(work: Path, base: Path, hash_file: Path, key_file: Path, environ, accel, size: int,
                      pairs: int) -> dict:
    """(k) revoking one key from `size` images made by batch: one appliance with every disk (--jobs 1) against
    two appliances of half as many at once (--jobs 2), on fresh copies each sample (the copying is not timed)."""
    folder = work / f"chunks{size}"
    manifest = staff(folder, size, hash_file, key_file)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "leaver@bench", "-f",
                    str(folder / "leaver")], check=True, stdin=subprocess.DEVNULL)
    manifest.write_text(manifest.read_text().replace(",user.pub,", ",user.pub;leaver.pub,"))
    made = folder / "made"
    run(zvm("batch", str(manifest), "--base", str(base), "--out-dir", str(made), "--accel", accel), environ)

    def revoke(jobs: int, name: str) -> float:
        fresh = folder / name
        fresh.mkdir()
        for image in sorted(made.glob("*.qcow2")):
            subprocess.run(["cp", "--sparse=always", str(image), str(fresh / image.name)], check=True)
        seconds = timed(lambda: run(zvm("keys", str(fresh), "--remove-key", "leaver@bench", "--accel", accel,
                                        "--jobs", str(jobs)), environ))
        shutil.rmtree(fresh)
        return seconds

    one, two = interleaved(pairs, lambda i: revoke(1, f"one-{i}"), lambda i: revoke(2, f"two-{i}"),
                           label=f"keys {size}: one appliance, two")
    return {"part": f"keys {size}: 1 launch", "zvm_provision_s": one, "guestfish_s": two,
            "baseline": "two appliances of half as many disks at once (--jobs 2)"}


def bench_calls(work: Path, base: Path, hash_file: Path, key_file: Path, environ, accel) -> dict:
    """One seeding inside this process, every libguestfs call timed: where the time after the launch goes."""
    image = work / "calls.qcow2"
    copy_base(base, image, environ)
    script = ROOT / "scripts" / "bench.py"
    result = subprocess.run(
        [sys.executable, str(script), "--calls-child", str(image), "--password-hash-file", str(hash_file),
         "--ssh-key", str(key_file), "--yes", "--accel", accel],
        env=environ, capture_output=True, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"bench: the timed seeding failed ({result.returncode}):\n{result.stderr}")
    return {"part": "calls", **json.loads(result.stdout.splitlines()[-1])}


def calls_child(args: list[str]) -> None:
    """Run zvm-provision's seed command in this process with every guestfs.GuestFS method timed; print JSON."""
    import contextlib
    import functools
    import io

    import guestfs

    calls: list[tuple[str, float, float]] = []
    origin = time.perf_counter()
    for name in dir(guestfs.GuestFS):
        method = getattr(guestfs.GuestFS, name)
        if name.startswith("_") or not callable(method) or name in ("set_event_callback", "delete_event_callback"):
            continue

        def timed_call(*a, __method=method, __name=name, **k):
            start = time.perf_counter()
            try:
                return __method(*a, **k)
            finally:
                calls.append((__name, start - origin, time.perf_counter() - start))

        setattr(guestfs.GuestFS, name, functools.wraps(method)(timed_call))
    from provision.cli import main as zvm_main

    sys.argv = ["zvm-provision", *args]
    with contextlib.redirect_stdout(io.StringIO()):
        try:
            zvm_main()
        except SystemExit as exit_:
            if exit_.code:
                raise
    wall = time.perf_counter() - origin
    [(_, launch_at, launch_s)] = [c for c in calls if c[0] == "launch"]
    after = [c for c in calls if c[1] >= launch_at + launch_s]
    per_call: dict[str, list] = {}
    for name, _at, seconds in after:
        entry = per_call.setdefault(name, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds
    print(json.dumps({
        "wall_s": wall, "launch_starts_s": launch_at, "launch_s": launch_s,
        "after_launch_s": wall - launch_at - launch_s, "calls_after_launch_s": sum(c[2] for c in after),
        "per_call": {name: {"count": n, "s": t} for name, (n, t) in sorted(per_call.items(), key=lambda kv: -kv[1][1])},
    }))


def bench_wizard(work: Path, base: Path, key_file: Path, environ, accel, i: int) -> float:
    """Drive the wizard with keystrokes; the clock starts when the "y" of the confirmation is typed."""
    import pexpect

    image, home = work / f"wizard-{i}.qcow2", work / f"home-{i}"
    copy_base(base, image, environ)
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(key_file, home / ".ssh" / "id_ed25519.pub")
    child_env = dict(environ, HOME=str(home), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", NO_COLOR="1")
    child = pexpect.spawn(sys.executable, ["-m", "provision", str(image), "--accel", accel], env=child_env,
                          encoding="utf-8", timeout=300, dimensions=(50, 200))
    password = "benchmark password 1234"
    try:
        child.expect("SSH public keys")  # asked while the appliance starts
        child.send("\r")
        child.expect("Join a Netbird network on first boot")
        child.send("n")
        child.expect("Password for the user zvm")  # asked once the image's state is known
        child.send("\r")
        child.expect(r"Password \(at least 8")
        child.send(password + "\r")
        child.expect("The same password again")
        child.send(password + "\r")
        child.expect("The VM's name at boot")  # the default (zvm) is taken
        child.send("\r")
        child.expect("Write this to")
        child.send("y")
        confirmed = time.monotonic()
        child.expect(pexpect.EOF)
        exited = time.monotonic()
    finally:
        child.close()
    if child.exitstatus != 0:
        sys.exit(f"bench: the wizard failed ({child.exitstatus}):\n{child.before}")
    return exited - confirmed


def bench_compress(work: Path, base: Path, hash_file: Path, key_file: Path, environ, accel, pairs: int) -> list[dict]:
    """(e) The tool's conversion step (convert to a hidden name, fsync, link) against qemu-img converting the same
    seeded image alone with the same options; the sha256 the tool adds; qemu-img's default zlib for reference."""
    from provision.core.outputformat import OutputFormat, OutputSpec
    from provision.guest.qemuimg import convert_command

    folder = work / "compress"
    folder.mkdir()
    seeded = folder / "seeded.qcow2"  # the seeded image both compress
    seed_args = ["--password-hash-file", str(hash_file), "--ssh-key", str(key_file), "--yes", "--accel", accel]
    run(zvm("seed", str(base), "--output", str(seeded), *seed_args), environ)
    spec = OutputSpec(OutputFormat.QCOW2, compress=True)
    convert: list[float] = []
    sha: list[float] = []
    sizes: dict[str, int] = {}

    def ours(i: int) -> float:
        out, marks = folder / f"zvm-{i}.qcow2", folder / f"marks-{i}.txt"
        command = [sys.executable, str(ROOT / "scripts" / "bench.py"), "--compress-child", str(marks), "seed",
                   str(seeded), "--output", str(out), "--compress", *seed_args]
        whole = timed(lambda: run(command, environ))
        spans = {line.split()[0]: (float(line.split()[1]), float(line.split()[2]))
                 for line in marks.read_text().splitlines()}
        convert.append(spans["link"][1] - spans["convert"][0])
        sha.append(spans["sha256"][1] - spans["sha256"][0])
        sizes["zvm"] = out.stat().st_size
        out.unlink()
        return whole

    def theirs(i: int) -> float:
        out = folder / f"qemu-{i}.qcow2"
        seconds = timed(lambda: run(convert_command(seeded, "qcow2", out, spec), environ))
        sizes["qemu-img"] = out.stat().st_size
        out.unlink()
        return seconds

    whole, qemu = interleaved(pairs, ours, theirs, label="compress")
    zlib: list[float] = []
    for i in range(pairs):
        out = folder / f"zlib-{i}.qcow2"
        zlib.append(timed(lambda: run(["qemu-img", "convert", "-q", "-c", "-f", "qcow2", "-O", "qcow2", str(seeded),
                                       str(out)], environ)))
        sizes["zlib"] = out.stat().st_size
        out.unlink()
    return [{"part": "compress", "zvm_provision_s": convert, "guestfish_s": qemu, "baseline": "qemu-img convert",
             "sizes": sizes, "seeded_size": seeded.stat().st_size},
            {"part": "compress: sha256", "zvm_provision_s": sha},
            {"part": "compress: command", "zvm_provision_s": whole},
            {"part": "compress: zlib -c", "zvm_provision_s": zlib}]


def bench_fleet(work: Path, base: Path, hash_file: Path, key_file: Path, environ, accel, size: int, jobs: int,
                pairs: int) -> list[dict]:
    """(f) `inspect` and `keys` over `size` images made by batch, each against the loop of single runs."""
    folder = work / f"fleet{size}"
    folder.mkdir()
    shutil.copy(key_file, folder / "user.pub")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "leaver@bench", "-f",
                    str(folder / "leaver")], check=True, stdin=subprocess.DEVNULL)
    hashed = hash_file.read_text().strip()
    manifest = folder / "staff.csv"
    manifest.write_text("name,ssh_keys,password_hash\n" + "".join(f"user{i:03d},user.pub;leaver.pub,{hashed}\n"
                                                                   for i in range(size)))
    manifest.chmod(0o600)
    made = folder / "made"
    run(zvm("batch", str(manifest), "--base", str(base), "--out-dir", str(made), "--accel", accel), environ)
    images = sorted(made.glob("*.qcow2"))
    many = ["--jobs", str(jobs)] if jobs else []

    def audit_ours(i: int) -> float:
        return timed(lambda: run(zvm("inspect", str(made), "--accel", accel, *many), environ))

    def audit_loop(i: int) -> float:
        return timed(lambda: [run(zvm("inspect", str(image), "--accel", accel), environ) for image in images])

    def copies(name: str) -> list[Path]:
        target = folder / name
        target.mkdir()
        for image in images:
            subprocess.run(["cp", "--sparse=always", str(image), str(target / image.name)], check=True)
        return sorted(target.glob("*.qcow2"))

    def revoke_ours(i: int) -> float:
        fresh = copies(f"keys-{i}")
        return timed(lambda: run(zvm("keys", str(fresh[0].parent), "--remove-key", "leaver@bench", "--accel", accel,
                                     *many), environ))

    def revoke_loop(i: int) -> float:
        fresh = copies(f"seed-{i}")
        return timed(lambda: [run(zvm("seed", str(image), "--remove-key", "leaver@bench", "--yes", "--accel", accel),
                                  environ) for image in fresh])

    audit, audit_baseline = interleaved(pairs, audit_ours, audit_loop, label=f"audit {size}")
    revoke, revoke_baseline = interleaved(pairs, revoke_ours, revoke_loop, label=f"revoke {size}")
    return [{"part": f"audit {size}", "zvm_provision_s": audit, "guestfish_s": audit_baseline,
             "baseline": f"a loop of {size} single inspect runs"},
            {"part": f"revoke {size}", "zvm_provision_s": revoke, "guestfish_s": revoke_baseline,
             "baseline": f"a loop of {size} seed --remove-key runs"}]


def bench_help(environ) -> dict:
    return {"part": "--help", "zvm_provision_s": [timed(lambda: run(zvm("--help"), environ)) for _ in range(7)]}


# -- main -------------------------------------------------------------------------------------------


def summarise(row: dict) -> None:
    """Medians and spreads; a ratio is taken within each pair, then its median."""
    ours = row["zvm_provision_s"]
    row["median_s"], row["min_s"], row["max_s"] = statistics.median(ours), min(ours), max(ours)
    if "guestfish_s" in row:
        theirs = row["guestfish_s"]
        ratios = [a / b for a, b in zip(ours, theirs, strict=True)]
        row["ratios"] = ratios
        row["guestfish_median_s"], row["guestfish_min_s"], row["guestfish_max_s"] = (
            statistics.median(theirs), min(theirs), max(theirs))
        row["ratio"], row["ratio_min"], row["ratio_max"] = statistics.median(ratios), min(ratios), max(ratios)
        row["target"] = TARGETS.get(row["part"])
        row["met"] = row["target"] is None or row["ratio"] <= row["target"]
    else:
        row["target"] = {"wizard": WIZARD_TARGET, "--help": HELP_TARGET}.get(row["part"])
        row["met"] = row["target"] is None or row["median_s"] < row["target"]


def spread(median: float, low: float, high: float, digits: int = 1) -> str:
    return f"{median:.{digits}f} ({low:.{digits}f}-{high:.{digits}f})"


def print_table(rows: list[dict], pairs: int, accel: str) -> None:
    print(f"bench: {pairs} interleaved pair(s) per compared part, accel {accel}, {os.cpu_count()} cpus; "
          "median (min-max)")
    print(f"{'part':<18} {'zvm-provision s':>20} {'guestfish s':>20} {'ratio':>18} {'target':>8}  met")
    for row in rows:
        if row["part"] == "calls":
            continue
        small = "ratio" not in row
        digits = 2 if small or row["median_s"] < 5 else 1
        ours = spread(row["median_s"], row["min_s"], row["max_s"], digits)
        gf = "-" if small else spread(row["guestfish_median_s"], row["guestfish_min_s"], row["guestfish_max_s"],
                                      digits)
        ratio = "-" if small else spread(row["ratio"], row["ratio_min"], row["ratio_max"], 2)
        target = "-" if row["target"] is None else f"< {row['target']} s" if small else f"<= {row['target']}"
        print(f"{row['part']:<18} {ours:>20} {gf:>20} {ratio:>18} {target:>8}  {'yes' if row['met'] else 'NO'}")
    for row in rows:
        if row["part"].startswith(("audit", "revoke")):
            print(f"{row['part']}: the baseline column is {row['baseline']}, not guestfish")
    for row in rows:
        if "baseline" in row and row["part"].startswith(("real", "reflink", "compress ", "vmdk", "keys")):
            print(f"{row['part']}: the baseline column is {row['baseline']}")
        if "loop_s" in row:
            ratios = [a / b for a, b in zip(row["zvm_provision_s"], row["loop_s"], strict=True)]
            loop = spread(statistics.median(row["loop_s"]), min(row["loop_s"]), max(row["loop_s"]))
            ratio = spread(statistics.median(ratios), min(ratios), max(ratios), 2)
            print(f"{row['part']}: against the cp+guestfish loop {loop} s: ratio {ratio} (target <= {LOOP_TARGET})")
        if "peak_rss" in row:
            peaks = ", ".join(f"{kind} {rss / 2**20:.0f} MiB" for kind, rss in row["peak_rss"].items())
            print(f"{row['part']}: peak RSS: {peaks}")
        if "used_growth_bytes" in row:
            grown = ", ".join(f"{b / 2**20:.0f}" for b in row["used_growth_bytes"])
            print(f"{row['part']}: used space grew by {grown} MiB per run (the base allocates "
                  f"{row['base_allocated'] / 2**20:.0f} MiB)")
        if "exit" in row:
            print(f"{row['part']}: exit {row['exit']}: {row['message']}")
    for row in rows:
        if "sizes" in row:
            sizes = row["sizes"]
            print(f"\ncompress: baseline is {row['baseline']} with the tool's options (zstd), not guestfish; "
                  f"seeded image {row['seeded_size'] / 2**20:.1f} MiB; compressed: zvm-provision "
                  f"{sizes['zvm'] / 2**20:.1f} MiB, qemu-img {sizes['qemu-img'] / 2**20:.1f} MiB, "
                  f"zlib -c {sizes['zlib'] / 2**20:.1f} MiB")
    for row in rows:
        if row["part"] == "calls":
            print(f"\none seeding, every libguestfs call timed: {row['wall_s']:.1f} s wall; the launch starts at "
                  f"{row['launch_starts_s']:.2f} s and takes {row['launch_s']:.1f} s; after it "
                  f"{row['after_launch_s']:.2f} s, {row['calls_after_launch_s']:.2f} s of it in calls:")
            for name, call in row["per_call"].items():
                if call["s"] >= 0.005:
                    print(f"  {name:<18} x{call['count']:<4} {call['s']:.3f} s")


def bench_real_size(args, parts: set[str], work: Path, blank: Path, hash_file: Path, key_file: Path, environ
                    ) -> list[dict]:
    """The parts at a real size: the base built on the host (or --real-base), ext4 parts in `work`, btrfs parts in
    a loop-mounted btrfs made in `work`."""
    rows: list[dict] = []
    base = args.real_base
    if base is None:
        print(f"bench: building a base with {args.real_size} GiB in nix (mke2fs -d, no appliance)...", file=sys.stderr)
        built = build_real_base(work / "real-base.qcow2", int(args.real_size * (1 << 30)), work)
        print(f"bench: real base: {built}", file=sys.stderr)
        base = Path(built["path"])
    disk = subprocess.run(["df", "-hT", str(work)], capture_output=True, text=True).stdout.splitlines()[-1]
    print(f"bench: work folder on {disk}", file=sys.stderr)
    if "s" in parts:  # 100 images, or as many as one more than the folder holds
        fits = shutil.disk_usage(work).free // (os.stat(base).st_blocks * 512 + (4 << 20))
        rows.append(bench_space(work, base, hash_file, key_file, environ, args.accel, max(100, fits * 11 // 10 + 1)))
    if "g" in parts:
        for size in (int(n) for n in args.real_sizes.split(",")):
            rows.append(bench_real(work, base, hash_file, key_file, args.persist_device, environ, args.accel, size,
                                   args.pairs, not args.no_loop, reflink=False))
    if "i" in parts:
        for fmt in ("compress", "vmdk"):
            rows.append(bench_handover(work, base, hash_file, key_file, environ, args.accel, args.handover_size,
                                       args.pairs, fmt))
    if parts & {"h", "m"}:
        mount = mounted_btrfs(work, os.stat(base).st_blocks * 512 * 2 + (4 << 30))
        try:
            on_btrfs, blank_on_btrfs = mount / "real-base.qcow2", mount / "blank-base.qcow2"
            shutil.copyfile(base, on_btrfs)
            shutil.copyfile(blank, blank_on_btrfs)
            if "h" in parts:
                rows.append(bench_reflink(mount, on_btrfs, blank_on_btrfs, hash_file, key_file, environ, args.accel,
                                          args.reflink_size, args.pairs))
            if "m" in parts:
                rows += bench_memory(mount, on_btrfs, hash_file, key_file, environ, args.accel,
                                     [int(n) for n in args.memory_sizes.split(",")])
        finally:
            unmount_btrfs(work)
    return rows


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--calls-child":
        calls_child(sys.argv[2:])
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--compress-child":
        compress_child(sys.argv[2], sys.argv[3:])
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--marked-child":
        marked_child(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="a,b,c,d,e,f",
                        help="which parts: a (one image), b (batch), c (--help), d (wizard: confirmation to exit), "
                        "e (--compress: the conversion against qemu-img's), f (inspect and keys over a fleet); at a "
                        "real size (a base with --real-size GiB in nix, built on the host): g (batch against the "
                        "copies then one launch, and the cp+guestfish loop), h (on btrfs: reflinks, real against "
                        "blank), i (--compress and --format vmdk against a loop of conversions), m (peak memory at "
                        "--memory-sizes, on btrfs), s (the free-space refusal); k (keys over --fleet-size images: one "
                        "appliance against two)")
    parser.add_argument("--pairs", type=int, default=3, help="interleaved pairs (samples) per part (default 3)")
    parser.add_argument("--calls", action="store_true", help="also time every libguestfs call of one seeding")
    parser.add_argument("--sizes", default="8,20", help="batch sizes, comma-separated")
    parser.add_argument("--fleet-size", type=int, default=20, help="images for part f (default 20)")
    parser.add_argument("--jobs", type=int, default=0, help="--jobs for zvm-provision batch (0: its default)")
    parser.add_argument("--base", type=Path, help="a zvm base image (qcow2); default: a new 512M sample disk")
    parser.add_argument("--persist-device", default="/dev/sda3", help="persist in the guestfish appliance")
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm"), help="tcg: nested KVM hangs here")
    parser.add_argument("--work-dir", type=Path, help="keep the images there (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--real-size", type=float, default=2.0,
                        help="g, h, i, m, s: GiB of files in the real base's nix partition (default 2)")
    parser.add_argument("--real-base", type=Path, help="g, h, i, m, s: a real base made earlier (else built)")
    parser.add_argument("--real-sizes", default="8,20", help="g: batch sizes at a real size")
    parser.add_argument("--no-loop", action="store_true", help="g: leave out the cp+guestfish loop (slow)")
    parser.add_argument("--reflink-size", type=int, default=20, help="h: batch size on btrfs (default 20)")
    parser.add_argument("--handover-size", type=int, default=8, help="i: batch size to hand over (default 8)")
    parser.add_argument("--memory-sizes", default="20,100", help="m: batch sizes on btrfs, one run each")
    args = parser.parse_args()
    if args.pairs < 1:
        parser.error("--pairs must be at least 1")
    parts = set(args.parts.split(","))
    environ = env(args.accel)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="zvm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    try:
        if "c" in parts:
            rows.append(bench_help(environ))
        if parts & {"a", "b", "d", "e", "f", "g", "h", "i", "k", "m", "s"} or args.calls:
            from provision.core.credentials.passwords import hash_password

            base = args.base
            if base is None:
                base = work / "base.qcow2"
                print("bench: making a 512M sample disk as the base...", file=sys.stderr)
                run(zvm("sample-disk", str(base), "--size", "512M", "--accel", args.accel), environ)
            hash_file = work / "password.hash"
            hash_file.write_text(hash_password("benchmark password 1234").reveal() + "\n")
            hash_file.chmod(0o600)  # a secret: refused when others can read it
            key_file = work / "id_ed25519"
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bench@zvm", "-f", str(key_file)],
                           check=True, stdin=subprocess.DEVNULL)
            key_file = key_file.with_name("id_ed25519.pub")
            print("bench: warming up (one guestfish launch: appliance cache, page cache)...", file=sys.stderr)
            warm_up = work / "warm-up.gf"
            warm_up.write_text("run\nexit\n")
            run(["guestfish", "--ro", "--format=qcow2", "-a", str(base), "-f", str(warm_up)], environ)
            if "d" in parts:
                print("bench: (d) the wizard...", file=sys.stderr)
                rows.append({"part": "wizard", "zvm_provision_s": [
                    bench_wizard(work, base, key_file, environ, args.accel, i) for i in range(args.pairs)]})
            if "a" in parts:
                print(f"bench: (a) one image, {args.pairs} pairs...", file=sys.stderr)
                rows += bench_one(work, base, hash_file, key_file, args.persist_device, environ, args.accel,
                                  args.pairs)
            if args.calls:
                print("bench: one seeding with every libguestfs call timed...", file=sys.stderr)
                rows.append(bench_calls(work, base, hash_file, key_file, environ, args.accel))
            if "e" in parts:
                print(f"bench: (e) --compress, {args.pairs} pairs...", file=sys.stderr)
                rows += bench_compress(work, base, hash_file, key_file, environ, args.accel, args.pairs)
            if "b" in parts:
                for size in (int(s) for s in args.sizes.split(",")):
                    print(f"bench: (b) batch of {size}, {args.pairs} pairs...", file=sys.stderr)
                    rows.append(bench_batch(work, base, hash_file, key_file, args.persist_device, environ,
                                            args.accel, size, args.jobs, args.pairs))
            if "f" in parts:
                print(f"bench: (f) inspect and keys over {args.fleet_size} images, {args.pairs} pairs...",
                      file=sys.stderr)
                rows += bench_fleet(work, base, hash_file, key_file, environ, args.accel, args.fleet_size, args.jobs,
                                    args.pairs)
            if "k" in parts:
                print(f"bench: (k) keys over {args.fleet_size} images: one launch against two...", file=sys.stderr)
                rows.append(bench_keys_chunks(work, base, hash_file, key_file, environ, args.accel, args.fleet_size,
                                              args.pairs))
            if parts & {"g", "h", "i", "m", "s"}:
                rows += bench_real_size(args, parts, work, base, hash_file, key_file, environ)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        if row["part"] != "calls":
            summarise(row)
    if args.json:
        print(json.dumps({"accel": args.accel, "cpus": os.cpu_count(), "pairs": args.pairs, "results": rows},
                         indent=2))
        return
    print_table(rows, args.pairs, args.accel)


if __name__ == "__main__":
    main()
