"""Key material for the credentials tests, generated at run time."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from tests.support.keylines import openssh_line


@pytest.fixture(scope="session")
def keys():
    """One private key per accepted classic type (RSA generation is the slow part: done once). Only read."""
    return {
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "rsa2048": rsa.generate_private_key(65537, 2048),
        "rsa3072": rsa.generate_private_key(65537, 3072),
    }


@pytest.fixture(scope="session")
def lines(keys):
    return {name: openssh_line(key, f"{name}@test") for name, key in keys.items()}
