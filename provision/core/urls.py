"""URLs the person gives (key sources, their base URLs, redirect targets): https only, no credentials, and how a
URL is shown in a message. Pure: nothing here touches the network."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

from provision.errors import UsageError

MAX_URL_CHARS = 2048
MALFORMED_URL = "(a malformed URL)"  # what display_url shows for a URL it cannot take apart


def url_host(hostname: str) -> str:
    """A host name as a URL writes it: an IPv6 address in brackets, so that its port stays apart."""
    return f"[{hostname}]" if ":" in hostname else hostname


def display_url(url: str) -> str:
    """The URL for a message: no user info, no fragment, the query shown as '?...' (it may hold a token)."""
    try:
        parts = urlsplit(url)
        host = url_host(parts.hostname or "")
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return MALFORMED_URL
    shown = f"{parts.scheme}://{host}{port}{parts.path}" + ("?..." if parts.query else "")
    # percent-encoded: never a control code on a terminal, nor a space that hides where the URL ends
    return "".join(c if 0x20 < ord(c) < 0x7F else quote(c, safe="") for c in shown)


def check_https_url(url: str, what: str) -> str:
    """`url` if it is an https URL we can fetch: ASCII, no whitespace, a host, no user name or password.
    A UsageError naming `what` otherwise (plain http gets its own message)."""
    if len(url) > MAX_URL_CHARS:
        raise UsageError(f"{what} is longer than {MAX_URL_CHARS} characters")
    if not url.isascii() or any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UsageError(f"{what} must be plain ASCII without spaces (percent-encode other characters)")
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        raise UsageError(f"{what} is malformed") from None
    scheme = parts.scheme.lower()
    if scheme == "http":
        raise UsageError(f"{what} uses plain http, which anyone on the way can change; use https://")
    if scheme != "https":
        raise UsageError(f"{what} must start with https://")
    if "@" in parts.netloc:  # not echoed: it may hold a password
        raise UsageError(f"{what} must not contain a user name or password")
    if not parts.hostname:
        raise UsageError(f"{what} has no host")
    return url
