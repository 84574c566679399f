"""Credentials as pure values: passwords, SSH public keys, new host keys and key pairs, Netbird, the machine-id."""
