"""provision.core.credentials.hostkeys: host keys and user key pairs, checked with cryptography and
ssh-keygen."""

from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from provision.host import writing as hostfiles
from provision.core.credentials import hostkeys, sshkeys
from provision.errors import UsageError
from provision.secret import Secret
from tests.support.keylines import SSH_KEYGEN, needs_ssh_keygen, openssh_line, ssh_keygen_l


# ------------------------------------------------------------------------------------------------
# host keys, key pairs, fingerprints


def test_generate_host_key():
    host = hostkeys.generate_host_key()
    pem = host.private_openssh.reveal()
    assert pem.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert pem.endswith("-----END OPENSSH PRIVATE KEY-----\n")
    assert "PRIVATE" not in repr(host) and pem not in repr(host)
    loaded = serialization.load_ssh_private_key(pem.encode(), password=None)  # unencrypted, as sshd needs
    assert host.public_line == openssh_line(loaded, "root@zvm")
    assert host.fingerprint == sshkeys.public_key_fingerprint(host.public_line)
    assert hostkeys.generate_host_key("root@other").public_line.endswith(" root@other")
    assert hostkeys.generate_host_key().public_line != host.public_line


@needs_ssh_keygen
def test_host_key_agrees_with_ssh_keygen(tmp_path):
    host = hostkeys.generate_host_key()
    key_file = tmp_path / "ssh_host_ed25519_key"
    hostfiles.write_key_pair(key_file, host.private_openssh.reveal().encode(), host.public_line)
    derived = subprocess.run(
        [SSH_KEYGEN, "-y", "-f", str(key_file)], capture_output=True, text=True, check=True
    )
    assert derived.stdout.split()[:2] == host.public_line.split()[:2]
    assert ssh_keygen_l(tmp_path, host.public_line + "\n") == [f"256 {host.fingerprint} root@zvm (ED25519)"]


def test_generate_user_keypair_unencrypted():
    private, line = hostkeys.generate_user_keypair(comment="zvm@laptop")
    key = serialization.load_ssh_private_key(private, password=None)
    assert line == openssh_line(key, "zvm@laptop")
    assert hostkeys.generate_user_keypair(comment="x", passphrase=Secret(""))[0].startswith(b"-----BEGIN OPENSSH")
    with pytest.raises(UsageError, match="comment"):
        hostkeys.generate_user_keypair(comment="bad\ncomment")


def test_generate_user_keypair_encrypted():
    private, line = hostkeys.generate_user_keypair(comment="me", passphrase=Secret("s3cret pass"))
    with pytest.raises(TypeError):
        serialization.load_ssh_private_key(private, password=None)
    key = serialization.load_ssh_private_key(private, password=b"s3cret pass")
    assert line == openssh_line(key, "me")
