"""Real OpenSSH as the judge: an sshd started on 127.0.0.1 with a config of its own (StrictModes yes) from
files a test gives, and the ssh client run against it with only the known_hosts the test writes.

StrictModes checks every directory from a principals or authorized_keys file up to /: none may be group- or
world-writable, so sshd's files live in a folder of this run's own under /run (root's, 0755), never below
/tmp (1777); the folder is removed when the server stops. Readiness is sshd's own "Server listening" line,
read from its log on stderr (no sleeping)."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
LISTENING_TIMEOUT = 120  # a deadline against a wedged sshd, not a synchronisation


@dataclass(frozen=True)
class Server:
    port: int
    folder: Path  # root-owned, 0700; every file sshd reads is here
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def private_folder() -> Path:
    """A folder of this run's own whose every parent passes StrictModes."""
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation folder, as Debian's unit makes
    folder = Path(tempfile.mkdtemp(prefix="zvm-provision-test-sshd-", dir="/run"))
    folder.chmod(0o755)
    return folder


def sshd_config(folder: Path, port: int, *, host_key: Path, host_cert: Path | None, user_cas: Path | None,
                principals: Path | None, authorized_keys: Path | None) -> str:
    lines = [
        f"ListenAddress 127.0.0.1:{port}",
        f"HostKey {host_key}",
        *( [f"HostCertificate {host_cert}"] if host_cert else []),
        *( [f"TrustedUserCAKeys {user_cas}"] if user_cas else []),
        *( [f"AuthorizedPrincipalsFile {principals}"] if principals else []),
        f"AuthorizedKeysFile {authorized_keys or 'none'}",
        "StrictModes yes",
        "PermitRootLogin prohibit-password",  # the tests run as root: root logs in, by key or certificate only
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "AuthenticationMethods publickey",
        "UsePAM no",
        f"PidFile {folder / 'sshd.pid'}",
        "LogLevel VERBOSE",
    ]
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def running_sshd(files: dict[str, bytes], *, host_cert: bool = True, user_cas: bool = True,
                 principals: bool = True, authorized_keys: bytes | None = None) -> Iterator[Server]:
    """sshd -D serving `files` ("host_key", "host_cert", "user_cas", "principals": their bytes as the image
    holds them), each written root-owned with the contract's modes."""
    folder = private_folder()
    try:
        def put(name: str, data: bytes, mode: int) -> Path:
            path = folder / name
            path.write_bytes(data)
            path.chmod(mode)
            return path

        key = put("ssh_host_ed25519_key", files["host_key"], 0o600)
        cert = put("ssh_host_ed25519_key-cert.pub", files["host_cert"], 0o644) if host_cert else None
        cas = put("trusted_user_ca_keys", files["user_cas"], 0o644) if user_cas else None
        names = put("authorized_principals", files["principals"], 0o644) if principals else None
        keys = put("authorized_keys", authorized_keys, 0o600) if authorized_keys is not None else None
        port = free_port()
        config = put("sshd_config", sshd_config(folder, port, host_key=key, host_cert=cert, user_cas=cas,
                                                principals=names, authorized_keys=keys).encode(), 0o644)
        with serving(config, folder, port) as server:
            yield server
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def serving(config: Path, folder: Path, port: int, *options: str) -> Iterator[Server]:
    """`sshd -D -e -f CONFIG -o OPTION...` until the block ends; ready once it says it listens."""
    proc = None
    try:
        log = folder / "sshd.log"
        args = [SSHD, "-D", "-e", "-f", str(config)]
        for option in options:
            args += ["-o", option]
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        seen = []
        assert proc.stderr is not None
        for line in proc.stderr:  # blocks until sshd says it listens, or exits
            seen.append(line)
            if "Server listening on" in line:
                break
        else:
            raise AssertionError(f"sshd did not start: {''.join(seen)}")
        sink = log.open("w")
        sink.writelines(seen)
        sink.flush()
        drain = threading.Thread(target=_copy_lines, args=(proc.stderr, sink), daemon=True)
        drain.start()  # the rest of the log, so that sshd never blocks on a full pipe
        yield Server(port, folder, log)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=60)


def _copy_lines(source, sink) -> None:
    with sink:
        for line in source:
            sink.write(line)
            sink.flush()


def ssh(server: Server, work: Path, *, known_hosts: str, name: str, identity: Path,
        certificate: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`ssh -o StrictHostKeyChecking=yes` as root to the server, checking its host key as `name` against only
    `known_hosts`, offering `identity` (and its `certificate`)."""
    known = work / f"known_hosts-{name}"
    known.write_text(known_hosts + "\n")
    args = [
        "ssh", "-F", "none", "-p", str(server.port),
        "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes",
        "-o", f"UserKnownHostsFile={known}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", f"HostKeyAlias={name}", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
        "-o", "ConnectTimeout=60", "-i", str(identity),
    ]
    if certificate is not None:
        args += ["-o", f"CertificateFile={certificate}"]
    return subprocess.run([*args, "root@127.0.0.1", "echo", "in-as-$(id -un)"], capture_output=True, text=True,
                          timeout=180, stdin=subprocess.DEVNULL)


def keygen(path: Path, comment: str = "") -> Path:
    """A fresh ed25519 key pair at `path` (and `path`.pub), by ssh-keygen."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


def sign_user(ca: Path, key: Path, *, principals: str, validity: str = "+1h", key_id: str = "test") -> Path:
    """`ssh-keygen -s CA` a user certificate for `key`.pub; returns the -cert.pub path."""
    subprocess.run(["ssh-keygen", "-q", "-s", str(ca), "-I", key_id, "-n", principals, "-V", validity,
                    f"{key}.pub"], check=True, capture_output=True)
    return Path(f"{key}-cert.pub")


def list_certificate(path: Path) -> str:
    """ssh-keygen -L's description of a certificate file."""
    return subprocess.run(["ssh-keygen", "-L", "-f", str(path)], check=True, capture_output=True, text=True).stdout
