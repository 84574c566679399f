"""The certificate flags' refusals, through the command's main(): exit 2, one line (and a hint), nothing of a key
shown, before any image is opened (the image file given here is not even a disk: it is never read)."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.command import in_process
from tests.support.files import sha256
from tests.support.openssh import keygen


@pytest.fixture
def setup(tmp_path):
    image = tmp_path / "disk.qcow2"
    image.write_bytes(b"not read: the flags are refused first")
    ca = keygen(tmp_path / "host_ca")
    ca.chmod(0o600)
    return {"image": image, "ca": ca, "digest": sha256(image), "tmp": tmp_path}


def refused(setup, *args: str) -> str:
    result = in_process(str(setup["image"]), "--no-password", *args)
    assert result.returncode == 2, result
    assert result.stdout == ""
    assert sha256(setup["image"]) == setup["digest"]
    private = setup["ca"].read_text()
    body = "".join(private.splitlines()[1:-1])
    assert body[-40:] not in result.stderr  # the private part of the CA key is never shown
    return result.stderr


def test_a_host_ca_others_can_read_is_refused_with_the_chmod(setup):
    setup["ca"].chmod(0o644)
    said = refused(setup, "--host-ca", str(setup["ca"]))
    assert "host CA key file" in said and "chmod go-rwx" in said


def test_a_public_key_or_an_encrypted_key_is_no_host_ca(setup):
    public = setup["tmp"] / "host_ca.pub"
    public.chmod(0o600)  # else refused first for its mode, as any file given as a secret
    said = refused(setup, "--host-ca", str(public))
    assert "not an OpenSSH private key" in said
    locked = keygen(setup["tmp"] / "locked")
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "a passphrase", "-f", str(locked)], check=True)
    assert "is encrypted" in refused(setup, "--host-ca", str(locked))


@pytest.mark.parametrize(("args", "words"), [
    (("--host-domain", "corp.example"), "give the host CA with --host-ca"),
    (("--host-cert-validity", "52w"), "give the host CA with --host-ca"),
    (("--host-cert-validity", "1y"), "--host-cert-validity '1y' is refused"),
    (("--host-domain", "*.corp.example"), "--host-domain '*.corp.example' is refused"),
    (("--user-principal", "ada,bob"), "--user-principal 'ada,bob' is refused"),
])
def test_bad_certificate_values_are_refused(setup, args, words):
    extra = ("--host-ca", str(setup["ca"])) if "1y" in args or "*.corp.example" in args else ()
    assert words in refused(setup, *extra, *args)


def test_a_private_key_given_as_a_user_ca_is_refused_without_showing_it(setup):
    said = refused(setup, "--user-ca", str(setup["ca"]))
    assert "user CA" in said or "private key" in said
