"""OpenSSH certificates, with cryptography (imported lazily): a host certificate signed by the person's host CA,
the `@cert-authority` known_hosts line for a fleet, what a certificate says (inspect), the trusted user CA keys
and authorized principals files, and whether a trusted user CA is a way in (the access model asks).

Nothing is read or written here: host.reading reads the CA key file (owner-only), the plan carries the
certificate into the image. The CA private key travels as a Secret and never reaches a message.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from provision.core.credentials.sshkeys import AuthorizedKey, public_key_fingerprint
from provision.errors import UsageError
from provision.secret import Secret

FOREVER = "forever"
DEFAULT_VALIDITY = "52w"
DEFAULT_PRINCIPALS = ("zvm",)
EXPIRY_WARNING = timedelta(days=30)
# A certificate is valid from a little before it was signed: a VM whose clock is slightly behind accepts it.
BACKDATE = timedelta(minutes=5)
_FOREVER_SECONDS = 0xFFFF_FFFF_FFFF_FFFF  # OpenSSH's "forever" (valid_before)
_VALIDITY_RE = re.compile(r"^([1-9][0-9]{0,5})([hdw])$")
_UNIT_SECONDS = {"h": 3600, "d": 86400, "w": 7 * 86400}
_PRINCIPAL_RE = re.compile(r"^[A-Za-z0-9._@+-]{1,255}$")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


@dataclass(frozen=True)
class HostCA:
    """A host CA: its private key (OpenSSH file, unencrypted) and its public line."""

    private_openssh: Secret
    public_line: str  # "ssh-ed25519 AAAA..." (no comment)

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(self.public_line)


@dataclass(frozen=True)
class HostCertRequest:
    """Sign the VM's host key: with `ca`, for `hostname` and hostname.DOMAIN, valid for `validity` seconds
    (None: forever)."""

    ca: HostCA
    domain: str | None = None
    validity: int | None = 52 * 7 * 86400


@dataclass(frozen=True)
class CertInfo:
    """What an OpenSSH certificate says (ssh-keygen -L's fields)."""

    cert_type: str  # "host" or "user"
    key_type: str  # the certified key's type: "ssh-ed25519"
    key_blob: bytes  # the certified public key (type + key), as a public key line's base64 decodes
    key_id: str
    serial: int
    principals: tuple[str, ...]
    valid_after: datetime
    valid_before: datetime | None  # None: forever
    ca_fingerprint: str
    signature_ok: bool


def load_host_ca(data: bytes, what: str) -> HostCA:
    """A CA private key from an OpenSSH private key file's bytes. An encrypted key is refused (no passphrase is
    asked for): a message never names the key's content."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except TypeError:
        raise UsageError(f"{what} is encrypted; sign with an unencrypted copy kept owner-only",
                         hint="ssh-keygen -p -N '' -f COPY removes the passphrase of a copy") from None
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise UsageError(f"{what} is not an OpenSSH private key ({type(exc).__name__})",
                         hint="give the CA's private key file (ssh-keygen -t ed25519 -f host_ca), not its .pub") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise UsageError(f"{what}: a CA key must be ed25519, ECDSA or RSA")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                serialization.NoEncryption())
    return HostCA(Secret(private.decode("ascii")), public.decode("ascii"))


def parse_validity(text: str) -> int | None:
    """Seconds of `--host-cert-validity` ("52w", "90d", "12h"), or None for "forever" (asked for by name)."""
    if text == FOREVER:
        return None
    match = _VALIDITY_RE.fullmatch(text)
    if match is None:
        raise UsageError(f"--host-cert-validity {text!r} is refused: give a number and a unit, h, d or w "
                         f"(e.g. {DEFAULT_VALIDITY}, 90d), or '{FOREVER}'")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


def validate_domain(text: str) -> str:
    """A DNS domain for host principals: dot-separated lower-case labels, no leading or trailing dot."""
    labels = text.split(".")
    if len(text) > 253 or not all(_LABEL_RE.fullmatch(label) for label in labels):
        shown = text[:80].encode("unicode_escape").decode("ascii")
        raise UsageError(f"--host-domain {shown!r} is refused: give a DNS domain such as corp.example "
                         "(lower-case letters, digits and '-', labels separated by dots)")
    return text


def validate_principal(text: str) -> str:
    if not _PRINCIPAL_RE.fullmatch(text):
        shown = text[:80].encode("unicode_escape").decode("ascii")
        raise UsageError(f"--user-principal {shown!r} is refused: a principal is letters, digits and . _ @ + - "
                         "(no spaces or commas)")
    return text


def host_principals(hostname: str, domain: str | None) -> tuple[str, ...]:
    return (hostname, f"{hostname}.{domain}") if domain else (hostname,)


def sign_host_certificate(request: HostCertRequest, host_public_line: str, *, hostname: str, key_id: str,
                          serial: int, now: datetime) -> str:
    """The certificate line (`ssh-ed25519-cert-v01@openssh.com AAAA... KEY_ID`) of the host key, signed by the CA."""
    from cryptography.hazmat.primitives import serialization

    ca = serialization.load_ssh_private_key(request.ca.private_openssh.reveal().encode("ascii"), password=None)
    host = serialization.load_ssh_public_key(" ".join(host_public_line.split()[:2]).encode("ascii"))
    after = int((now - BACKDATE).timestamp())
    before = _FOREVER_SECONDS if request.validity is None else int(now.timestamp()) + request.validity
    builder = (
        serialization.SSHCertificateBuilder()
        .public_key(host)  # type: ignore[arg-type]
        .serial(serial)
        .type(serialization.SSHCertificateType.HOST)
        .key_id(key_id.encode("utf-8"))
        .valid_principals([p.encode("ascii") for p in host_principals(hostname, request.domain)])
        .valid_after(after)
        .valid_before(before)
    )
    cert = builder.sign(ca)  # type: ignore[arg-type]
    return cert.public_bytes().decode("ascii") + f" {key_id}"


def cert_authority_line(ca_public_line: str, hostname: str, domain: str | None) -> str:
    """The known_hosts line that trusts every VM the CA signs: `@cert-authority *.DOMAIN TYPE BASE64` (without
    a domain, the one hostname)."""
    pattern = f"*.{domain}" if domain else hostname
    kind, data = ca_public_line.split()[:2]
    return f"@cert-authority {pattern} {kind} {data}"


def parse_certificate(line: str) -> CertInfo:
    """What a certificate line says; a line that is not an OpenSSH certificate raises ValueError."""
    import base64

    from cryptography.hazmat.primitives import serialization

    fields = line.split()
    if len(fields) < 2 or not fields[0].endswith("-cert-v01@openssh.com"):
        raise ValueError("not an OpenSSH certificate")
    cert = serialization.load_ssh_public_identity(f"{fields[0]} {fields[1]}".encode("ascii"))
    if not isinstance(cert, serialization.SSHCertificate):
        raise ValueError("not an OpenSSH certificate")
    try:
        cert.verify_cert_signature()
        signature_ok = True
    except Exception:  # a forged or damaged certificate: reported, not raised
        signature_ok = False
    key_line = cert.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    key_type, key_b64 = key_line.decode("ascii").split()[:2]
    ca_line = cert.signature_key().public_bytes(serialization.Encoding.OpenSSH,
                                                serialization.PublicFormat.OpenSSH).decode("ascii")
    return CertInfo(
        cert_type="host" if cert.type == serialization.SSHCertificateType.HOST else "user",
        key_type=key_type,
        key_blob=base64.b64decode(key_b64),
        key_id=cert.key_id.decode("utf-8", "replace"),
        serial=cert.serial,
        principals=tuple(p.decode("utf-8", "replace") for p in cert.valid_principals),
        valid_after=datetime.fromtimestamp(cert.valid_after, tz=UTC),
        valid_before=None if cert.valid_before >= _FOREVER_SECONDS else datetime.fromtimestamp(cert.valid_before, tz=UTC),
        ca_fingerprint=public_key_fingerprint(ca_line),
        signature_ok=signature_ok,
    )


def certificate_problems(info: CertInfo, host_blob: bytes | None,
                         now: datetime | None) -> tuple[list[str], list[str]]:
    """(failures, warnings) of a host certificate: not a host certificate, a bad signature, not this host key,
    expired or not yet valid fail; expiry within 30 days warns. `now` None: the dates are not judged."""
    failures, warnings = [], []
    if info.cert_type != "host":
        failures.append("a user certificate where the host certificate belongs")
    if not info.signature_ok:
        failures.append("its signature does not verify")
    if host_blob is None or info.key_blob != host_blob:
        failures.append("it does not certify the image's host key")
    if now is None:
        return failures, warnings
    if info.valid_before is not None and info.valid_before <= now:
        failures.append(f"expired on {info.valid_before:%Y-%m-%d %H:%M} UTC")
    elif info.valid_before is not None and info.valid_before - now <= EXPIRY_WARNING:
        warnings.append(f"expires on {info.valid_before:%Y-%m-%d %H:%M} UTC, within 30 days")
    if info.valid_after > now + BACKDATE:
        failures.append(f"not valid before {info.valid_after:%Y-%m-%d %H:%M} UTC")
    return failures, warnings


def render_user_ca_keys(cas: Sequence[AuthorizedKey]) -> bytes:
    """The trusted user CA keys file (sshd's TrustedUserCAKeys): one public key per line, options dropped."""
    return "".join(f"{ca.key_type} {_b64(ca.blob)}{f' {ca.comment}' if ca.comment else ''}\n" for ca in cas).encode()


def render_principals(principals: Sequence[str]) -> bytes:
    """The authorized principals file (sshd's AuthorizedPrincipalsFile): one principal per line."""
    return "".join(f"{p}\n" for p in dict.fromkeys(principals)).encode("ascii")


def parse_principals(data: bytes) -> tuple[str, ...]:
    """The principals as sshd reads the file: one per line, blank lines and # comments skipped."""
    lines = (line.strip() for line in data.decode("utf-8", "replace").splitlines())
    return tuple(line for line in lines if line and not line.startswith("#"))


def user_ca_way_in(user_cas: Sequence[AuthorizedKey], principals: Sequence[str]) -> bool:
    """A trusted user CA is a way in when sshd has a CA to trust and a principal to accept: a certificate the
    CA issues for one of the principals logs in as zvm, with no authorized_keys entry (the access model
    counts it as a way in)."""
    return bool(user_cas) and bool(principals)


def _b64(blob: bytes) -> str:
    import base64

    return base64.b64encode(blob).decode("ascii")


def host_certificate_summary(plan) -> dict[str, object] | None:
    """What a report says of the host certificate a plan signed (core.plan.Plan; None: none signed)."""
    if plan.host_certificate is None:
        return None
    info = parse_certificate(plan.host_certificate)
    return {"serial": info.serial, "key_id": info.key_id, "principals": list(info.principals),
            "valid_before": info.valid_before.isoformat() if info.valid_before else "forever",
            "ca_fingerprint": info.ca_fingerprint, "cert_authority": plan.cert_authority}
