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
           "audit 20": 0.12, "revoke 20": 0.12}
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


def interleaved(pairs: int, ours, theirs) -> tuple[list[float], list[float]]:
    """`pairs` pairs of samples, ours(i) and theirs(i) each returning seconds; the order alternates."""
    mine: list[float] = []
    other: list[float] = []
    for i in range(pairs):
        steps = [(ours, mine), (theirs, other)]
        for run_one, samples in steps if i % 2 == 0 else reversed(steps):
            samples.append(run_one(i))
    return mine, other


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

    mine, other = interleaved(pairs, ours, theirs)
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

    mine, other = interleaved(pairs, ours, theirs)
    return {"part": f"batch {size}", "zvm_provision_s": mine, "guestfish_s": other, "jobs": jobs or "auto"}


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

    whole, qemu = interleaved(pairs, ours, theirs)
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

    audit, audit_baseline = interleaved(pairs, audit_ours, audit_loop)
    revoke, revoke_baseline = interleaved(pairs, revoke_ours, revoke_loop)
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
                        "e (--compress: the conversion against qemu-img's), f (inspect and keys over a fleet)")
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
        if parts & {"a", "b", "d", "e", "f"} or args.calls:
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
