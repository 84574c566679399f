"""`keys IMAGE... --host-ca F`: renew the host certificates of a fleet (each image's host key signed again, for
its own hostname, with a new serial and validity), and `--user-ca`/`--user-principal`: the trusted user CAs and
principals of every image set at once (rotating a user CA). It rides on `keys`: the same chunks, report, lock and
Ctrl-C rules, and the request goes through core.plan, so seed's rules hold (never the last way in; an image with
no host key to certify is refused and named)."""

from __future__ import annotations

import dataclasses

from provision.commands.certoptions import CertFlags
from provision.core.request import PasswordChoice, SeedRequest


def wants_certificates(certs: CertFlags) -> bool:
    return certs.host_cert is not None or certs.user_cas is not None or certs.user_principals is not None


def with_certificates(request: SeedRequest | None, certs: CertFlags, operator: str | None) -> SeedRequest | None:
    """`request` (a key change for this image, or None: none) with the certificate flags added; None when
    neither asks for anything."""
    if not wants_certificates(certs):
        return request
    base = request or SeedRequest(password=PasswordChoice.keep(), host_keys=False, operator=operator)
    return dataclasses.replace(base, host_cert=certs.host_cert, user_cas=certs.user_cas,
                               user_principals=certs.user_principals)
