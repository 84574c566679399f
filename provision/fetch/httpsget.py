"""One bounded HTTPS GET: certificate checks, one deadline for the whole fetch, a size cap, https-only
redirects.

Stdlib only (http.client, ssl); what a URL may be and how it is shown is core.urls'. Nothing but a
User-Agent and the Accept headers is sent: no cookies, no credentials. Behind a proxy (https_proxy, unless
no_proxy names the host: fetch/proxy.py) the connection is a CONNECT tunnel through it, with TLS end to end.
Every failure is a FetchError (exit 1) naming the URL and the reason, never a traceback; URLs in messages
lose their query string, which may carry a token.

Why a worker thread: a socket timeout bounds each read, not the fetch. A server that trickles one byte a
second (in the body, the headers or the TLS handshake) or a DNS lookup that hangs would pass every per-read
timeout. The caller waits for the worker at most `timeout` seconds, then shuts the connection down, which
ends the worker's read at once, and reports the timeout.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import urljoin, urlsplit

from provision.core.urls import check_https_url, display_url
from provision.errors import ExitCode, ProvisionError, UsageError
from provision.fetch.proxy import Proxy, proxy_for

DEFAULT_TIMEOUT = 10.0  # seconds, for everything: DNS, connect, TLS, redirects, headers and body
DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_READ_SIZE = 64 * 1024
_PROXY_AUTH_HINT = ("the proxy wants a user name and password: give them in https_proxy as "
                    "http://USER:PASSWORD@HOST:PORT (percent-encode special characters)")


class FetchError(ProvisionError):
    """The fetch failed on the way: DNS, refused, TLS, timeout, oversize, a refused redirect, an HTTP error.
    Exit 1: the input may be right and the network wrong."""

    exit_code = ExitCode.FAILURE

    def __init__(self, url: str, reason: str, *, hint: str | None = None) -> None:
        self.url = display_url(url)
        self.reason = reason
        super().__init__(f"cannot fetch {self.url}: {reason}", hint=hint)


class HTTPStatusError(FetchError):
    """The server answered, but not 200 (nor a redirect we follow). `status` lets a caller turn 404 into its
    own message."""

    def __init__(self, url: str, status: int) -> None:
        self.status = status
        super().__init__(url, f"the server answered HTTP {status} ({_phrase(status)})")


def _phrase(status: int) -> str:
    """The standard words for a status, never the server's own reason text: it is untrusted."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "unknown status"


@dataclass(frozen=True)
class Response:
    url: str  # the final URL, after redirects
    content_type: str  # the media type, lower case, without parameters ("" if the server sent none)
    body: bytes


