"""Tests for provision.fetch (forgekeys, httpsget): keys fetched from GitHub/GitLab-style servers.

Every fetch goes to a real HTTPS server on 127.0.0.1 (tests/support/httpsserver.py), whose certificate comes
from a throw-away CA that SSL_CERT_FILE points at; ZVM_PROVISION_GITHUB_URL and ZVM_PROVISION_GITLAB_URL point
gh: and gl: at it. No appliance. What needs no network (reading a source as written) is in
tests/core/credentials/test_keysources.py.
"""

from __future__ import annotations

import ssl

import pytest

from provision import __version__
from provision.errors import ExitCode, ProvisionError, UsageError
from provision.fetch import forgekeys
from provision.fetch.forgekeys import GITHUB_URL_ENV, KeyFetcher, fetch_keys
from provision.fetch.httpsget import FetchError
from tests.support import keyfactory
from tests.support.deadlines import CUT_WITHIN, DEADLINES, first_cut
from tests.support.httpsserver import (  # noqa: F401 (authority, servers, forge: fixtures)
    MIB,
    Trickle,
    authority,
    bare,
    forge,
    free_port,
    issue_server_cert,
    lines,
    make_authority,
    send,
    serve,
    servers,
    write_slowly,
)


# ------------------------------------------------------------------------------------------------
# Recognising and validating sources (no network)


@pytest.mark.parametrize(
    "spec",
    ["gh:", "gh:-alice", "gh:alice-", "gh:al--ice", "gh:" + "a" * 40, "gh:al_ice", "gh:al.ice", "gh:alice/x",
     "gh:../etc", "gh:al ice", "gh:ålice", "gh:alice?x=1", "gh:alice#x",
     "gl:", "gl:-bob", "gl:bob.", "gl:bob.git", "gl:bob.ATOM", "gl:b/ob", "gl:bob?x", "gl:..",
     "gl:" + "b" * 256, "gl:bob%2F"],
)
def test_invalid_user_names_are_refused_before_any_network_access(forge, spec):
    with pytest.raises(UsageError, match="not a valid (GitHub|GitLab) user name") as caught:
        fetch_keys(spec)
    assert caught.value.exit_code == ExitCode.USAGE
    assert forge.requests == []


def test_plain_http_is_refused_with_a_reason(forge):
    with pytest.raises(UsageError, match="plain http.*use https://") as caught:
        fetch_keys("http://127.0.0.1:1/alice.keys")
    assert caught.value.exit_code == ExitCode.USAGE


# ------------------------------------------------------------------------------------------------
# Fetching: success


def test_github_style_keys_several_types_without_comments(forge):
    served = [bare(keyfactory.public_line("ed25519")), bare(keyfactory.public_line("ecdsa")),
              bare(keyfactory.public_line("rsa", bits=2048))]
    serve(forge, "/alice.keys", lines(*served))
    fetched = fetch_keys("gh:alice")
    assert [key.line for key in fetched.keys] == served
    assert [key.key_type for key in fetched.keys] == ["ssh-ed25519", "ecdsa-sha2-nistp256", "ssh-rsa"]
    assert [key.comment for key in fetched.keys] == ["", "", ""]
    assert fetched.source.spec == "gh:alice"
    assert fetched.final_url == f"{forge.url}/alice.keys"
    assert fetched.describe() == [f"{key.describe()}, from gh:alice" for key in fetched.keys]
    assert fetched.describe()[0].startswith("256 SHA256:")


def test_gitlab_style_keys_with_comments_blank_lines_and_crlf(forge):
    first = bare(keyfactory.public_line("ed25519")) + " Bob Smith (gitlab.com)"
    second = bare(keyfactory.public_line("ecdsa")) + " bob@laptop"
    body = f"# keys of bob\r\n{first}\r\n\r\n   \r\n{second}\r\n".encode()
    serve(forge, "/gitlab/bob.keys", body)
    fetched = fetch_keys("gl:bob")
    assert [key.line for key in fetched.keys] == [first, second]
    assert [key.comment for key in fetched.keys] == ["Bob Smith (gitlab.com)", "bob@laptop"]
    assert fetched.source.label == "GitLab user bob"


