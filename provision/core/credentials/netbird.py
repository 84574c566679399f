"""Netbird: the setup key the image enrols with on first boot, and a self-hosted management URL."""

from __future__ import annotations

import re

from provision.core.urls import check_https_url
from provision.errors import UsageError
from provision.secret import Secret

_NETBIRD_KEY_RE = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", re.ASCII)


def validate_netbird_setup_key(text: str) -> Secret:
    """A Netbird setup key is a UUID. The dashboard shows it in upper case, other tools print it in lower case:
    any letter case is accepted and the key is stored upper case, as Netbird issued it. Never echoes the input."""
    key = text.strip().upper()
    if _NETBIRD_KEY_RE.fullmatch(key):
        return Secret(key)
    raise UsageError("the Netbird setup key must be a UUID such as XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX")


def validate_management_url(url: str) -> str:
    """A self-hosted Netbird management URL: https, a host, no credentials (the rules of every URL the person
    gives, core/urls.py). Returns it stripped."""
    return check_https_url(url.strip(), "the Netbird management URL")
