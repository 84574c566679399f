"""New keys, made with cryptography (imported lazily): the image's SSH host key, and a key pair for the person
(the wizard offers to make one). Nothing is written here: host.writing saves a key pair, the plan carries a host
key into the image.
"""

from __future__ import annotations

from dataclasses import dataclass

from provision.core.credentials.identity import booted_name
from provision.core.credentials.sshkeys import known_hosts_line, public_key_fingerprint
from provision.errors import UsageError
from provision.secret import Secret

def _check_comment(comment: str) -> None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in comment):
        raise UsageError("the key comment must be one line without control characters")


def _new_ed25519(comment: str, encryption) -> tuple[bytes, str]:
    """(OpenSSH private key PEM, public line with comment) of a fresh ed25519 key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _check_comment(comment)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = public.decode("ascii") + (f" {comment}" if comment else "")
    return private, line


@dataclass(frozen=True)
class HostKey:
    private_openssh: Secret  # OpenSSH PEM, unencrypted (sshd cannot read an encrypted host key)
    public_line: str  # "ssh-ed25519 AAAA... root@zvm"

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(self.public_line)


def generate_host_key(comment: str = "root@zvm") -> HostKey:
    from cryptography.hazmat.primitives.serialization import NoEncryption

    private, line = _new_ed25519(comment, NoEncryption())
    return HostKey(private_openssh=Secret(private.decode("ascii")), public_line=line)


def generate_user_keypair(*, comment: str, passphrase: Secret | None = None) -> tuple[bytes, str]:
    """A new ed25519 key pair (OpenSSH private key, encrypted if given a passphrase; public line)."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, NoEncryption

    secret = passphrase.reveal() if passphrase is not None else ""
    if "\x00" in secret:
        raise UsageError("the passphrase contains a NUL character")
    # OpenSSH's bcrypt-pbkdf encryption needs the bcrypt package (a declared dependency).
    encryption = BestAvailableEncryption(secret.encode("utf-8")) if secret else NoEncryption()
    return _new_ed25519(comment, encryption)


def host_key_summary(public_line: str | None, hostname: str | None) -> dict[str, str] | None:
    """The host key as the person checks it on first connect: type, fingerprint and a known_hosts line naming
    the VM as it boots (`hostname`, the seeded one; None: the built-in name)."""
    if public_line is None:
        return None
    return {
        "type": public_line.split()[0],
        "fingerprint": public_key_fingerprint(public_line),
        "known_hosts": known_hosts_line(booted_name(hostname), public_line),
    }
