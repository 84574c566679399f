"""Netbird: the setup key the image enrols with on first boot, and a self-hosted management URL."""

from __future__ import annotations

import re

from provision.errors import UsageError
from provision.secret import Secret

_NETBIRD_KEY_RE = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", re.ASCII)
_MAX_URL_CHARS = 2048


def validate_netbird_setup_key(text: str) -> Secret:
    """A Netbird setup key is a UUID. The dashboard shows it in upper case, other tools print it in lower case:
    any letter case is accepted and the key is stored upper case, as Netbird issued it. Never echoes the input."""
    key = text.strip().upper()
    if _NETBIRD_KEY_RE.fullmatch(key):
        return Secret(key)
    raise UsageError("the Netbird setup key must be a UUID such as XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX")


def validate_management_url(url: str) -> str:
    """A self-hosted Netbird management URL: https, a host, no credentials. Returns it stripped."""
    from urllib.parse import urlsplit

    url = url.strip()
    if len(url) > _MAX_URL_CHARS:
        raise UsageError(f"the Netbird management URL is longer than {_MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UsageError("the Netbird management URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        raise UsageError("the Netbird management URL is malformed") from None
    if parts.scheme.lower() != "https":
        raise UsageError("the Netbird management URL must start with https://")
    if "@" in parts.netloc:  # not echoed: it may hold a password
        raise UsageError("the Netbird management URL must not contain a user name or password")
    if not parts.hostname:
        raise UsageError("the Netbird management URL has no host")
    return url
