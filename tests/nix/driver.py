"""A recording stand-in for the NixOS test driver, to run nix/tests/boot.nix's Python testScript here.

`Machine` has the public methods the script calls with the real driver's names and signatures (nixpkgs
`nixos/lib/test-driver/src/test_driver/machine/__init__.py`, read at NixOS/nixpkgs 019697db, where the
qemu machine is `QemuMachine(BaseMachine)`; 25.11's `Machine` has the same methods). `copy_from_host` and
`copy_from_vm` are the driver's own bodies: they pass the file through the host's shared directory, which
the VM sees at /tmp/shared only if the node's evaluated `fileSystems` mounts the 9p share whose
`virtualisation.sharedDirectories` source is `$SHARED_DIR` (as qemu-vm.nix's start script passes it).

Instead of a VM, `Guest` answers the commands the script sends from the evaluated node (`node`, from
nix/tests/eval-boot.nix) and the disk: what survives a reboot is what impermanence binds from /persist; the
host key, machine-id, hostname and authorized keys are the files found where the node's paths lead (the
seeded persist partition, or the tmpfs); sshd's settings decide which logins work. Key answers are computed
by the real ssh-keygen from those files (the host key's fingerprint from the private key found at sshd's
hostKeys path; a login from the public key of the private key ssh is given, looked up in authorized_keys), so
a seeding or mapping error changes what the script sees. A command it does not know is an error, never a silent success.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

SSH_PREFIX = "ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null"
LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\n")


class RequestedAssertionFailed(Exception):
    """test_driver.errors.RequestedAssertionFailed: a succeed/fail/wait the script asked for did not hold."""


class StandInError(Exception):
    """The script asked for something this stand-in cannot answer: extend it, the script changed."""


def make_command(args: list) -> str:
    return " ".join(map(shlex.quote, map(str, args)))


class Disk:
    """A disk image as the VM sees it: its persist partition's files (path -> (bytes, "uid:gid mode"))."""

    def __init__(self, persist: dict[str, tuple[bytes, str]]) -> None:
        self.persist = persist


def public_key_of(private: bytes) -> bytes | None:
    """`ssh-keygen -y`: the public key line of an OpenSSH private key, or None where it is none (as sshd and ssh
    find it: a key the seeding garbled is no key)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "key"
        path.write_bytes(private)
        path.chmod(0o600)
        derived = subprocess.run(["ssh-keygen", "-y", "-f", str(path)], capture_output=True, stdin=subprocess.DEVNULL)
    return derived.stdout if derived.returncode == 0 and derived.stdout.strip() else None


def fingerprint_of(public: bytes) -> str:
    """`ssh-keygen -lf -`'s second field, as the boot test's `ssh-keyscan ... | ssh-keygen -lf - | cut` prints it."""
    listed = subprocess.run(["ssh-keygen", "-lf", "-"], input=public, capture_output=True, check=True)
    return listed.stdout.split()[1].decode()


def new_host_key() -> bytes:
    """What sshd's key generation leaves where it finds no host key: a new ed25519 private key."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)], check=True,
                       stdin=subprocess.DEVNULL)
        return path.read_bytes()


