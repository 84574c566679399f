"""Host certificates and user CAs in core: signing (judged by ssh-keygen -L), the flags' values, the plan that
writes the files, the lock-out rule that counts a trusted user CA, and what inspect says and --check fails or
warns on. The in-memory filesystem stands for persist; ssh-keygen is the judge of what is signed (the real
sshd and ssh judge the seeded files in tests/commands/seed/test_certificates.py)."""

from __future__ import annotations

import base64
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from provision.core.apply import apply_plan, verify_plan
from provision.core.certinspection import certificates_report
from provision.core.contractcheck import check_image_contract
from provision.core.credentials.certificates import (
    HostCertRequest,
    load_host_ca,
    parse_certificate,
    parse_validity,
    validate_domain,
    validate_principal,
)
from provision.core.credentials.hostkeys import generate_host_key
from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.core.disk import ImageInfo, Partition
from provision.core.fleetkeys import matching_keys
from provision.core.inspection import build_report
from provision.core.keyremoval import parse_selector
from provision.core.layout import load_layout
from provision.core.plan import FreshMaterial, build_plan
from provision.core.request import PasswordChoice, SeedRequest
from provision.core.state import read_state
from provision.core.walk import walk_persist
from provision.errors import UsageError
from tests.support.fakes import MemoryFS
from tests.support.keyfactory import private_pem, public_line

LAYOUT = load_layout()
NOW = datetime(2026, 11, 29, 14, 2, 11, tzinfo=UTC)
CA = load_host_ca(private_pem().encode(), "host CA")
CERT_PATH = LAYOUT.role("host-certificate").path


def fresh(serial: int = 4242, now: datetime = NOW) -> FreshMaterial:
    return FreshMaterial(host_key=generate_host_key(), machine_id="0123456789abcdef0123456789abcdef", now=now,
                         tool_version="0.1.0", cert_serial=serial)


def user_ca(comment: str = "user-ca@it"):
    return tuple(parse_authorized_keys(public_line(comment=comment) + "\n", "test"))


def seed(fs: MemoryFS, request: SeedRequest, material: FreshMaterial | None = None):
    plan = build_plan(request, read_state(fs, LAYOUT), LAYOUT, material or fresh())
    apply_plan(plan, fs)
    verify_plan(plan, fs)
    return plan


def signed(fs: MemoryFS, validity: int | None = 52 * 7 * 86400, material: FreshMaterial | None = None, **more):
    request = SeedRequest(password=PasswordChoice.locked(), keys=tuple(parse_authorized_keys(public_line() + "\n", "t")),
                          hostname="vm-ada", host_cert=HostCertRequest(CA, "corp.example", validity), **more)
    return seed(fs, request, material)


def report(fs: MemoryFS, now: datetime | None):
    info = ImageInfo(Path("disk.qcow2"), "qcow2", 1 << 30, 1 << 20, 3, None, False)
    return build_report(info, [Partition("/dev/sda3", "persist", "ext4", 1 << 29)], read_state(fs, LAYOUT),
                        walk_persist(fs, LAYOUT), LAYOUT, persist_device="/dev/sda3", now=now)


def test_the_plan_signs_the_new_host_key_for_the_hostname_and_its_domain(tmp_path):
    fs = MemoryFS()
    plan = signed(fs)
    node = fs.nodes[CERT_PATH]
    assert (node.uid, node.gid, node.mode) == (0, 0, 0o644)
    (tmp_path / "cert.pub").write_bytes(node.data)
    described = subprocess.run(["ssh-keygen", "-L", "-f", str(tmp_path / "cert.pub")], capture_output=True,
                               text=True, check=True).stdout
    assert "host certificate" in described and "Serial: 4242" in described
    assert described.split("Principals:")[1].split("Critical Options:")[0].split() == ["vm-ada", "vm-ada.corp.example"]
    assert 'Key ID: "vm-ada 0123456789abcdef0123456789abcdef"' in described
    assert "Valid: from 2026-11-29T13:57:11 to 2027-11-28T14:02:11" in described  # 5 minutes back, 52 weeks on
    info = parse_certificate(node.data.decode())
    assert info.key_blob == base64.b64decode(plan.host_public_line.split()[1])
    assert plan.cert_authority == f"@cert-authority *.corp.example {' '.join(CA.public_line.split()[:2])}"


def test_forever_is_only_what_is_asked_for_and_validity_words_are_checked():
    assert parse_validity("52w") == 52 * 7 * 86400 and parse_validity("90d") == 90 * 86400
    assert parse_validity("12h") == 12 * 3600 and parse_validity("forever") is None
    for bad in ("0w", "52", "1y", "-1d", "", "52 w"):
        with pytest.raises(UsageError):
            parse_validity(bad)
    fs = MemoryFS()
    signed(fs, validity=None)
    assert parse_certificate(fs.nodes[CERT_PATH].data.decode()).valid_before is None


