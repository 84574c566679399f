"""A throw-away certificate authority and an HTTPS server on 127.0.0.1, for tests that fetch over the network.

The CA and the server certificate are made with cryptography at run time (EC keys: fast). The server answers
each path with a route, a function given the request handler, and records every request (path and headers),
so a test can assert on what the client sent and how often. The `forge` fixture below points gh: and gl:
at one such server. Plain-HTTP servers are made the same way, without
TLS, to be the target of a refused redirect.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class Authority:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def write_pem(self, path: Path) -> Path:
        path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        return path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _validity(builder: x509.CertificateBuilder) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.timezone.utc)
    return builder.not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(
        now + datetime.timedelta(days=1)
    )


def make_authority(common_name: str = "zvm-provision test CA") -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                          key_encipherment=False, data_encipherment=False, key_agreement=False,
                          encipher_only=False, decipher_only=False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return Authority(key, _validity(builder).sign(key, hashes.SHA256()))


def issue_server_cert(ca: Authority, directory: Path, names: tuple[str, ...] = ("127.0.0.1", "localhost"),
                      ) -> tuple[Path, Path]:
    """(certificate chain file, key file) for a server known by `names` (IP addresses or DNS names)."""
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names = []
    for name in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt_names.append(x509.DNSName(name))
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    cert = _validity(builder).sign(ca.key, hashes.SHA256())
    cert_path = directory / f"server-{names[0]}.pem"
    key_path = directory / f"server-{names[0]}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                          serialization.NoEncryption())
    )
    return cert_path, key_path


@dataclass
class Request:
    path: str
    headers: dict[str, str]  # names in lower case


Route = Callable[["Handler"], None]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def setup(self) -> None:
        tls = self.server.tls
        if tls is not None:  # the handshake in this handler's thread, not in the accepting one
            self.request = tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self) -> None:
        super().finish()
        if self.server.tls is not None:
            self.request.close()  # the server's shutdown_request only sees the socket before TLS wrapped it

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.server.requests.append(Request(self.path, {k.lower(): v for k, v in self.headers.items()}))
        route = self.server.routes.get(self.path.split("?")[0])
        if route is None:
            send(self, 404, b"Not Found\n")
        else:
            route(self)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
        pass  # quiet: pytest shows what matters


def send(handler: Handler, status: int, body: bytes = b"", *, content_type: str = "text/plain; charset=utf-8",
         headers: dict[str, str] | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Connection", "close")
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)


@dataclass
class Trickle:
    """What write_slowly saw: how many bytes went out before the client hung up (if it did)."""

    sent: int = 0
    hung_up: threading.Event = field(default_factory=threading.Event)


def write_slowly(handler: Handler, data: bytes, delay: float, trickle: Trickle) -> None:
    """Send `data` a byte at a time, `delay` seconds apart, counting in `trickle`; when the client closes the
    connection (a send fails), set trickle.hung_up and stop."""
    try:
        for byte in data:
            handler.wfile.write(bytes([byte]))
            handler.wfile.flush()
            trickle.sent += 1
            time.sleep(delay)
    except OSError:
        trickle.hung_up.set()
        handler.close_connection = True


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.tls = tls
        self.routes: dict[str, Route] = {}
        self.requests: list[Request] = []
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server_address[1]}"

    def handle_error(self, request, client_address) -> None:
        pass  # a client that refuses our certificate or hangs up is what several tests do on purpose

    def paths(self) -> list[str]:
        return [request.path for request in self.requests]


@dataclass
class Servers:
    """The servers a test started, to stop them when it ends."""

    started: list[LocalServer] = field(default_factory=list)

    def https(self, cert: Path, key: Path) -> LocalServer:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        return self._start(LocalServer(tls))

    def http(self) -> LocalServer:
        return self._start(LocalServer(None))

    def _start(self, server: LocalServer) -> LocalServer:
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self.started.append(server)
        return server

    def stop(self) -> None:
        for server in self.started:
            server.shutdown()
            server.server_close()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- fixtures and helpers shared by the tests that fetch keys (import them into the test module) -------------

MIB = 1 << 20


@pytest.fixture(scope="module")
def authority() -> Authority:
    return make_authority()


@pytest.fixture
def servers() -> Iterator[Servers]:
    started = Servers()
    yield started
    started.stop()


@pytest.fixture
def forge(authority: Authority, servers: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalServer:
    """An HTTPS server trusted through SSL_CERT_FILE, standing in for both GitHub and GitLab (gl: users live
    under /gitlab/), reached without a proxy. The environment is what a `zvm-provision` subprocess inherits
    too."""
    cert, key = issue_server_cert(authority, tmp_path)
    server = servers.https(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", str(authority.write_pem(tmp_path / "ca.pem")))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.setenv("ZVM_PROVISION_GITHUB_URL", server.url)
    monkeypatch.setenv("ZVM_PROVISION_GITLAB_URL", server.url + "/gitlab/")
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY"):  # the host's proxy is not the test's
        monkeypatch.delenv(name, raising=False)
    return server


def serve(server: LocalServer, path: str, body: bytes, status: int = 200, **kwargs) -> None:
    server.routes[path] = lambda handler: send(handler, status, body, **kwargs)


def lines(*keys: str, end: str = "\n") -> bytes:
    return "".join(key + end for key in keys).encode()


def bare(line: str) -> str:
    """A public key line without its comment, as GitHub serves it."""
    return " ".join(line.split(" ")[:2])
