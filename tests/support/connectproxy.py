"""A CONNECT proxy on 127.0.0.1, as a corporate network puts between a desk and GitHub: it records each request
line and its headers, may demand Basic credentials (407) or refuse (any status), or accept the connection
and never answer; otherwise it answers 200 and relays bytes both ways, so TLS runs end to end through it.
"""

from __future__ import annotations

import base64
import selectors
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

# The proxy's own words, which a client must never show (a test looks for them in messages).
REFUSAL_WORDS = "go away <proxy's own words>"


@dataclass
class Connect:
    method: str
    target: str  # host:port
    headers: dict[str, str]  # names in lower case


class ConnectProxy(socketserver.ThreadingTCPServer):
    daemon_threads = True

    def __init__(self, *, credentials: str | None = None, status: int = 200, silent: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.credentials = credentials  # "user:password" demanded, or None
        self.status = status  # answered instead of 200 (after the credentials check)
        self.silent = silent  # read the CONNECT, then say nothing until the client hangs up
        self.connects: list[Connect] = []
        self.hung_up = threading.Event()  # a silent proxy's client hung up
        self.stopping = threading.Event()
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address) -> None:
        pass  # clients that hang up are what several tests do on purpose


class _Handler(socketserver.StreamRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        method, _, rest = self.rfile.readline(65537).decode("latin-1").strip().partition(" ")
        headers: dict[str, str] = {}
        while (line := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        target = rest.partition(" ")[0]
        self.server.connects.append(Connect(method, target, headers))
        if self.server.silent:
            self.connection.settimeout(0.1)
            while not self.server.stopping.is_set():
                try:
                    if self.connection.recv(1) == b"":
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
            self.server.hung_up.set()
            return
        wanted = self.server.credentials
        if wanted and headers.get("proxy-authorization") != "Basic " + base64.b64encode(wanted.encode()).decode():
            self._answer(407, 'Proxy-Authenticate: Basic realm="test"\r\n')
        elif method != "CONNECT":
            self._answer(405)
        elif self.server.status != 200:
            self._answer(self.server.status)
        else:
            host, _, port = target.rpartition(":")
            with socket.create_connection((host.strip("[]"), int(port)), timeout=10) as upstream:
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                _relay(self.connection, upstream)

    def _answer(self, status: int, headers: str = "") -> None:
        self.wfile.write(f"HTTP/1.1 {status} {REFUSAL_WORDS}\r\n{headers}Content-Length: 0\r\n\r\n".encode())


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Bytes both ways until either side closes."""
    peers = {client: upstream, upstream: client}
    with selectors.DefaultSelector() as selector:
        for sock in peers:
            selector.register(sock, selectors.EVENT_READ)
        while True:
            for key, _ in selector.select(timeout=10):
                data = key.fileobj.recv(65536)
                if not data:
                    return
                peers[key.fileobj].sendall(data)


@dataclass
class Proxies:
    """The proxies a test started, stopped when it ends."""

    started: list[ConnectProxy] = field(default_factory=list)

    def start(self, **options) -> ConnectProxy:
        proxy = ConnectProxy(**options)
        threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.started.append(proxy)
        return proxy

    def stop(self) -> None:
        for proxy in self.started:
            proxy.stopping.set()
            proxy.shutdown()
            proxy.server_close()


@pytest.fixture
def proxies() -> Iterator[Proxies]:
    started = Proxies()
    yield started
    started.stop()