class _Watch:
    """The worker's current socket, so that the waiting thread can shut it down at the deadline. The lock
    makes sure a socket is shut down only while the worker still has it open (its descriptor cannot be
    reused)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self.expired = False

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.expired:
                self._shutdown()

    def close(self, *closables) -> None:
        with self._lock:
            for item in closables:
                if item is not None:
                    item.close()
            self._sock = None

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is not None:
            try:
                # socket.socket's own shutdown: SSLSocket.shutdown would drop its TLS state under the worker
                socket.socket.shutdown(self._sock, socket.SHUT_RDWR)
            except OSError:
                pass


_TUNNEL_REFUSED = re.compile(r"Tunnel connection failed: (\d{3})\b")  # http.client's words, 3.11 to 3.13


class ProxyRefused(OSError):
    """The proxy answered the CONNECT with a status other than 200."""

    def __init__(self, status: int) -> None:
        super().__init__(f"the proxy answered HTTP {status}")
        self.status = status


class _Connection(http.client.HTTPSConnection):
    """HTTPSConnection that hands its sockets to the watch: the TCP socket as soon as it is connected, so that
    a trickled CONNECT answer or TLS handshake is cut at the deadline too, then the TLS socket. Through a
    proxy, the TCP connection is to the proxy, and TLS to the host runs inside the tunnel."""

    def __init__(self, host: str, port: int | None, *, context: ssl.SSLContext, timeout: float, watch: _Watch,
                 proxy: Proxy | None) -> None:
        if proxy is None:
            super().__init__(host, port, timeout=timeout, context=context)
        else:
            super().__init__(proxy.host, proxy.port, timeout=timeout, context=context)
            headers = {"Proxy-Authorization": proxy.authorization} if proxy.authorization else None
            self.set_tunnel(host, port or http.client.HTTPS_PORT, headers=headers)
        self._watch = watch
        self._create_connection = self._connect_watched  # what http.client connects with
        self.tls: ssl.SSLSocket | None = None

    def _connect_watched(self, *args, **kwargs) -> socket.socket:
        sock = socket.create_connection(*args, **kwargs)
        self._watch.attach(sock)
        return sock

    def connect(self) -> None:
        try:
            http.client.HTTPConnection.connect(self)  # DNS, TCP, and the CONNECT through a proxy
        except OSError as exc:
            refused = _TUNNEL_REFUSED.match(str(exc)) if self._tunnel_host else None
            if refused:  # the proxy's own words are not shown: its status is
                raise ProxyRefused(int(refused.group(1))) from None
            raise
        server_hostname = self._tunnel_host or self.host
        self.sock = self.tls = self._context.wrap_socket(self.sock, server_hostname=server_hostname)
        self._watch.attach(self.tls)


def _reason(exc: BaseException) -> str:
    """Why a fetch failed, in words; built from the exception's type and fixed texts, never from data sent."""
    if isinstance(exc, ProxyRefused):
        return f"the proxy refused the connection (HTTP {exc.status} {_phrase(exc.status)})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"the server's TLS certificate is not trusted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed ({exc.reason or type(exc).__name__})"
    if isinstance(exc, socket.gaierror):
        return f"the host name cannot be resolved ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused"
    if isinstance(exc, http.client.HTTPException):
        return f"the server's answer is not valid HTTP ({type(exc).__name__})"
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    return type(exc).__name__


