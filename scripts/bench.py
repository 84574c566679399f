#!/usr/bin/env python3
"""The project's benchmark (design.md, "Performance targets"): zvm-provision against guestfish, side by side.

  (a) one image, non-interactive: `zvm-provision IMAGE --password-hash-file H --ssh-key K` against one
      `guestfish --rw -a IMAGE -f script` doing the same writes (mkdir/upload/chown/chmod of the contract).
      Target: ratio <= 1.2.
  (b) batch of N images (default 8 and 20): `zvm-provision batch` against a loop running one guestfish launch
      per image, with the same writes; both make their copies with `qemu-img convert`.
      Targets: <= 0.3 for 8, <= 0.15 for 20.
  (c) `zvm-provision --help` wall time. Target: < 0.3 s.
  (d) interactive: the wizard on a pseudo-terminal (pexpect types the answers); the time from the final
      confirmation to the command's exit, since the appliance starts while the person answers.
      Target: < 5 s.

It is not part of the test suite. Under TCG (LIBGUESTFS_BACKEND_SETTINGS=force_tcg for guestfish,
--accel tcg for zvm-provision) a full run takes about 10-15 minutes; choose parts with --parts and sizes
with --sizes.

    python scripts/bench.py                       # everything
    python scripts/bench.py --parts b --sizes 8   # one batch size
    python scripts/bench.py --json                # the table as JSON on stdout
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

TARGETS = {"one image": 1.2, "batch 8": 0.3, "batch 20": 0.15}
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


def guestfish_script(folder: Path, hash_file: Path, key_file: Path, device: str) -> Path:
    """What a sysadmin would script: the same contract paths, owners, modes and content as zvm-provision."""
    from provision.layout import load_layout

    host_key = folder / "ssh_host_ed25519_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@zvm", "-f", str(host_key)],
                   check=True, stdin=subprocess.DEVNULL)
    machine_id = folder / "machine-id"
    machine_id.write_text(secrets.token_hex(16) + "\n")
    sources = {
        "password-hash": hash_file, "authorized-keys": key_file, "host-key": host_key,
        "host-key-public": host_key.with_name(host_key.name + ".pub"), "machine-id": machine_id,
    }
    lines = ["run", f"mount {device} /"]
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


def guestfish_one(image: Path, folder: Path, hash_file: Path, key_file: Path, device: str, environ) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    script = guestfish_script(folder, hash_file, key_file, device)
    run(["guestfish", "--rw", "--format=qcow2", "-a", str(image), "-f", str(script)], environ)


# -- the parts --------------------------------------------------------------------------------------


def bench_one(work: Path, base: Path, hash_file: Path, key_file: Path, device: str, environ, accel) -> dict:
    folder = work / "one"
    folder.mkdir()
    zvm_image, gf_image = folder / "zvm.qcow2", folder / "gf.qcow2"
    copy_base(base, zvm_image, environ)
    copy_base(base, gf_image, environ)
    gf = timed(lambda: guestfish_one(gf_image, folder / "gf", hash_file, key_file, device, environ))
    ours = timed(lambda: run(zvm(str(zvm_image), "--password-hash-file", str(hash_file), "--ssh-key", str(key_file),
                                 "--yes", "--accel", accel), environ))
    return {"part": "one image", "zvm_provision_s": ours, "guestfish_s": gf}


def bench_batch(work: Path, base: Path, hash_file: Path, key_file: Path, device: str, environ, accel, size: int,
                jobs: int) -> dict:
    folder = work / f"batch{size}"
    folder.mkdir()
    shutil.copy(key_file, folder / "user.pub")
    hashed = hash_file.read_text().strip()
    manifest = folder / "staff.csv"
    manifest.write_text("name,ssh_keys,password_hash\n" + "".join(f"user{i:03d},user.pub,{hashed}\n"
                                                                   for i in range(size)))
    manifest.chmod(0o600)  # it holds password hashes: zvm-provision refuses it readable by others

    def loop() -> None:
        for i in range(size):
            image = folder / "gf" / f"user{i:03d}.qcow2"
            image.parent.mkdir(exist_ok=True)
            copy_base(base, image, environ)
            guestfish_one(image, folder / "gf" / f"user{i:03d}", hash_file, key_file, device, environ)

    command = zvm("batch", str(manifest), "--base", str(base), "--out-dir", str(folder / "zvm"), "--accel", accel)
    if jobs:
        command += ["--jobs", str(jobs)]
    ours = timed(lambda: run(command, environ))
    gf = timed(loop)
    return {"part": f"batch {size}", "zvm_provision_s": ours, "guestfish_s": gf, "jobs": jobs or "auto"}


def bench_wizard(work: Path, base: Path, key_file: Path, environ, accel) -> dict:
    """Drive the wizard with keystrokes; the wizard notes the moment of confirmation in a file."""
    import pexpect

    image, home, marks = work / "wizard.qcow2", work / "home", work / "wizard-marks.txt"
    copy_base(base, image, environ)
    (home / ".ssh").mkdir(parents=True)
    shutil.copy(key_file, home / ".ssh" / "id_ed25519.pub")
    child_env = dict(environ, HOME=str(home), TERM="xterm", PROMPT_TOOLKIT_NO_CPR="1", NO_COLOR="1",
                     ZVM_PROVISION_BENCH_FILE=str(marks))
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
        child.expect("Write this to")
        child.send("y")
        child.expect(pexpect.EOF)
        exited = time.monotonic()
    finally:
        child.close()
    if child.exitstatus != 0:
        sys.exit(f"bench: the wizard failed ({child.exitstatus}):\n{child.before}")
    confirmed = float(marks.read_text().split()[1])
    return {"part": "wizard", "zvm_provision_s": exited - confirmed}


def bench_help(environ) -> dict:
    times = [timed(lambda: run(zvm("--help"), environ)) for _ in range(7)]
    return {"part": "--help", "zvm_provision_s": statistics.median(times), "best_s": min(times)}


# -- main -------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--parts", default="a,b,c,d",
                        help="which parts: a (one image), b (batch), c (--help), d (wizard: confirmation to exit)")
    parser.add_argument("--sizes", default="8,20", help="batch sizes, comma-separated")
    parser.add_argument("--jobs", type=int, default=0, help="--jobs for zvm-provision batch (0: its default)")
    parser.add_argument("--base", type=Path, help="a zvm base image (qcow2); default: a new 512M sample disk")
    parser.add_argument("--persist-device", default="/dev/sda3", help="persist in the guestfish appliance")
    parser.add_argument("--accel", default="tcg", choices=("tcg", "kvm"), help="tcg: nested KVM hangs here")
    parser.add_argument("--work-dir", type=Path, help="keep the images there (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    environ = env(args.accel)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="zvm-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    try:
        if "c" in parts:
            rows.append(bench_help(environ))
        if parts & {"a", "b", "d"}:
            from provision.credentials import hash_password

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
                rows.append(bench_wizard(work, base, key_file, environ, args.accel))
            if "a" in parts:
                print("bench: (a) one image...", file=sys.stderr)
                rows.append(bench_one(work, base, hash_file, key_file, args.persist_device, environ, args.accel))
            if "b" in parts:
                for size in (int(s) for s in args.sizes.split(",")):
                    print(f"bench: (b) batch of {size}...", file=sys.stderr)
                    rows.append(bench_batch(work, base, hash_file, key_file, args.persist_device, environ,
                                            args.accel, size, args.jobs))
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    for row in rows:
        if "guestfish_s" in row:
            row["ratio"] = row["zvm_provision_s"] / row["guestfish_s"]
            row["target"] = TARGETS.get(row["part"])
            row["met"] = row["target"] is None or row["ratio"] <= row["target"]
        else:
            limit = WIZARD_TARGET if row["part"] == "wizard" else HELP_TARGET
            row["target"], row["met"] = limit, row["zvm_provision_s"] < limit
    if args.json:
        print(json.dumps({"accel": args.accel, "cpus": os.cpu_count(), "results": rows}, indent=2))
        return
    print(f"{'part':<10} {'zvm-provision':>14} {'guestfish':>10} {'ratio':>7} {'target':>8}  met")
    for row in rows:
        gf = f"{row['guestfish_s']:.1f} s" if "guestfish_s" in row else "-"
        ratio = f"{row['ratio']:.2f}" if "ratio" in row else "-"
        target = (f"<= {row['target']}" if "ratio" in row else f"< {row['target']} s") if row["target"] else "-"
        ours = f"{row['zvm_provision_s']:.2f} s" if "ratio" not in row else f"{row['zvm_provision_s']:.1f} s"
        print(f"{row['part']:<10} {ours:>14} {gf:>10} {ratio:>7} {target:>8}  {'yes' if row['met'] else 'NO'}")


if __name__ == "__main__":
    main()