def test_a_self_hosted_keys_url(forge):
    line = keyfactory.public_line("ed25519", comment="carol@work")
    serve(forge, "/carol.keys", lines(line, end=""))  # no final newline (Gitea's answer has none)
    fetched = fetch_keys(f"{forge.url}/carol.keys")
    assert [key.line for key in fetched.keys] == [line]
    assert fetched.source.forge is None


def test_the_request_carries_no_credentials_and_names_the_tool(forge):
    serve(forge, "/alice.keys", lines(keyfactory.public_line()))
    fetch_keys("gh:alice")
    [request] = forge.requests
    assert request.headers["user-agent"].startswith(f"zvm-provision/{__version__}")
    assert request.headers["accept-encoding"] == "identity"
    assert not {"cookie", "authorization", "proxy-authorization"} & set(request.headers)


def test_an_explicit_ssl_context(forge, authority, tmp_path, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")  # trust only through the context given
    serve(forge, "/alice.keys", lines(keyfactory.public_line()))
    context = ssl.create_default_context(cafile=str(authority.write_pem(tmp_path / "explicit-ca.pem")))
    assert len(fetch_keys("gh:alice", context=context).keys) == 1


def test_a_body_of_exactly_the_cap_is_accepted(forge):
    key = keyfactory.public_line().encode() + b"\n"
    filler = b"# " + b"x" * (MIB - len(key) - 3) + b"\n"
    body = filler + key
    assert len(body) == MIB
    serve(forge, "/alice.keys", body)
    assert len(fetch_keys("gh:alice").keys) == 1


# ------------------------------------------------------------------------------------------------
# Redirects


def test_an_https_redirect_is_followed_and_no_cookie_is_sent_back(forge):
    line = keyfactory.public_line()
    forge.routes["/old.keys"] = lambda h: send(h, 301, b"", headers={"Location": "/new.keys",
                                                                      "Set-Cookie": "session=abc"})
    serve(forge, "/new.keys", lines(line))
    fetched = fetch_keys("gh:old")
    assert fetched.final_url == f"{forge.url}/new.keys"
    assert fetched.source.url == f"{forge.url}/old.keys"
    assert [key.line for key in fetched.keys] == [line]
    assert forge.paths() == ["/old.keys", "/new.keys"]
    assert "cookie" not in forge.requests[1].headers


def test_a_redirect_to_plain_http_is_refused(forge, servers):
    plain = servers.http()
    serve(plain, "/alice.keys", lines(keyfactory.public_line()))
    forge.routes["/alice.keys"] = lambda h: send(h, 302, headers={"Location": f"{plain.url}/alice.keys"})
    with pytest.raises(FetchError, match="redirects to plain http") as caught:
        fetch_keys("gh:alice")
    assert caught.value.exit_code == ExitCode.FAILURE
    assert f"{forge.url}/alice.keys" in caught.value.message
    assert plain.requests == []


def test_a_redirect_loop_stops(forge):
    forge.routes["/alice.keys"] = lambda h: send(h, 302, headers={"Location": "/alice.keys?again"})
    with pytest.raises(FetchError, match="more than 5 redirects"):
        fetch_keys("gh:alice")
    assert len(forge.requests) == 6


def test_a_redirect_to_another_scheme_is_refused(forge):
    forge.routes["/alice.keys"] = lambda h: send(h, 302, headers={"Location": "file:///etc/passwd"})
    with pytest.raises(FetchError, match="redirect target must start with https://"):
        fetch_keys("gh:alice")


# ------------------------------------------------------------------------------------------------
# What the server says that is wrong: usage errors (exit 2)


def test_404_names_the_user_and_the_forge(forge):
    with pytest.raises(UsageError) as caught:
        fetch_keys("gh:nobody")
    assert caught.value.exit_code == ExitCode.USAGE
    assert "GitHub has no user nobody" in caught.value.message
    assert f"{forge.url}/nobody.keys" in caught.value.message
    with pytest.raises(UsageError, match="GitLab has no user nobody"):
        fetch_keys("gl:nobody")
    with pytest.raises(UsageError, match="does not exist"):
        fetch_keys(f"{forge.url}/nobody.keys")


@pytest.mark.parametrize("body", [b"", b"\n", b"# no keys here\n\n"])
def test_an_empty_answer_names_the_user_and_the_forge(forge, body):
    serve(forge, "/gitlab/bob.keys", body)
    with pytest.raises(UsageError, match="GitLab user bob has no public SSH keys") as caught:
        fetch_keys("gl:bob")
    assert caught.value.exit_code == ExitCode.USAGE


def test_a_private_key_served_is_refused_without_echoing_it(forge):
    pem = keyfactory.private_pem()
    serve(forge, "/alice.keys", pem.encode())
    with pytest.raises(UsageError, match="serves a private key") as caught:
        fetch_keys("gh:alice")
    message = f"{caught.value.message} {caught.value.hint}"
    assert "PRIVATE KEY" not in message
    assert not any(len(part) > 8 and part in message for part in pem.split("\n")[1:-2])


def test_a_bad_key_line_names_the_source_and_line(forge):
    good = keyfactory.public_line()
    serve(forge, "/alice.keys", lines(good, "ssh-ed25519 not-base64!"))
    with pytest.raises(UsageError) as caught:
        fetch_keys("gh:alice")
    assert caught.value.message == f"gh:alice ({forge.url}/alice.keys):2: bad base64 in the key"


def test_a_web_page_is_not_keys(forge):
    serve(forge, "/alice.keys", b"<html><body>Sign in</body></html>", content_type="text/html; charset=utf-8")
    with pytest.raises(UsageError, match="web page, not SSH keys"):
        fetch_keys("gh:alice")


# ------------------------------------------------------------------------------------------------
# Network trouble: FetchError (exit 1), with the URL and the reason


def test_an_untrusted_certificate_is_refused(forge, tmp_path, monkeypatch):
    other = make_authority("some other CA")
    monkeypatch.setenv("SSL_CERT_FILE", str(other.write_pem(tmp_path / "other-ca.pem")))
    serve(forge, "/alice.keys", lines(keyfactory.public_line()))
    with pytest.raises(FetchError, match="TLS certificate is not trusted") as caught:
        fetch_keys("gh:alice")
    assert caught.value.exit_code == ExitCode.FAILURE
    assert f"{forge.url}/alice.keys" in caught.value.message
    assert forge.requests == []  # no request was sent to a server we do not trust


def test_a_certificate_for_another_host_is_refused(forge, authority, servers, tmp_path):
    cert, key = issue_server_cert(authority, tmp_path, names=("other.example",))
    impostor = servers.https(cert, key)
    serve(impostor, "/alice.keys", lines(keyfactory.public_line()))
    with pytest.raises(FetchError, match="not trusted"):
        fetch_keys(f"{impostor.url}/alice.keys")
    assert impostor.requests == []


def test_a_server_error_is_a_failure(forge):
    serve(forge, "/alice.keys", b"oops", status=503)
    with pytest.raises(FetchError, match=r"HTTP 503 \(Service Unavailable\)") as caught:
        fetch_keys("gh:alice")
    assert caught.value.exit_code == ExitCode.FAILURE


def test_a_refused_connection_is_a_failure(forge, monkeypatch):
    monkeypatch.setenv(GITHUB_URL_ENV, f"https://127.0.0.1:{free_port()}")
    with pytest.raises(FetchError, match="connection was refused") as caught:
        fetch_keys("gh:alice")
    assert caught.value.exit_code == ExitCode.FAILURE


def test_an_unknown_host_is_a_failure(monkeypatch):
    monkeypatch.setenv(GITHUB_URL_ENV, "https://no-such-host.invalid")
    for name in ("https_proxy", "HTTPS_PROXY"):  # a host's proxy would answer for the unknown host itself
        monkeypatch.delenv(name, raising=False)
    # Without DNS the lookup may fail or hang: either way a FetchError naming the URL, within the deadline.
    expected = r"https://no-such-host\.invalid/alice\.keys: (the host name cannot be resolved|no complete)"
    with pytest.raises(FetchError, match=expected):
        fetch_keys("gh:alice", timeout=3)


def test_a_compressed_body_is_refused(forge):
    serve(forge, "/alice.keys", b"\x1f\x8b\x08\x00", headers={"Content-Encoding": "gzip"})
    with pytest.raises(FetchError, match="compressed"):
        fetch_keys("gh:alice")


def test_an_oversize_body_is_refused_by_its_length(forge):
    def announce_too_much(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(MIB + 1))
        handler.end_headers()
        handler.wfile.write(keyfactory.public_line().encode() + b"\n")

    forge.routes["/alice.keys"] = announce_too_much
    with pytest.raises(FetchError, match=f"larger than {MIB} bytes") as caught:
        fetch_keys("gh:alice")
    assert caught.value.exit_code == ExitCode.FAILURE


def test_an_endless_body_is_cut_at_the_cap(forge):
    """No Content-Length, and it never ends: reading stops after 1 MiB (unbounded reading would never end,
    and hit the deadline instead)."""
    sent = []

    def endless(handler):
        handler.send_response(200)
        handler.send_header("Connection", "close")
        handler.end_headers()
        chunk = b"# " + b"x" * 4093 + b"\n"
        try:
            while True:
                handler.wfile.write(chunk)
                sent.append(len(chunk))
        except OSError:
            pass

    forge.routes["/alice.keys"] = endless
    with pytest.raises(FetchError, match=f"larger than {MIB} bytes"):
        fetch_keys("gh:alice", timeout=30)


def test_a_body_one_byte_over_the_cap_is_refused(forge):
    key = keyfactory.public_line().encode() + b"\n"
    body = b"# " + b"x" * (MIB - len(key) - 2) + b"\n" + key
    assert len(body) == MIB + 1
    forge.routes["/alice.keys"] = lambda handler: _send_without_length(handler, body)
    with pytest.raises(FetchError, match=f"larger than {MIB} bytes"):
        fetch_keys("gh:alice")


def _send_without_length(handler, body: bytes) -> None:
    handler.send_response(200)
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)