def test_domains_and_principals_are_checked():
    assert validate_domain("corp.example") == "corp.example"
    for bad in ("Corp.example", ".corp", "corp..example", "-x.example", "a b", "*.example"):
        with pytest.raises(UsageError):
            validate_domain(bad)
    assert validate_principal("ada@corp") == "ada@corp"
    for bad in ("", "a,b", "a b", "x\n"):
        with pytest.raises(UsageError):
            validate_principal(bad)


def test_an_encrypted_or_public_ca_key_is_refused_without_showing_it(tmp_path):
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(tmp_path / "ca")], check=True)
    with pytest.raises(UsageError, match="encrypted"):
        load_host_ca((tmp_path / "ca").read_bytes(), "host CA key file")
    with pytest.raises(UsageError, match="not an OpenSSH private key") as refused:
        load_host_ca((tmp_path / "ca.pub").read_bytes(), "host CA key file")
    assert (tmp_path / "ca.pub").read_text().split()[1] not in str(refused.value)


def test_a_trusted_user_ca_with_principals_is_a_way_in():
    fs = MemoryFS()
    seed(fs, SeedRequest(password=PasswordChoice.locked(), user_cas=user_ca()))  # no key, no password: a CA
    assert fs.nodes[LAYOUT.role("authorized-principals").path].data == b"zvm\n"
    assert fs.nodes[LAYOUT.role("trusted-user-ca-keys").path].data.startswith(b"ssh-ed25519 ")
    assert check_image_contract(report(fs, NOW)) == []
    # taking the CA away with nothing else left is refused, as taking out the last key is
    with pytest.raises(UsageError, match="no way in|nobody"):
        build_plan(SeedRequest(user_cas=()), read_state(fs, LAYOUT), LAYOUT, fresh())
    seed(fs, SeedRequest(user_principals=("ada", "vm-ada")))
    assert fs.nodes[LAYOUT.role("authorized-principals").path].data == b"ada\nvm-ada\n"


def test_inspect_shows_the_certificates_and_check_fails_an_expired_or_foreign_one_and_warns_near_expiry():
    fs = MemoryFS()
    signed(fs, user_cas=user_ca())
    certs = report(fs, NOW).certificates
    assert certs.host_certificate == "present" and certs.cert.serial == 4242
    assert certs.cert.ca_fingerprint == CA.fingerprint and certs.principals == ("zvm",)
    assert [ca.comment for ca in certs.user_cas] == ["user-ca@it"]
    assert check_image_contract(report(fs, NOW)) == [] and certs.warnings == ()
    near = report(fs, NOW + timedelta(weeks=50))
    assert check_image_contract(near) == [] and "within 30 days" in near.certificates.warnings[0]
    expired = check_image_contract(report(fs, NOW + timedelta(weeks=53)))
    assert len(expired) == 1 and expired[0].startswith(f"{CERT_PATH}: the host certificate: expired on 2027-11-28")
    # a new host key without a new certificate: the certificate is for another key
    seed(fs, SeedRequest(new_host_keys=True))
    assert check_image_contract(report(fs, NOW)) == [
        f"{CERT_PATH}: the host certificate: it does not certify the image's host key"]


def test_a_damaged_certificate_is_drift_not_a_crash():
    fs = MemoryFS()
    signed(fs)
    fs.nodes[CERT_PATH].data = b"ssh-ed25519-cert-v01@openssh.com AAAAnotbase64\n"
    assert report(fs, NOW).certificates.host_certificate == "invalid"
    assert check_image_contract(report(fs, NOW)) == [f"{CERT_PATH}: the host certificate: not an OpenSSH certificate"]


def test_find_key_finds_a_user_ca_by_fingerprint_or_comment():
    fs = MemoryFS()
    cas = user_ca("fleet-user-ca")
    signed(fs, user_cas=cas)
    found = report(fs, NOW)
    everything = (*found.authorized_keys, *found.certificates.user_cas)
    assert matching_keys(everything, [parse_selector(cas[0].fingerprint)]) == cas
    assert matching_keys(everything, [parse_selector("fleet-user-ca")]) == cas
    assert certificates_report(read_state(fs, LAYOUT), None).warnings == ()


def test_inspect_text_and_json_show_the_certificates():
    from provision.ui.render_inspect import render_check, report_to_json
    from tests.support.rendering import render_text

    fs = MemoryFS()
    signed(fs, user_cas=user_ca())
    near = report(fs, NOW + timedelta(weeks=50))
    text = render_text(near, width=200)
    assert f"signed by {CA.fingerprint}, serial 4242, for vm-ada, vm-ada.corp.example" in text
    assert "user-ca@it" in text and "within 30 days" in text
    data = report_to_json(near)["certificates"]
    assert data["host_certificate"]["serial"] == 4242 and data["principals"] == ["zvm"]
    assert data["host_certificate"]["valid_before"] == "2027-11-28T14:02:11+00:00"
    assert [ca["comment"] for ca in data["trusted_user_cas"]] == ["user-ca@it"]
    assert render_check([], near.certificates.warnings).splitlines()[1].startswith("WARNING: expires on 2027-11-28")
