"""What inspect says of an image's certificates: the host certificate (its CA's fingerprint, principals,
validity, serial; whether it certifies the image's host key), the trusted user CAs and the principals; and
the verdict `inspect --check` adds (an expired host certificate or one for another key fails; one that expires
within 30 days warns). Pure: the clock is passed in."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from provision.core.credentials.certificates import CertInfo, certificate_problems, parse_certificate
from provision.core.credentials.sshkeys import AuthorizedKey
from provision.core.state import ImageState
from provision.core.text import shown


@dataclass(frozen=True)
class CertificatesReport:
    host_certificate: Literal["present", "absent", "invalid"] = "absent"
    cert: CertInfo | None = None
    user_cas: tuple[AuthorizedKey, ...] = ()
    principals: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()  # what --check fails on
    warnings: tuple[str, ...] = field(default=())  # what --check warns about (expiry within 30 days)


def certificates_report(state: ImageState, now: datetime | None) -> CertificatesReport:
    """`now` None: the certificate's dates are shown but not judged."""
    cert = None
    status: Literal["present", "absent", "invalid"] = "absent"
    failures: list[str] = []
    warnings: list[str] = []
    if state.host_certificate_line is not None:
        try:
            cert = parse_certificate(state.host_certificate_line)
            status = "present"
        except Exception:  # whatever the image holds: an unparsable certificate is reported, not raised
            status = "invalid"
            failures.append("not an OpenSSH certificate")
    if cert is not None:
        host_blob = _blob(state.host_public_line)
        found, warned = certificate_problems(cert, host_blob, now)
        failures += found
        warnings += warned
    return CertificatesReport(status, cert, state.user_cas, tuple(shown(p) for p in state.principals),
                              tuple(failures), tuple(warnings))


def _blob(public_line: str | None) -> bytes | None:
    if public_line is None:
        return None
    try:
        return base64.b64decode(public_line.split()[1])
    except (IndexError, ValueError):
        return None


def certificates_json(report: CertificatesReport) -> dict[str, Any]:
    cert = report.cert
    return {
        "host_certificate": {
            "state": report.host_certificate,
            "ca_fingerprint": cert.ca_fingerprint if cert else None,
            "key_id": shown(cert.key_id) if cert else None,
            "serial": cert.serial if cert else None,
            "principals": [shown(p) for p in cert.principals] if cert else [],
            "valid_after": cert.valid_after.isoformat() if cert else None,
            "valid_before": (cert.valid_before.isoformat() if cert.valid_before else "forever") if cert else None,
            "problems": list(report.failures),
            "warnings": list(report.warnings),
        },
        "trusted_user_cas": [
            {"type": ca.key_type, "fingerprint": ca.fingerprint, "comment": shown(ca.comment)} for ca in report.user_cas
        ],
        "principals": list(report.principals),
    }