@pytest.mark.parametrize("where", ["body", "headers"])
def test_a_trickling_server_hits_the_deadline_for_the_whole_fetch(forge, where):
    """One byte every 0.1 s never trips a per-read timeout, and the answer would be complete and valid after
    tens of seconds: only a deadline for the whole fetch stops it at 1 s, wherever the trickle is (http.client
    reads the headers in its own loop). The client closes the connection then, before the trickle ends (a
    loaded host that does not reach the server within 1 s gets a longer deadline: see tests/support/deadlines)."""
    key = keyfactory.public_line().encode() + b"\n"
    head = b"HTTP/1.1 200 OK\r\nX-Padding: " + b"p" * 200 + f"\r\nContent-Length: {len(key)}\r\n\r\n".encode()
    trickled = key if where == "body" else head + key
    assert len(trickled) * 0.1 > 2 * max(DEADLINES)  # no attempt's deadline outlasts the trickle

    def attempt(deadline: float):
        trickle = Trickle()

        def slow(handler):
            if where == "body":
                handler.wfile.write(head)
            write_slowly(handler, trickled, 0.1, trickle)

        forge.routes["/alice.keys"] = slow
        with pytest.raises(FetchError, match=f"no complete answer within {deadline:g} seconds") as caught:
            fetch_keys("gh:alice", timeout=deadline)
        assert caught.value.exit_code == ExitCode.FAILURE
        assert f"{forge.url}/alice.keys" in caught.value.message
        return trickle

    trickle = first_cut(attempt, lambda trickle: trickle.hung_up.wait(CUT_WITHIN))
    assert 0 < trickle.sent < len(trickled)  # the client hung up mid-answer


