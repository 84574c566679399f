"""What seed's hand-over says of a signed host certificate: the VM's own known_hosts line, and the one
`@cert-authority` line for every VM the CA signs (text and JSON)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from provision.commands.seed.apply import SeedOutcome, fresh_material
from provision.core.credentials.certificates import HostCertRequest, load_host_ca
from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.core.layout import load_layout
from provision.core.plan import build_plan
from provision.core.request import PasswordChoice, SeedRequest
from provision.core.state import ImageState
from provision.ui import render
from tests.support.keyfactory import private_pem, public_line


def outcome(domain: str | None) -> tuple[SeedOutcome, str]:
    ca = load_host_ca(private_pem().encode(), "host CA")
    request = SeedRequest(password=PasswordChoice.locked(), hostname="vm-ada",
                          keys=tuple(parse_authorized_keys(public_line() + "\n", "own.pub")),
                          host_cert=HostCertRequest(ca, domain))
    plan = build_plan(request, ImageState(stats={}), load_layout(), fresh_material())
    info = SimpleNamespace(path=Path("/images/disk.qcow2"), format="qcow2")
    return SeedOutcome(info, plan, applied=True), " ".join(ca.public_line.split()[:2])


def test_the_hand_over_gives_the_fleet_line_beside_the_vms_own():
    done, ca = outcome("corp.example")
    summary = render.render_summary(done).splitlines()
    own = summary.index("Add this to ~/.ssh/known_hosts (replace 'vm-ada' with the VM's address):")
    assert summary[own + 1].startswith("  vm-ada ssh-ed25519 ")
    assert summary[own + 3] == f"  @cert-authority *.corp.example {ca}"
    data = render.outcome_to_json(done, dry_run=False)["host_certificate"]
    assert data["cert_authority"] == f"@cert-authority *.corp.example {ca}"
    assert data["certificate"].startswith("ssh-ed25519-cert-v01@openssh.com ")
    assert fresh_material().cert_serial != fresh_material().cert_serial  # random, per seeding


def test_without_a_domain_the_line_names_the_vm():
    done, ca = outcome(None)
    assert f"  @cert-authority vm-ada {ca}" in render.render_summary(done).splitlines()