class Guest:
    """The running VM's file system and services, from the node's configuration and the disk."""

    def __init__(self, node: dict, disk: Disk, share_roots: dict[str, Path]) -> None:
        self.node, self.disk, self.share_roots = node, disk, share_roots
        self.tmpfs: dict[str, tuple[bytes, str]] = {}
        persistence = node["persistence"].get("/persist", {"directories": [], "files": [], "userDirectories": []})
        self.bound_dirs = persistence["directories"] + persistence["userDirectories"]
        self.bound_files = persistence["files"]
        machine_id = self.read("/etc/machine-id")
        if machine_id is None:  # systemd makes one on a tmpfs root
            self.write("/etc/machine-id", uuid.uuid4().hex.encode() + b"\n")
        self.host_keys = {}  # path -> the fingerprint sshd serves, from the key file found there
        for path in node["openssh"]["hostKeys"]:
            public = public_key_of(self.read(path) or b"")
            if public is None:  # sshd makes a key where none is found: on the tmpfs, a new one at every boot
                self.write(path, new_host_key(), owner="0:0 600")
                public = public_key_of(self.read(path) or b"")
            assert public is not None
            self.host_keys[path] = fingerprint_of(public)
        seeded = self.read(node["hostnameFile"])  # what modules/hostname.nix reads
        name = seeded.decode() if seeded is not None and LABEL.fullmatch(seeded.decode()) else node["hostName"] + "\n"
        self.write("/etc/hostname", name.encode())
        self.hostname = name.strip()

    # --- where a path lives ---------------------------------------------------------------------------
    def store(self, path: str) -> tuple[dict | Path, str]:
        """(the store holding PATH, its key there): the disk's persist partition, a 9p share, or the tmpfs."""
        path = os.path.normpath(path)
        if path == "/persist" or path.startswith("/persist/"):
            return self.disk.persist, path
        if path in self.bound_files or any(path == d or path.startswith(d + "/") for d in self.bound_dirs):
            return self.disk.persist, "/persist" + path
        for mount in self.node["fileSystems"].values():
            target = mount["mountPoint"]
            if mount["fsType"] == "9p" and (path == target or path.startswith(target + "/")):
                root = self.share_roots.get(mount["device"])
                if root is not None:
                    return root, os.path.relpath(path, target)
        return self.tmpfs, path

    def read(self, path: str) -> bytes | None:
        where, key = self.store(path)
        if isinstance(where, Path):
            return (where / key).read_bytes() if (where / key).is_file() else None
        entry = where.get(key)
        return None if entry is None else entry[0]

    def exists(self, path: str) -> bool:
        where, key = self.store(path)
        if isinstance(where, Path):
            return (where / key).exists()
        return key in where or any(k.startswith(key.rstrip("/") + "/") for k in where)

    def write(self, path: str, data: bytes, owner: str = "0:0 644") -> None:
        where, key = self.store(path)
        if isinstance(where, Path):
            (where / key).parent.mkdir(parents=True, exist_ok=True)
            (where / key).write_bytes(data)
        else:
            where[key] = (data, owner)

    # --- the commands the boot test sends ------------------------------------------------------------
    def run(self, command: str) -> tuple[int, str]:
        if command.startswith(SSH_PREFIX):
            return self.ssh(command[len(SSH_PREFIX):])
        if command.startswith("ssh-keyscan -t ed25519 localhost"):
            return 0, self.host_keys[self.node["openssh"]["hostKeys"][0]] + "\n"
        if command == "systemctl show -P ConditionResult zvm-netbird-enrol.service":
            return 0, ("yes" if self.exists(self.node["enrolCondition"]) else "no") + "\n"
        if command == "hostname":
            return 0, self.hostname + "\n"
        if command == "id -nG zvm":
            user = self.node["zvmUser"]
            return 0, " ".join([user["group"], *user["extraGroups"]]) + "\n"
        if command in ("command -v sudo", "test -e /run/wrappers/bin/sudo"):
            return (0, "/run/wrappers/bin/sudo\n") if self.node["sudo"] else (1, "")
        words = shlex.split(command)
        match words:
            case ["echo", text, ">", path]:
                self.write(path, text.encode() + b"\n")
                return 0, ""
            case ["test", "!", "-e", path]:
                return (1 if self.exists(path) else 0), ""
            case ["test", "-e", path]:
                return (0 if self.exists(path) else 1), ""
            case ["test", "-s", path]:
                return (0 if self.read(path) else 1), ""
            case ["cat", path]:
                data = self.read(path)
                return (1, "") if data is None else (0, data.decode())
            case ["stat", "-c", "%u:%g %a", path]:
                where, key = self.store(path)
                if isinstance(where, Path) or key not in where:
                    return 1, ""
                return 0, where[key][1] + "\n"
            case ["touch", *paths]:
                for path in paths:
                    self.write(path, self.read(path) or b"")
                return 0, ""
            case ["mkdir", "-p", _]:
                return 0, ""
            case ["chmod", mode, path]:
                data = self.read(path)
                if data is None:
                    return 1, f"chmod: cannot access '{path}': No such file or directory\n"
                self.write(path, data, owner=f"0:0 {mode}")
                return 0, ""
            case ["cp", "-r", source, target]:
                data = self.read(source)
                if data is None:
                    return 1, f"cp: cannot stat '{source}': No such file or directory\n"
                self.write(target, data)
                return 0, ""
        raise StandInError(f"the stand-in VM does not know the command {command!r}")

    def ssh(self, rest: str) -> tuple[int, str]:
        settings = self.node["openssh"]["settings"]
        if not self.node["openssh"]["enable"]:
            return 255, "ssh: connect to host localhost port 22: Connection refused\n"
        if "-o PubkeyAuthentication=no" in rest:
            methods = [m for m, on in (("password", settings.get("PasswordAuthentication")),
                                       ("keyboard-interactive", settings.get("KbdInteractiveAuthentication")))
                       if on is not False]
            return 255, f"zvm@localhost: Permission denied ({','.join(['publickey', *methods])}).\n"
        match = re.fullmatch(r" -i (\S+) zvm@localhost id -un", rest)
        if match is None:
            raise StandInError(f"the stand-in VM does not know the ssh command {rest!r}")
        where, key = self.store(match.group(1))
        if isinstance(where, Path) or key not in where:
            return 255, f"Warning: Identity file {match.group(1)} not accessible\n"
        private, owner = where[key]
        if not owner.endswith(" 600"):
            return 255, "WARNING: UNPROTECTED PRIVATE KEY FILE!\n"  # ssh refuses a key others can read
        allowed = settings.get("AllowUsers")
        files = [f.replace("%u", "zvm").replace("%h", "/home/zvm") for f in self.node["openssh"]["authorizedKeysFiles"]]
        public = (public_key_of(private) or b"").split()[:2]  # type and blob, as sshd compares them
        if (allowed is None or "zvm" in allowed) and any(public and _lists_key(self.read(f) or b"", public)
                                                         for f in files):
            return 0, "zvm\n"
        return 255, "zvm@localhost: Permission denied (publickey).\n"