def test_errors_carry_no_traceback_cause(forge):
    """The CLI prints the message only; the chained cause (if any) must not be needed to understand it."""
    with pytest.raises(FetchError) as caught:
        fetch_keys("gh:alice", environ={GITHUB_URL_ENV: f"https://127.0.0.1:{free_port()}"})
    assert caught.value.__cause__ is None
    assert isinstance(caught.value, ProvisionError)


# ------------------------------------------------------------------------------------------------
# The fetcher: each distinct source once


def test_the_fetcher_fetches_a_repeated_source_once(forge):
    alice = keyfactory.public_line(comment="alice")
    bob = keyfactory.public_line(comment="bob")
    serve(forge, "/alice.keys", lines(alice))
    serve(forge, "/gitlab/bob.keys", lines(bob))
    fetcher = KeyFetcher()
    results = [fetcher.fetch(source) for source in ["gh:alice", "gl:bob", "gh:alice", "gh:ALICE", " gh:alice"]]
    assert forge.paths() == ["/alice.keys", "/gitlab/bob.keys"]
    assert [[key.line for key in r.keys] for r in results] == [[alice], [bob], [alice], [alice], [alice]]
    assert [r.source.spec for r in results] == ["gh:alice", "gl:bob", "gh:alice", "gh:ALICE", "gh:alice"]


