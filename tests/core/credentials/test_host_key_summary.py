"""host_key_summary: the host key as the person checks it, its known_hosts line naming the VM as it boots. The
rule for that name (the seeded hostname, else the built-in one) is applied here once, not by each caller."""

from __future__ import annotations

from provision.core.credentials.hostkeys import generate_host_key, host_key_summary
from provision.core.credentials.sshkeys import public_key_fingerprint


def test_the_known_hosts_line_names_the_seeded_hostname_else_the_built_in_one():
    public = generate_host_key().public_line
    blob = public.split()[1]
    assert host_key_summary(public, "zvm-alice") == {
        "type": "ssh-ed25519", "fingerprint": public_key_fingerprint(public),
        "known_hosts": f"zvm-alice ssh-ed25519 {blob}",
    }
    assert host_key_summary(public, None)["known_hosts"] == f"zvm ssh-ed25519 {blob}"  # no hostname seeded
    assert host_key_summary(None, "zvm-alice") is None  # no host key
