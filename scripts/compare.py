#!/usr/bin/env python3
"""Two versions of zvm-provision side by side: did a change make the fleet commands or batch slower?

    python scripts/compare.py --before /path/to/old/checkout [--pairs 3] [--size 20] [--parts keys,inspect,batch]

Each checkout is run with its own `.venv/bin/python -m provision`. On N images made once by batch from a blank
sample disk, it times, in interleaved pairs (the new version first in even pairs, the old one first in odd
ones), with only the command itself timed:
  keys     `keys DIR --remove-key leaver@bench` on fresh copies of the N images each sample (copying untimed)
  inspect  `inspect DIR` on the N images (read-only, the same images every sample)
  batch    `batch` of N images from the blank base into a new folder each sample
Each sample is printed as it is taken, with the load average; at the end the medians, min-max and the
ratio new/old taken pair by pair. Root is not needed. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tool(checkout: Path, *args: str) -> list[str]:
    return [str(checkout / ".venv" / "bin" / "python"), "-m", "provision", *args, "--accel", "tcg"]


def run(command: list[str], *, cwd: Path, ok=(0,)) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode not in ok:
        sys.exit(f"{' '.join(command)} exited {result.returncode}: {result.stderr.strip()[-600:]}")
    return seconds


def load() -> str:
    return "load %.1f" % os.getloadavg()[0]


def make_fleet(work: Path, size: int) -> tuple[Path, Path, Path]:
    """A blank base, a manifest of `size` users each holding user.pub and leaver.pub, and the images."""
    base = work / "base.qcow2"
    run(tool(ROOT, "sample-disk", str(base), "--size", "2G"), cwd=work)
    for name, comment in (("user", "user@bench"), ("leaver", "leaver@bench")):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(work / name)],
                       check=True, stdin=subprocess.DEVNULL)
    hashed = subprocess.run(["mkpasswd", "-m", "sha-512", "-s"], input="a bench password\n", text=True,
                            capture_output=True, check=True).stdout.strip()
    manifest = work / "staff.csv"
    manifest.write_text("name,ssh_keys,password_hash\n"
                        + "".join(f"user{i:03d},user.pub;leaver.pub,{hashed}\n" for i in range(size)))
    manifest.chmod(0o600)
    made = work / "made"
    run(tool(ROOT, "batch", str(manifest), "--base", str(base), "--out-dir", str(made)), cwd=work)
    return base, manifest, made


def sample(part: str, checkout: Path, work: Path, label: str, base: Path, manifest: Path, made: Path) -> float:
    if part == "inspect":
        return run(tool(checkout, "inspect", str(made)), cwd=work)
    fresh = work / f"fresh-{label}"
    shutil.rmtree(fresh, ignore_errors=True)
    try:
        if part == "keys":
            fresh.mkdir()
            for image in sorted(made.glob("*.qcow2")):
                subprocess.run(["cp", "--sparse=always", str(image), str(fresh / image.name)], check=True)
            return run(tool(checkout, "keys", str(fresh), "--remove-key", "leaver@bench"), cwd=work)
        return run(tool(checkout, "batch", str(manifest), "--base", str(base), "--out-dir", str(fresh)), cwd=work)
    finally:
        shutil.rmtree(fresh, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path, required=True, help="the old checkout (with its .venv)")
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--parts", default="keys,inspect,batch")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zvm-compare-", dir=ROOT) as folder:
        work = Path(folder)
        print(f"making {args.size} images ({load()})", flush=True)
        fleet = make_fleet(work, args.size)
        for part in args.parts.split(","):
            new, old = [], []
            for i in range(args.pairs):
                order = [("new", ROOT, new), ("old", args.before, old)]
                for name, checkout, samples in (order if i % 2 == 0 else order[::-1]):
                    samples.append(sample(part, checkout, work, name, *fleet))
                    print(f"{part} pair {i + 1}: {name} {samples[-1]:.1f} s ({load()})", flush=True)
            ratios = [a / b for a, b in zip(new, old)]
            print(f"{part} x{args.size}: new {statistics.median(new):.1f} s ({min(new):.1f}-{max(new):.1f}), "
                  f"old {statistics.median(old):.1f} s ({min(old):.1f}-{max(old):.1f}), "
                  f"ratio {statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}) "
                  f"over {args.pairs} pairs", flush=True)


if __name__ == "__main__":
    main()
