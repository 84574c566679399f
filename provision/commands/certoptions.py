"""The certificate flags that seed, batch and keys share (--host-ca, --host-domain, --host-cert-validity,
--user-ca, --user-principal), and what they read: the host CA's private key (owner-only, never shown), the user
CA public keys, the principals. Everything is read and checked before an image is opened."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provision.core.credentials.certificates import (
    DEFAULT_VALIDITY,
    HostCertRequest,
    load_host_ca,
    parse_validity,
    validate_domain,
    validate_principal,
)
from provision.core.credentials.sshkeys import AuthorizedKey, merge_keys
from provision.errors import UsageError
from provision.host.reading import read_key_file, read_small_file

_MAX_CA_KEY_FILE = 64 * 1024


@dataclass(frozen=True)
class CertOptions:
    """The certificate flags as given (nothing read yet)."""

    host_ca: Path | None = None
    host_domain: str | None = None
    host_cert_validity: str | None = None
    user_cas: tuple[Path, ...] = ()
    user_principals: tuple[str, ...] = ()


@dataclass(frozen=True)
class CertFlags:
    """The certificate flags read: what a SeedRequest carries."""

    host_cert: HostCertRequest | None = None
    user_cas: tuple[AuthorizedKey, ...] | None = None
    user_principals: tuple[str, ...] | None = None


def read_cert_options(options: CertOptions) -> CertFlags:
    if options.host_ca is None and (options.host_domain is not None or options.host_cert_validity is not None):
        given = "--host-domain" if options.host_domain is not None else "--host-cert-validity"
        raise UsageError(f"{given} says how to sign the host key: give the host CA with --host-ca F")
    host_cert = None
    if options.host_ca is not None:
        domain = validate_domain(options.host_domain) if options.host_domain is not None else None
        validity = parse_validity(options.host_cert_validity or DEFAULT_VALIDITY)
        data = read_small_file(options.host_ca, _MAX_CA_KEY_FILE, "host CA key file", secret=True)
        ca = load_host_ca(data, f"host CA key file {options.host_ca}")
        host_cert = HostCertRequest(ca, domain, validity)
    user_cas = None
    if options.user_cas:
        found: list[AuthorizedKey] = []
        for path in options.user_cas:
            keys = read_key_file(path)
            if any(key.key_type.endswith("-cert-v01@openssh.com") for key in keys):
                raise UsageError(f"user CA file {path} holds a certificate; give the CA's public key (its .pub)")
            found = merge_keys(found, keys, replace=False)
        user_cas = tuple(found)
    principals = tuple(validate_principal(p) for p in options.user_principals) or None
    return CertFlags(host_cert, user_cas, principals)
