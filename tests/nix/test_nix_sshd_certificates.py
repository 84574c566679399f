"""The image's sshd, as the modules configure it, judged by the real sshd of this machine: the configuration
the module system evaluates (nix/tests/eval.nix over the stand-in of nixpkgs' sshd.nix) is written out as
nixpkgs writes sshd_config (its `settings` as "Key value" lines, yes/no for booleans, AllowUsers space-separated,
nulls dropped, then extraConfig), the /persist paths moved to a folder of this test's own, and then:
`sshd -t` accepts it with and without the certificate files on persist; an sshd started from it lets a plain
key in when there are none (as today), and, with them, a user certificate in and ssh trusts the host through
only an `@cert-authority` line."""

from __future__ import annotations

import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from provision.core.credentials.certificates import (
    HostCertRequest,
    cert_authority_line,
    load_host_ca,
    render_principals,
    sign_host_certificate,
)
from provision.core.layout import load_layout
from tests.nix.support import configured, guest_path
from tests.support.openssh import SSHD, free_port, keygen, private_folder, serving, sign_user, ssh

pytestmark = pytest.mark.nix

LAYOUT = load_layout()
MOUNT = LAYOUT.mount_point  # /persist


def _value(value: object) -> str:
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, list):  # the keys nixpkgs joins with spaces (AllowUsers...); it refuses lists elsewhere
        return " ".join(map(str, value))
    return str(value)


def rendered_sshd_config() -> str:
    """sshd_config as nixpkgs' sshd.nix writes it from the evaluated options."""
    ssh = configured()["openssh"]
    settings = "".join(f"{key} {_value(value)}\n" for key, value in sorted(ssh["settings"].items())
                       if value is not None)
    return settings + ssh["extraConfig"] + "\n"


def test_the_modules_point_sshd_at_the_certificate_files_on_persist() -> None:
    settings = configured()["openssh"]["settings"]
    assert settings["HostCertificate"] == guest_path(LAYOUT, LAYOUT.role("host-certificate").path)
    assert settings["TrustedUserCAKeys"] == guest_path(LAYOUT, LAYOUT.role("trusted-user-ca-keys").path)
    assert settings["AuthorizedPrincipalsFile"] == guest_path(LAYOUT, LAYOUT.role("authorized-principals").path)
    assert settings["HostCertificate"] == settings_host_key() + "-cert.pub"  # ssh-keygen -s's name


def settings_host_key() -> str:
    return configured()["openssh"]["hostKeys"][0]["path"]


@pytest.fixture
def persist(tmp_path: Path):
    """A folder standing for /persist (under /run: StrictModes refuses any file below /tmp), with the contract's
    directories; the config moved onto it."""
    if SSHD is None or not Path(SSHD).exists():
        pytest.fail("sshd is not installed: scripts/install.sh installs openssh-server")
    root = private_folder()
    try:
        for entry in LAYOUT.directories:
            path = root / entry.path.lstrip("/")
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(entry.mode)
        config = rendered_sshd_config().replace(f"{MOUNT}/", f"{root}/")
        assert MOUNT + "/" not in config
        (root / "sshd_config").write_text(config)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _put(root: Path, role: str, data: bytes) -> Path:
    entry = LAYOUT.role(role)
    path = root / entry.path.lstrip("/")
    path.write_bytes(data)
    path.chmod(entry.mode)
    return path


def _sshd_t(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SSHD, "-t", "-f", str(root / "sshd_config")], capture_output=True, text=True, timeout=60)


def _serve(root: Path):
    # zvm is no account here: the tests run as root, so root is let in, by key or certificate only.
    port = free_port()
    return serving(root / "sshd_config", root, port, f"ListenAddress=127.0.0.1:{port}", "AllowUsers=root",
                   "PermitRootLogin=prohibit-password", f"PidFile={root}/sshd.pid")


def test_without_certificate_files_sshd_accepts_the_config_and_a_key_logs_in_as_today(persist, tmp_path) -> None:
    host_key = keygen(persist / LAYOUT.role("host-key").path.lstrip("/"), "root@zvm")
    assert _sshd_t(persist).returncode == 0, _sshd_t(persist).stderr
    user = keygen(tmp_path / "user")
    keys = persist / "home" / "root" / ".ssh"  # AuthorizedKeysFile /persist/home/%u/.ssh/authorized_keys
    keys.mkdir(parents=True, mode=0o700)
    (keys / "authorized_keys").write_text(Path(f"{user}.pub").read_text())
    (keys / "authorized_keys").chmod(0o600)
    host_line = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    with _serve(persist) as server:
        result = ssh(server, tmp_path, known_hosts=f"zvm {host_line}", name="zvm", identity=user)
        assert result.returncode == 0, result.stderr + server.log.read_text()
        assert "Could not load host certificate" in server.log.read_text()  # said, and then ignored


def test_with_certificate_files_a_user_certificate_logs_in_and_the_host_is_trusted_by_its_ca(persist, tmp_path):
    host_key = keygen(persist / LAYOUT.role("host-key").path.lstrip("/"), "root@zvm")
    host_ca_file = keygen(tmp_path / "host_ca")
    ca = load_host_ca(host_ca_file.read_bytes(), "host CA")
    host_public = Path(f"{host_key}.pub").read_text().strip()
    cert = sign_host_certificate(HostCertRequest(ca, "corp.example"), host_public, hostname="vm1", key_id="vm1",
                                 serial=1, now=datetime.now(UTC))
    _put(persist, "host-certificate", (cert + "\n").encode())
    user_ca = keygen(tmp_path / "user_ca")
    _put(persist, "trusted-user-ca-keys", Path(f"{user_ca}.pub").read_bytes())
    _put(persist, "authorized-principals", render_principals(["zvm"]))
    assert _sshd_t(persist).returncode == 0, _sshd_t(persist).stderr
    person = keygen(tmp_path / "person")
    person_cert = sign_user(user_ca, person, principals="zvm")
    with _serve(persist) as server:
        result = ssh(server, tmp_path, known_hosts=cert_authority_line(ca.public_line, "vm1", "corp.example"),
                     name="vm1.corp.example", identity=person, certificate=person_cert)
        assert result.returncode == 0, result.stderr + server.log.read_text()
