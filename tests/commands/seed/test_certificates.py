"""SSH certificates seeded into a real image through the real appliance, then judged by real OpenSSH: an sshd on
127.0.0.1 serves the host key and certificate the tool wrote (read back from the image), trusts the user CA and
principals it wrote; ssh, with only the hand-over's `@cert-authority` line in known_hosts, connects; certificates
for another name, expired ones and other CAs' are refused. One seeding launch and one read-back launch serve
every test here."""

from __future__ import annotations

import base64
import json
import subprocess
from datetime import UTC, datetime, timedelta

import pytest

from provision.core.credentials.certificates import HostCertRequest, load_host_ca, sign_host_certificate
from provision.core.layout import load_layout
from tests.support.command import zvm
from tests.support.files import copy_disk
from tests.support.openssh import keygen, list_certificate, running_sshd, sign_user, ssh
from tests.support.persist import read_back

pytestmark = pytest.mark.appliance

LAYOUT = load_layout()
HOSTNAME = "vm-ada"
DOMAIN = "corp.example"
FQDN = f"{HOSTNAME}.{DOMAIN}"


def _path(role: str) -> str:
    return LAYOUT.role(role).path


@pytest.fixture(scope="module")
def seeded(tmp_path_factory, sample_disk_template):
    work = tmp_path_factory.mktemp("certs")
    disk = work / "vm.qcow2"
    copy_disk(sample_disk_template, disk)
    host_ca = keygen(work / "host_ca", "host-ca@it")
    host_ca.chmod(0o600)
    user_ca = keygen(work / "user_ca", "user-ca@it")
    run = zvm(disk, "--no-password", "--user-ca", f"{user_ca}.pub", "--host-ca", host_ca, "--host-domain", DOMAIN,
              "--hostname", HOSTNAME, "--json")
    assert run.returncode == 0, run.stderr
    back = read_back([disk])[0]
    return {"work": work, "disk": disk, "run": run, "out": json.loads(run.stdout), "files": back["files"],
            "stats": back["stats"], "host_ca": host_ca, "user_ca": user_ca}


def _authority(seeded) -> str:
    return seeded["out"]["host_certificate"]["cert_authority"]


def _server_files(seeded, **replace: bytes) -> dict[str, bytes]:
    files = seeded["files"]
    found = {"host_key": files[_path("host-key")], "host_cert": files[_path("host-certificate")],
             "user_cas": files[_path("trusted-user-ca-keys")], "principals": files[_path("authorized-principals")]}
    return {**found, **replace}


def test_the_files_have_the_contract_owner_and_mode_and_the_hand_over_names_the_fleet(seeded):
    for role in ("host-certificate", "trusted-user-ca-keys", "authorized-principals"):
        entry, stat = LAYOUT.role(role), seeded["stats"][_path(role)]
        assert (stat.uid, stat.gid, stat.mode) == (entry.uid, entry.gid, entry.mode), role
    ca_public = (seeded["work"] / "host_ca.pub").read_text().split()
    assert _authority(seeded) == f"@cert-authority *.{DOMAIN} {ca_public[0]} {ca_public[1]}"
    assert seeded["files"][_path("authorized-principals")] == b"zvm\n"
    assert seeded["files"][_path("trusted-user-ca-keys")].split()[:2] == \
        (seeded["work"] / "user_ca.pub").read_bytes().split()[:2]


def test_ssh_keygen_reads_the_host_certificate(seeded, tmp_path):
    cert = tmp_path / "cert.pub"
    cert.write_bytes(seeded["files"][_path("host-certificate")])
    described = list_certificate(cert)
    assert "host certificate" in described
    assert f"Key ID: \"{HOSTNAME} " in described
    principals = described.split("Principals:")[1].split("Critical Options:")[0].split()
    assert principals == [HOSTNAME, FQDN]
    fingerprint = subprocess.run(["ssh-keygen", "-lf", str(seeded["work"] / "host_ca.pub")], capture_output=True,
                                 text=True, check=True).stdout.split()[1]
    assert f"Signing CA: ED25519 {fingerprint}" in described
    valid = described.split("Valid: from ")[1].split()
    start, end = (datetime.fromisoformat(valid[0]), datetime.fromisoformat(valid[2]))
    assert timedelta(weeks=51) < end - start < timedelta(weeks=53)  # the default, 52 weeks: not forever
    host_public = seeded["files"][_path("host-key-public")].split()[1]
    certified = subprocess.run(["ssh-keygen", "-lf", str(cert)], capture_output=True, text=True, check=True)
    plain = tmp_path / "host.pub"
    plain.write_bytes(b"ssh-ed25519 " + host_public + b"\n")
    assert certified.stdout.split()[1] == subprocess.run(["ssh-keygen", "-lf", str(plain)], capture_output=True,
                                                          text=True, check=True).stdout.split()[1]


