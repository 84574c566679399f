"""Which HTTP proxy a fetch goes through, from the environment as curl and pip read it: https_proxy (or
HTTPS_PROXY) for https URLs, unless no_proxy (or NO_PROXY) names the host.

The proxy is asked to CONNECT to the host, and TLS runs end to end through that tunnel: the proxy sees the
host name, never the keys, and the server's certificate is checked as without a proxy. So the proxy itself is
spoken to in plain http (http://HOST:PORT); user:password in its URL is sent to it alone, as
Proxy-Authorization: Basic, and never shown in a message.
"""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from provision.core.urls import MAX_URL_CHARS, display_url, url_host
from provision.errors import UsageError

_DEFAULT_PORT = 80  # an http:// proxy without a port: the scheme's, as pip and requests take it


@dataclass(frozen=True)
class Proxy:
    host: str
    port: int
    shown: str  # for messages: http://HOST:PORT, without the credentials
    authorization: str | None = field(default=None, repr=False)  # "Basic ...": a secret


def proxy_for(url: str, environ: Mapping[str, str]) -> Proxy | None:
    """The proxy for this https URL, or None to connect directly. A UsageError (exit 2) for a proxy setting
    this tool cannot use, naming the variable but not its credentials."""
    setting = _variable(environ, "https_proxy")
    if not setting:
        return None
    no_proxy = _variable(environ, "no_proxy")
    # urllib's reading of no_proxy: '*', or host names and domain suffixes, a leading dot or not, port ignored
    if no_proxy and urllib.request.proxy_bypass_environment(urlsplit(url).hostname or "", {"no": no_proxy}):
        return None
    return parse_proxy(setting)


def _variable(environ: Mapping[str, str], name: str) -> str:
    """The lower-case name first, then the upper-case one, as curl, wget and urllib read them."""
    return environ.get(name, "").strip() or environ.get(name.upper(), "").strip()


def parse_proxy(setting: str) -> Proxy:
    """http://[USER:PASSWORD@]HOST[:PORT], or HOST:PORT (http is meant, as curl takes it)."""
    what = "the proxy in https_proxy/HTTPS_PROXY"
    setting = setting.strip()
    if "://" not in setting:
        setting = "http://" + setting
    if len(setting) > MAX_URL_CHARS or not setting.isascii() or any(c.isspace() for c in setting):
        raise UsageError(f"{what} is not a URL such as http://proxy.example:3128")
    try:
        parts = urlsplit(setting)
        port = parts.port or _DEFAULT_PORT
    except ValueError:
        raise UsageError(f"{what} is malformed; give it as http://HOST:PORT") from None
    scheme = parts.scheme.lower()
    if scheme == "https":
        raise UsageError(f"{what} ({display_url(setting)}) uses https://: a TLS connection to the proxy itself "
                         "is not supported",
                         hint="give its http:// address: the keys still travel encrypted end to end, through "
                         "the proxy's CONNECT tunnel")
    if scheme != "http":
        raise UsageError(f"{what} uses {scheme}://, which is not supported; give an http:// proxy")
    if not parts.hostname:
        raise UsageError(f"{what} has no host; give it as http://HOST:PORT")
    authorization = None
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        authorization = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
    return Proxy(host=parts.hostname, port=port, shown=display_url(f"http://{url_host(parts.hostname)}:{port}"),
                 authorization=authorization)