def test_the_fetcher_does_not_fetch_a_failed_source_again(forge):
    fetcher = KeyFetcher()
    for _ in range(2):
        with pytest.raises(UsageError, match="GitHub has no user nobody"):
            fetcher.fetch("gh:nobody")
    assert forge.paths() == ["/nobody.keys"]


def test_the_fetcher_passes_its_timeout(forge):
    trickle = Trickle()
    forge.routes["/slow.keys"] = lambda h: write_slowly(h, b"HTTP/1.1 200 OK\r\n" * 50, 0.1, trickle)
    with pytest.raises(FetchError, match="within 0.5 seconds"):
        KeyFetcher(timeout=0.5).fetch("gh:slow")


def test_module_defaults():
    assert forgekeys.MAX_KEYS_BYTES == MIB
    assert fetch_keys.__kwdefaults__["timeout"] == 10.0


def test_prefetch_fetches_distinct_sources_at_once_and_keeps_failures(forge):
    """Two sources are in flight together (each answer waits for the other request to arrive: fetched one
    after the other, the first would wait in vain and fail); a repeated one is fetched once; a failure is
    raised by fetch() afterwards, without another request."""
    import threading

    # Generous bounds, only on the side a slow host cannot miss: both requests in flight return at once; a
    # fetcher that fetched one after the other would wait out the barrier (within the fetch's own deadline).
    both_arrived = threading.Barrier(2, timeout=30)
    served = {name: keyfactory.public_line(comment=name) for name in ("alice", "bob")}

    def waiting_for_the_other(name):
        def route(handler):
            try:
                both_arrived.wait()
            except threading.BrokenBarrierError:
                send(handler, 500, b"alone\n")
                return
            send(handler, 200, lines(served[name]))
        return route

    forge.routes["/alice.keys"] = waiting_for_the_other("alice")
    forge.routes["/gitlab/bob.keys"] = waiting_for_the_other("bob")
    fetcher = KeyFetcher(timeout=60)
    sources = [parse("gh:alice"), parse("gl:bob"), parse("gh:Alice"), parse("gh:nobody")]
    fetcher.prefetch(sources, workers=4)
    assert sorted(forge.paths()) == ["/alice.keys", "/gitlab/bob.keys", "/nobody.keys"]
    assert [key.line for key in fetcher.fetch(sources[2]).keys] == [served["alice"]]
    assert [key.line for key in fetcher.fetch("gl:bob").keys] == [served["bob"]]
    with pytest.raises(UsageError, match="GitHub has no user nobody"):
        fetcher.fetch("gh:nobody")
    fetcher.prefetch(sources)  # all known: nothing fetched again
    assert len(forge.requests) == 3


def parse(spec):
    from provision.core.credentials.keysources import parse_key_source

    return parse_key_source(spec)
