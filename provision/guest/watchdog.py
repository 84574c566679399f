"""KVM that hangs or crashes the appliance: a watchdog on one launch's own qemu, and what this host's KVM did,
remembered (~/.cache/zvm-provision/accel.json) so that later runs go straight to TCG.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Any, Literal

from provision.host import writing as hostfiles

KvmVerdict = Literal["hangs", "crashes"]  # what a failed KVM launch under --accel auto records for this host
KVM_VERDICTS: tuple[KvmVerdict, ...] = ("hangs", "crashes")
_VERDICTS_LOCK = threading.Lock()  # appliances in several threads (batch --jobs) may record at once


def kvm_usable() -> bool:
    return os.path.exists("/dev/kvm") and os.access("/dev/kvm", os.R_OK | os.W_OK)


def _children_with(token: bytes) -> set[int]:
    """Pids of this process's children whose command line holds `token`."""
    me = os.getpid()
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read()
            fields = raw[raw.rfind(b")") + 2 :].split()
            if len(fields) < 2 or int(fields[1]) != me:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as fh:
                if token in fh.read():
                    found.add(int(name))
        except (OSError, ValueError):
            continue
    return found


class Watchdog:
    """Kills the qemu that one launch started if the appliance is not up within `timeout` seconds, or at once
    when `cancelled` is set (the run stops before anything was written: see session.ImageSession.close).

    Only that launch's qemu: batch runs several appliances in one process, and a watchdog must never touch
    another's. g.get_pid() cannot be used (launch() holds the handle until it returns), so the launch marks
    its qemu: a unique word on the appliance kernel's command line (the kernel passes unknown words to the
    appliance's init, which ignores them), found in qemu's argv in /proc. The clock starts when that qemu
    appears (building the appliance with supermin comes first and may take a while on a first run).
    """

    def __init__(self, g: Any, timeout: float, cancelled: threading.Event | None = None) -> None:
        self.timeout = timeout
        self.fired = False  # the timeout killed qemu
        self.cancelled = cancelled if cancelled is not None else threading.Event()
        word = f"zvm_provision_launch={secrets.token_hex(8)}"
        append = g.get_append()
        g.set_append(f"{append} {word}" if append else word)
        self._token = word.encode()
        self._stop = threading.Event()
        self._wake = threading.Event()  # set by stop and by poke(): look now, not at the next half second
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="zvm-launch-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        with self._lock:
            self._stop.set()
        self._wake.set()
        self._thread.join()

    def poke(self) -> None:
        """`cancelled` was just set: kill the qemu now if it is there (else as soon as it appears)."""
        self._wake.set()

    def _run(self) -> None:
        seen_at = None
        while True:
            self._wake.wait(0.1 if self.cancelled.is_set() else 0.5)
            self._wake.clear()
            if self._stop.is_set():
                return
            ours = _children_with(self._token)
            if not ours:
                continue
            now = time.monotonic()
            seen_at = seen_at or now
            cancelled = self.cancelled.is_set()
            if not cancelled and now - seen_at < self.timeout:
                continue
            with self._lock:
                if self._stop.is_set():
                    return
                self.fired = not cancelled
                for pid in ours:
                    try:
                        os.kill(pid, 9)
                    except OSError:
                        pass
            return


def cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "zvm-provision" / "accel.json"


def shown_path(path: Path) -> str:
    home = os.path.expanduser("~")
    text = str(path)
    return "~" + text[len(home) :] if home not in ("", "/") and text.startswith(home + "/") else text


def host_key(hv: str) -> str:
    """What a KVM verdict depends on: this kernel and this qemu binary. Read from the binary's metadata
    rather than by running `qemu --version`, which is slower and can time out on a loaded host (and a
    key that changes from run to run would make every run wait for the watchdog again)."""
    path = shutil.which(hv) or hv
    try:
        st = os.stat(path)
        qemu = f"{os.path.realpath(path)} {st.st_size} {int(st.st_mtime)}"
    except OSError:
        qemu = f"{hv} (missing)"
    return f"{os.uname().release} | {qemu}"


def _read_verdicts() -> dict:
    try:
        data = json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def kvm_verdict(key: str) -> KvmVerdict | None:
    entry = _read_verdicts().get(key)
    verdict = entry.get("kvm") if isinstance(entry, dict) else None
    return verdict if verdict in KVM_VERDICTS else None


def remember_kvm_verdict(key: str, verdict: KvmVerdict, detail: str) -> None:
    """Add this host's verdict to the cache. Threads take a lock, processes an flock on a lock file, and the
    file is replaced atomically (hostfiles.write_atomic, under both locks): no update is lost, none is torn."""
    if verdict not in KVM_VERDICTS:
        raise ValueError(f"unknown KVM verdict {verdict!r}")
    path = cache_file()
    entry = {"kvm": verdict, "detail": detail, "recorded": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with _VERDICTS_LOCK:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.with_name(path.name + ".lock"), "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)
                verdicts = _read_verdicts()
                verdicts[key] = entry
                hostfiles.write_atomic(path, (json.dumps(verdicts, indent=2) + "\n").encode())
        except OSError:
            pass  # only an optimisation: the next run will try KVM again