def _lists_key(authorized_keys: bytes, public: list[bytes]) -> bool:
    """An authorized_keys line (options allowed before it) holds the key type and blob of `public`."""
    for line in authorized_keys.splitlines():
        words = line.split()
        if any(words[i:i + 2] == public for i in range(len(words))):
            return True
    return False


class Machine:
    """The driver's machine handle, with the real methods' names and signatures; records every call."""

    def __init__(self, name: str, node: dict, disks: dict[str, Disk], tmp_dir: Path) -> None:
        self.name, self.node, self.disks = name, node, disks
        self.log: list[tuple[str, str]] = []
        self.state_dir = tmp_dir / f"vm-state-{name}"
        self.shared_dir = tmp_dir / "shared-xchg"  # as BaseMachine.__init__
        self.out_dir = tmp_dir / "out"
        for d in (self.state_dir, self.shared_dir, self.out_dir):
            d.mkdir(mode=0o700, exist_ok=True)
        self.guest: Guest | None = None
        self.booted = False

    def share_roots(self) -> dict[str, Path]:
        """Each 9p tag's host directory, its `source` expanded as the start script's shell would."""
        env = {"TMPDIR": str(self.state_dir), "SHARED_DIR": str(self.shared_dir)}  # build_environment
        roots = {}
        for tag, share in self.node["sharedDirectories"].items():
            source = share["source"].replace('"', "")
            source = re.sub(r"\$\{SHARED_DIR:-[^}]*\}", env["SHARED_DIR"], source).replace("$TMPDIR", env["TMPDIR"])
            roots[tag] = Path(source)
            roots[tag].mkdir(parents=True, exist_ok=True)
        return roots

    def start(self, allow_reboot: bool = False) -> None:
        self.log.append(("start", os.environ.get("NIX_DISK_IMAGE", "")))
        if self.booted:
            return
        disk = self.disks[os.environ["NIX_DISK_IMAGE"]]
        self.guest = Guest(self.node, disk, self.share_roots())
        self.booted = True

    def shutdown(self) -> None:
        self.log.append(("shutdown", ""))
        self.booted, self.guest = False, None

    def execute(self, command: str, check_return: bool = True, check_output: bool = True,
                timeout: int | None = 900) -> tuple[int, str]:
        if not self.booted or self.guest is None:
            raise StandInError(f"{command!r} sent to a machine that is not running")
        self.log.append(("execute", command))
        return self.guest.run(command)

    def succeed(self, *commands: str, timeout: int | None = None) -> str:
        output = ""
        for command in commands:
            status, out = self.execute(command, timeout=timeout)
            if status != 0:
                raise RequestedAssertionFailed(f"command `{command}` failed (exit code {status}): {out}")
            output += out
        return output

    def fail(self, *commands: str, timeout: int | None = None) -> str:
        output = ""
        for command in commands:
            status, out = self.execute(command, timeout=timeout)
            if status == 0:
                raise RequestedAssertionFailed(f"command `{command}` unexpectedly succeeded")
            output += out
        return output

    def wait_for_unit(self, unit: str, user: str | None = None, timeout: int = 900) -> None:
        if not self.booted:
            raise StandInError(f"waiting for {unit} on a machine that is not running")
        self.log.append(("wait_for_unit", unit))

    def copy_from_host(self, source: str, target: str) -> None:
        """The driver's body (019697db), file copies only."""
        host_src = Path(source)
        vm_target = Path(target)
        self.log.append(("copy_from_host", f"{source} -> {target}"))
        with tempfile.TemporaryDirectory(dir=self.shared_dir) as shared_td:
            shared_temp = Path(shared_td)
            host_intermediate = shared_temp / host_src.name
            vm_shared_temp = Path("/tmp/shared") / shared_temp.name
            vm_intermediate = vm_shared_temp / host_src.name
            self.succeed(make_command(["mkdir", "-p", vm_shared_temp]))
            shutil.copy(host_src, host_intermediate)
            self.succeed(make_command(["mkdir", "-p", vm_target.parent]))
            self.succeed(make_command(["cp", "-r", vm_intermediate, vm_target]))

    def copy_from_vm(self, source: str, target_dir: str = "") -> None:
        """The driver's body (copy_from_machine, 019697db), file copies only."""
        vm_src = Path(source)
        self.log.append(("copy_from_vm", source))
        with tempfile.TemporaryDirectory(dir=self.shared_dir) as shared_td:
            shared_temp = Path(shared_td)
            vm_shared_temp = Path("/tmp/shared") / shared_temp.name
            vm_intermediate = vm_shared_temp / vm_src.name
            intermediate = shared_temp / vm_src.name
            self.succeed(make_command(["mkdir", "-p", vm_shared_temp]))
            self.succeed(make_command(["cp", "-r", vm_src, vm_intermediate]))
            abs_target = self.out_dir / target_dir / vm_src.name
            abs_target.parent.mkdir(exist_ok=True, parents=True)
            shutil.copy(intermediate, abs_target)


