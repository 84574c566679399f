"""Authorized-keys lines built from key objects, byte by byte where cryptography cannot make them
(security-key types, a compressed ECDSA point), and `ssh-keygen -lf` to compare with. For a ready key line
of a given kind, tests/support/keyfactory.py is shorter."""

from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from provision.core.credentials import sshkeys

SSH_KEYGEN = shutil.which("ssh-keygen")
needs_ssh_keygen = pytest.mark.skipif(
    SSH_KEYGEN is None, reason="ssh-keygen not installed (apt-get install openssh-client)"
)


def ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def openssh_line(key, comment: str = "") -> str:
    """`key`'s public half as an authorized_keys line (cryptography's OpenSSH encoding)."""
    openssh = serialization.Encoding.OpenSSH
    line = key.public_key().public_bytes(openssh, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}" if comment else line


def sk_ed25519_line(comment: str = "me@fido", *, pk: bytes | None = None, app: bytes = b"ssh:") -> str:
    pk = os.urandom(32) if pk is None else pk
    blob = ssh_string(sshkeys._SK_ED25519.encode()) + ssh_string(pk) + ssh_string(app)
    return f"{sshkeys._SK_ED25519} {b64(blob)} {comment}".rstrip()


def sk_ecdsa_line(comment: str = "you@fido", *, point: bytes | None = None, app: bytes = b"ssh:") -> str:
    if point is None:
        point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    blob = (ssh_string(sshkeys._SK_ECDSA.encode()) + ssh_string(b"nistp256") + ssh_string(point)
            + ssh_string(app))
    return f"{sshkeys._SK_ECDSA} {b64(blob)} {comment}".rstrip()


def compressed_point_line(key, comment: str = "p256@test") -> str:
    """An ECDSA key line whose point is in compressed form (0x02/0x03 and x alone): sshd refuses it."""
    name = b"ecdsa-sha2-nistp256"
    compressed = serialization.PublicFormat.CompressedPoint
    point = key.public_key().public_bytes(serialization.Encoding.X962, compressed)
    blob = ssh_string(name) + ssh_string(b"nistp256") + ssh_string(point)
    return f"{name.decode()} {b64(blob)} {comment}"


def ssh_keygen_l(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "keys"
    f.write_text(text)
    out = subprocess.run([SSH_KEYGEN, "-lf", str(f)], capture_output=True, text=True, check=True).stdout
    return out.splitlines()