class _Fetch:
    """The work done in the worker thread: GET, follow https redirects, read the body up to the cap."""

    def __init__(self, *, context: ssl.SSLContext, deadline: float, max_bytes: int, max_redirects: int,
                 user_agent: str, accept: str, watch: _Watch, environ: Mapping[str, str]) -> None:
        self.context = context
        self.environ = environ
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.max_redirects = max_redirects
        self.watch = watch
        self.out_of_time = False  # the worker itself found the deadline passed
        self.headers = {"User-Agent": user_agent, "Accept": accept, "Accept-Encoding": "identity",
                        "Connection": "close"}

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0 or self.watch.expired:
            self.out_of_time = True
            raise TimeoutError
        return left

    def run(self, url: str) -> Response:
        for _ in range(self.max_redirects + 1):
            proxy = proxy_for(url, self.environ)  # per host: no_proxy may name a redirect's host
            try:
                result = self._get(url, proxy)
            except (FetchError, UsageError):
                raise
            except (OSError, http.client.HTTPException) as exc:
                if isinstance(exc, TimeoutError):  # socket timeouts are set to the time left: the deadline
                    self.out_of_time = True
                through = f" (through the proxy {proxy.shown})" if proxy else ""
                hint = _PROXY_AUTH_HINT if isinstance(exc, ProxyRefused) and exc.status == 407 else None
                raise FetchError(url, _reason(exc) + through, hint=hint) from None
            if isinstance(result, Response):
                return result
            url = result
        raise FetchError(url, f"more than {self.max_redirects} redirects")

    def _get(self, url: str, proxy: Proxy | None) -> Response | str:
        """The response, or the https URL it redirects to."""
        parts = urlsplit(url)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = _Connection(parts.hostname, parts.port, context=self.context, timeout=self.remaining(),
                           watch=self.watch, proxy=proxy)
        response = None
        try:
            conn.request("GET", target, headers=self.headers)
            response = conn.getresponse()
            if response.status in _REDIRECTS:
                return self._redirect_target(url, response.getheader("Location"))
            if response.status != 200:
                raise HTTPStatusError(url, response.status)
            encoding = (response.getheader("Content-Encoding") or "identity").strip().lower()
            if encoding != "identity":  # we asked for identity; a compressed body is not text
                raise FetchError(url, "the server sent a compressed body although none was asked for")
            body = self._read_body(url, response, conn.tls)
            content_type = (response.getheader("Content-Type") or "").split(";")[0].strip().lower()
            return Response(url=url, content_type=content_type, body=body)
        finally:
            self.watch.close(response, conn)

    def _redirect_target(self, url: str, location: str | None) -> str:
        if not location:
            raise FetchError(url, "the server redirects without saying where to")
        target = urljoin(url, location.strip())
        if urlsplit(target).scheme.lower() == "http":
            raise FetchError(url, f"the server redirects to plain http ({display_url(target)}); refused")
        try:
            return check_https_url(target, "the redirect target")
        except UsageError as exc:
            raise FetchError(url, f"{exc.message}; refused") from None

    def _read_body(self, url: str, response: http.client.HTTPResponse, sock: ssl.SSLSocket | None) -> bytes:
        too_big = f"the answer is larger than {self.max_bytes} bytes; refused"
        length = response.getheader("Content-Length")
        if length is not None and length.strip().isdigit() and int(length) > self.max_bytes:
            raise FetchError(url, too_big)  # refused before a byte of the body is read
        body = bytearray()
        # Python 3.13's read1 closes the response (and its socket) once Content-Length bytes are in: stop there
        # rather than touch the closed socket.
        while not response.isclosed():
            if sock is not None:
                sock.settimeout(self.remaining())
            chunk = response.read1(min(_READ_SIZE, self.max_bytes + 1 - len(body)))  # one socket read at most
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > self.max_bytes:
                raise FetchError(url, too_big)
        return bytes(body)


def https_get(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_redirects: int = DEFAULT_MAX_REDIRECTS,
    context: ssl.SSLContext | None = None,
    user_agent: str,
    accept: str = "*/*",
    environ: Mapping[str, str] | None = None,
) -> Response:
    """GET an https URL with a 200 answer of at most `max_bytes`, all within `timeout` seconds.

    `context` defaults to ssl.create_default_context() made now (so SSL_CERT_FILE and SSL_CERT_DIR apply).
    Redirects are followed up to `max_redirects`, to https URLs only. The proxy is `environ`'s (default: this
    process's environment) https_proxy and no_proxy. UsageError for a URL that is not https or a proxy setting
    that cannot be used; HTTPStatusError for a status other than 200; FetchError for everything else that
    goes wrong."""
    check_https_url(url, "the URL")
    fetch = _Fetch(
        context=context or ssl.create_default_context(),
        deadline=time.monotonic() + timeout,
        max_bytes=max_bytes,
        max_redirects=max_redirects,
        user_agent=user_agent,
        accept=accept,
        watch=_Watch(),
        environ=os.environ if environ is None else environ,
    )
    outcome: list = []

    def work() -> None:
        try:
            outcome.append(fetch.run(url))
        except BaseException as exc:  # handed to the waiting thread, which raises it
            outcome.append(exc)

    worker = threading.Thread(target=work, name=f"https_get {display_url(url)}", daemon=True)
    worker.start()
    try:
        worker.join(timeout)
    finally:
        if worker.is_alive():  # the deadline passed (or Ctrl-C): cut the connection, the worker ends at once
            fetch.watch.expire()
    if fetch.watch.expired or not outcome or fetch.out_of_time:
        raise FetchError(url, f"no complete answer within {timeout:g} seconds")
    result = outcome[0]
    if isinstance(result, BaseException):
        raise result
    return result