@contextlib.contextmanager
def subtest_recorder(machine: Machine) -> Iterator:
    """The driver's `subtest(name)` global, recording which subtests ran to the end."""
    done: list[str] = []

    @contextlib.contextmanager
    def subtest(name: str) -> Iterator[None]:
        machine.log.append(("subtest", name))
        yield
        done.append(name)

    yield subtest, done


def run_test_script(script: str, node: dict, tmp_dir: Path, disks_from: dict[str, Disk],
                    ) -> tuple[Machine, list[str]]:
    """Runs SCRIPT as the driver would, with `zvm` and `subtest` as its globals. DISKS_FROM maps a backing
    file's path prefix to the disk an overlay of it holds; the script's `qemu-img create` of an overlay (the
    only program it runs on the host) is recorded instead of run. Returns the machine and the finished subtests."""
    disks: dict[str, Disk] = {}
    real_run = subprocess.run

    def qemu_img(args: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        match args:
            case [tool, "create", "-f", "qcow2", "-F", _, "-b", backing, overlay] if tool.endswith("/bin/qemu-img"):
                origin = next((d for prefix, d in disks_from.items() if backing.startswith(prefix)), None)
                if origin is None:
                    raise StandInError(f"an overlay of {backing}, which is no disk the test knows")
                disks[overlay] = origin
                Path(overlay).touch()
                return subprocess.CompletedProcess(args, 0)
        return real_run(args, **kwargs)  # type: ignore[call-overload]

    machine = Machine("zvm", node, disks, tmp_dir)
    with subtest_recorder(machine) as (subtest, done), mock.patch.object(subprocess, "run", qemu_img), \
            mock.patch.dict(os.environ), mock.patch.object(tempfile, "tempdir", str(tmp_dir)):
        scope = {"zvm": machine, "subtest": subtest, "__name__": "testScript"}
        try:
            exec(compile(script, "testScript", "exec"), scope)
        finally:
            scope.clear()  # the script's objects go as the driver's would at its end (a TemporaryDirectory too)
    return machine, done
