"""Stand-in hypervisors: small scripts that libguestfs runs instead of qemu (LIBGUESTFS_HV, g.set_hv), so that
every KVM path can be driven on any host: KVM that hangs the appliance, KVM that crashes qemu at once, and KVM
that works.

A stand-in passes every capability query (-help, -device ?, QMP) to the real qemu, under TCG, and answers "KVM
is present and enabled" whatever the host has (libguestfs believes qemu's query-kvm), so libguestfs agrees to
launch with accel=kvm. What happens then is the stand-in's behaviour; this host's KVM is never touched:

  hang   never answers (as nested KVM does on some machines); only a watchdog ends it
  crash  aborts itself at once (SIGABRT, as qemu does under KVM on some CI machines)
  kvm    runs the real qemu with TCG in place of KVM: a launch that "works under KVM"

Every invocation's arguments are logged (one JSON list per line), so a test can see which accelerators were
tried. The script's name starts with "qemu", as the real binary's does.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

BEHAVIOURS = ("hang", "crash", "kvm")

_SCRIPT = '''#!{python} -I
import json, os, re, subprocess, sys, time

REAL, BEHAVIOUR, LOG = {real!r}, {behaviour!r}, {log!r}
args = sys.argv[1:]
with open(LOG, "a", encoding="utf-8") as fh:
    fh.write(json.dumps(args) + "\\n")
machine = next((args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "-machine"), "")
if "-kernel" in args and "accel=kvm" in machine:  # the appliance itself, under KVM
    if BEHAVIOUR == "hang":
        while True:
            time.sleep(3600)
    if BEHAVIOUR == "crash":
        os.abort()
# This host's KVM is never used, not even by the capability queries (accel=kvm:tcg).
args = [re.sub(r"accel=[^,]*", "accel=tcg", arg) if arg == machine else arg for arg in args]
if "-qmp" in args:  # the capability query: say KVM is there, whatever this host has
    query = subprocess.Popen([REAL, *args], stdout=subprocess.PIPE, text=True)
    for line in query.stdout:
        if '"present"' in line:
            line = re.sub(r'"(enabled|present)": false', r'"\\1": true', line)
        sys.stdout.write(line)
        sys.stdout.flush()
    sys.exit(query.wait())
os.execv(REAL, [REAL, *args])
'''


def real_hypervisor() -> str:
    """The qemu libguestfs runs by default on this host."""
    import guestfs

    return guestfs.GuestFS(python_return_dict=True, environment=False).get_hv()


@dataclass(frozen=True)
class StandIn:
    path: Path
    log: Path

    def invocations(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text(encoding="utf-8").splitlines()]

    def boots(self) -> list[str]:
        """The accelerator asked for by each appliance boot (not the capability queries), in order."""
        found = []
        for args in self.invocations():
            if "-kernel" in args:
                machine = args[args.index("-machine") + 1]
                found.append(next(p.split("=", 1)[1] for p in machine.split(",") if p.startswith("accel=")))
        return found


def stand_in(folder: Path, behaviour: str) -> StandIn:
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"behaviour must be one of {BEHAVIOURS}")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"qemu-{behaviour}"
    log = folder / f"qemu-{behaviour}.log"
    path.write_text(_SCRIPT.format(python=sys.executable, real=real_hypervisor(), behaviour=behaviour, log=str(log)))
    os.chmod(path, 0o755)
    return StandIn(path, log)