def _secret_traces(private_key_file: bytes) -> list[bytes]:
    """The CA's secret (its ed25519 seed) as it would look inside any base64 text, at each of the three
    alignments base64 can put it in (an OpenSSH private key file, a log...)."""
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(private_key_file, password=None)
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    return [base64.b64encode(seed[j:j + 3 * ((len(seed) - j) // 3)]) for j in range(3)]


def test_no_private_ca_key_reaches_the_output_or_the_image(seeded):
    traces = _secret_traces(seeded["host_ca"].read_bytes())
    host_key = seeded["files"][_path("host-key")]
    assert any(t in b"".join(host_key.split()) for t in _secret_traces(host_key))  # the search finds a key
    places = {"stdout": seeded["run"].stdout.encode(), "stderr": seeded["run"].stderr.encode(),
              **{path: data for path, data in seeded["files"].items()},
              "the image file": seeded["disk"].read_bytes()}  # file contents are stored as written
    for where, data in places.items():
        flat = data.replace(b"\n", b"").replace(b"\r", b"")
        assert not any(t in flat for t in traces), where


@pytest.fixture(scope="module")
def people(seeded):
    work = seeded["work"]
    user = keygen(work / "ada", "ada@laptop")
    other_ca = keygen(work / "other_ca", "other-ca")
    return {"user": user, "other_ca": other_ca,
            "good": sign_user(seeded["user_ca"], keygen(work / "good", "good"), principals="zvm"),
            "wrong": sign_user(seeded["user_ca"], keygen(work / "wrong", "wrong"), principals="alice,root"),
            "expired": sign_user(seeded["user_ca"], keygen(work / "expired", "x"), principals="zvm",
                                 validity="20200101:20200102"),
            "foreign": sign_user(other_ca, keygen(work / "foreign", "f"), principals="zvm")}


def test_ssh_with_only_the_cert_authority_line_connects_and_a_user_certificate_logs_in(seeded, people, tmp_path):
    with running_sshd(_server_files(seeded)) as server:
        good = people["good"]
        result = ssh(server, tmp_path, known_hosts=_authority(seeded), name=FQDN,
                     identity=good.with_name("good"), certificate=good)
        assert result.returncode == 0, result.stderr + server.log.read_text()
        assert result.stdout.strip() == "in-as-root"


def test_ssh_refuses_the_host_certificate_for_another_name_an_expired_one_and_another_cas(seeded, people, tmp_path):
    good = people["good"]
    login = {"identity": good.with_name("good"), "certificate": good}
    with running_sshd(_server_files(seeded)) as server:
        other_name = ssh(server, tmp_path, known_hosts=_authority(seeded), name=f"vm-bob.{DOMAIN}", **login)
        assert other_name.returncode == 255
        assert "Host key verification failed" in other_name.stderr
        other_ca = (people["other_ca"].with_suffix(".pub")).read_text().split()
        foreign = ssh(server, tmp_path, known_hosts=f"@cert-authority *.{DOMAIN} {other_ca[0]} {other_ca[1]}",
                      name=FQDN, **login)
        assert foreign.returncode == 255 and "Host key verification failed" in foreign.stderr
    # The seeded host key, certified by the same CA for the same names, but a year ago for a week.
    ca = load_host_ca(seeded["host_ca"].read_bytes(), "host CA")
    host_public = seeded["files"][_path("host-key-public")].decode().strip()
    expired = sign_host_certificate(HostCertRequest(ca, DOMAIN, 7 * 86400), host_public, hostname=HOSTNAME,
                                    key_id="old", serial=7, now=datetime.now(UTC) - timedelta(days=365))
    with running_sshd(_server_files(seeded, host_cert=(expired + "\n").encode())) as server:
        result = ssh(server, tmp_path, known_hosts=_authority(seeded), name=FQDN, **login)
        assert result.returncode == 255 and "Host key verification failed" in result.stderr


def test_sshd_refuses_a_wrong_principal_an_expired_user_certificate_and_another_ca(seeded, people, tmp_path):
    with running_sshd(_server_files(seeded)) as server:
        for name in ("wrong", "expired", "foreign"):
            cert = people[name]
            result = ssh(server, tmp_path, known_hosts=_authority(seeded), name=FQDN,
                         identity=cert.with_name(name), certificate=cert)
            assert result.returncode == 255, name
            assert "Permission denied" in result.stderr, (name, result.stderr)
        # ...and the key alone, with no authorized_keys entry, is no way in either
        result = ssh(server, tmp_path, known_hosts=_authority(seeded), name=FQDN, identity=people["user"])
        assert result.returncode == 255 and "Permission denied" in result.stderr
