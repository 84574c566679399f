"""A real OpenSSH sshd on 127.0.0.1, started by a test with its own config, port and host key, and real `ssh`
logins against it: the judge of which keys an authorized_keys file lets in (tests/sshd).

sshd reads the file the test writes through `AuthorizedKeysCommand /bin/cat FILE`: in OpenSSH 9.2 the command's
output goes through the very function that reads an AuthorizedKeysFile (auth2-pubkey.c
`user_key_command_allowed2` calls auth2-pubkeyfile.c `auth_check_authkeys_file`), line for line the same
rules. The file itself cannot be an AuthorizedKeysFile here: with StrictModes on (as on zvm), sshd refuses a
file below a world-writable folder, and every test's folder is below /tmp. StrictModes stays on all the same.
The file is read again at every login, so one sshd serves every file a test writes.

Keys: a pool made once per session with ssh-keygen (ed25519, ECDSA of each curve, RSA of 1024 and 2048 bits,
DSA, a certificate authority and certificates it signs for some of the keys).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

SSHD = "/usr/sbin/sshd"
SSH = shutil.which("ssh")
SSH_KEYGEN = shutil.which("ssh-keygen")
USER = "root"  # sshd needs a real local user; the suite runs as root


def available() -> str | None:
    """None when a real sshd can be started here; else why not."""
    if not os.path.exists(SSHD) or SSH is None or SSH_KEYGEN is None:
        return "needs openssh-server and openssh-client (scripts/install.sh installs them)"
    if os.geteuid() != 0:
        return "sshd must start as root to log anybody in"
    if not os.path.isdir("/run/sshd"):
        return "sshd's privilege separation folder /run/sshd is missing (the openssh-server package makes it)"
    return None


@dataclass(frozen=True)
class PoolKey:
    name: str
    private: Path
    public_line: str  # "type base64 comment", as ssh-keygen wrote it
    certificate: Path | None = None  # a certificate the pool's CA signed for this key (principal root)

    @property
    def blob_b64(self) -> str:
        return self.public_line.split()[1]

    @property
    def type_name(self) -> str:
        return self.public_line.split()[0]

    def certificate_line(self) -> str:
        assert self.certificate is not None
        return " ".join(self.certificate.read_text().split()[:2])


def _keygen(path: Path, kind: str, bits: int | None = None) -> None:
    args = [SSH_KEYGEN, "-q", "-t", kind, "-N", "", "-C", path.name, "-f", str(path)]
    if bits:
        args += ["-b", str(bits)]
    subprocess.run(args, check=True, capture_output=True)


def make_pool(folder: Path) -> tuple[list[PoolKey], PoolKey]:
    """The keys (some with a certificate) and the CA that signed the certificates."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = ([("ed25519", None)] * 8 + [("ecdsa", 256), ("ecdsa", 384), ("ecdsa", 521), ("ecdsa", 256)]
             + [("rsa", 1024)] * 3 + [("rsa", 2048), ("dsa", None)])
    ca_path = folder / "ca"
    _keygen(ca_path, "ed25519")
    ca = PoolKey("ca", ca_path, (folder / "ca.pub").read_text().strip())
    keys = []
    for n, (kind, bits) in enumerate(specs):
        path = folder / f"k{n}-{kind}{bits or ''}"
        _keygen(path, kind, bits)
        certificate = None
        if n in (0, 1, 8):  # two ed25519 keys and an ECDSA key carry a certificate for root
            subprocess.run([SSH_KEYGEN, "-q", "-s", str(ca_path), "-I", f"cert{n}", "-n", USER,
                            str(path) + ".pub"], check=True, capture_output=True)
            # away from the key: ssh would offer KEY-cert.pub with KEY by itself, even in a plain login
            (folder / "certificates").mkdir(exist_ok=True)
            certificate = Path(str(path) + "-cert.pub").rename(folder / "certificates" / f"{path.name}-cert.pub")
        keys.append(PoolKey(path.name, path, Path(str(path) + ".pub").read_text().strip(), certificate))
    return keys, ca


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sshd:
    """One sshd -D on 127.0.0.1 with its own config; `logs_in` tries a real login."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.authorized_keys = folder / "authorized_keys"
        self.authorized_keys.write_bytes(b"")
        self.authorized_keys.chmod(0o600)
        host_key = folder / "host_ed25519"
        _keygen(host_key, "ed25519")
        self.port = _free_port()
        self.config = folder / "sshd_config"
        self.config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {host_key}", "PidFile none",
            "StrictModes yes", "PermitRootLogin prohibit-password", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PubkeyAuthentication yes", "UsePAM no", "UseDNS no",
            "AuthorizedKeysFile none", f"AuthorizedKeysCommand /bin/cat {self.authorized_keys}",
            f"AuthorizedKeysCommandUser {USER}", "MaxStartups 64:30:128", "MaxSessions 64", "LogLevel ERROR",
            "PermitUserEnvironment no", "",
        ]))
        self.log = folder / "sshd.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.config)], stdout=log,
                                            stderr=subprocess.STDOUT)
        # ready when it accepts a connection (not a timed wait: a refused connect is retried until it exits)
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port)):
                return

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait()

    def write(self, content: bytes) -> None:
        self.authorized_keys.write_bytes(content)

    def logs_in(self, key: PoolKey, *, certificate: Path | None = None) -> bool:
        """A real login with `key` (and `certificate`, when given): True when sshd let it in."""
        args = [SSH, "-F", "/dev/null", "-p", str(self.port), "-i", str(key.private), "-o", "IdentitiesOnly=yes",
                "-o", "IdentityAgent=none", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "PreferredAuthentications=publickey",
                "-o", "PubkeyAcceptedAlgorithms=+ssh-dss",  # offer DSA: sshd, not the client, decides on it
                "-o", "CertificateFile=" + (str(certificate) if certificate else "none"), f"{USER}@127.0.0.1", "true"]
        done = subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False)
        if done.returncode == 0:
            return True
        if "Permission denied" in done.stderr:
            return False
        raise RuntimeError(f"ssh failed other than by a refusal (exit {done.returncode}): {done.stderr}")

    def logins(self, tries: list[tuple[PoolKey, Path | None]]) -> list[bool]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda t: self.logs_in(t[0], certificate=t[1]), tries))


@contextlib.contextmanager
def running_sshd(folder: Path) -> Iterator[Sshd]:
    sshd = Sshd(folder)
    sshd.start()
    try:
        yield sshd
    finally:
        sshd.stop()
