"""Fetching keys behind an HTTP proxy (provision/fetch/proxy.py, httpsget): https_proxy / no_proxy as curl and
pip read them, a CONNECT tunnel with TLS end to end, Basic credentials sent to the proxy alone and never shown.

The proxy is a real CONNECT proxy on 127.0.0.1 (tests/support/connectproxy.py) in front of the test forge
(tests/support/httpsserver.py). No appliance.
"""

from __future__ import annotations

import base64

import pytest

from provision.errors import ExitCode, UsageError
from provision.fetch.forgekeys import KeyFetcher, fetch_keys
from provision.fetch.httpsget import FetchError
from provision.fetch.proxy import parse_proxy, proxy_for
from tests.support import keyfactory
from tests.support.connectproxy import REFUSAL_WORDS, proxies  # noqa: F401 (proxies: a fixture)
from tests.support.deadlines import CUT_WITHIN, SILENT_DEADLINES, first_cut
from tests.support.httpsserver import (  # noqa: F401 (authority, servers, forge: fixtures)
    authority,
    bare,
    forge,
    free_port,
    lines,
    serve,
    servers,
)

URL = "https://github.com/alice.keys"


# ------------------------------------------------------------------------------------------------
# Which proxy, from the environment (no network)


def test_no_proxy_setting_means_a_direct_connection():
    assert proxy_for(URL, {}) is None
    assert proxy_for(URL, {"http_proxy": "http://p:1", "HTTP_PROXY": "http://p:1"}) is None  # http URLs only


def test_https_proxy_lower_case_wins_as_curl_reads_it():
    assert proxy_for(URL, {"HTTPS_PROXY": "http://upper:3128"}).host == "upper"
    both = proxy_for(URL, {"https_proxy": "http://lower:3128", "HTTPS_PROXY": "http://upper:3128"})
    assert (both.host, both.port, both.shown) == ("lower", 3128, "http://lower:3128")


@pytest.mark.parametrize(
    "no_proxy, bypassed",
    [("github.com", True), (".github.com", True), ("*", True), ("example.org, github.com", True),
     ("GITHUB.COM", True), ("hub.com", False), ("example.org", False), ("", False)],
)
def test_no_proxy_names_hosts_and_domains(no_proxy, bypassed):
    environ = {"https_proxy": "http://proxy:3128", "no_proxy": no_proxy}
    assert (proxy_for(URL, environ) is None) == bypassed
    assert proxy_for("https://api.github.com/x", {**environ, "NO_PROXY": ".github.com", "no_proxy": ""}) is None


def test_a_proxy_without_a_scheme_is_http_and_without_a_port_is_80():
    assert (parse_proxy("proxy.corp:8080").host, parse_proxy("proxy.corp:8080").port) == ("proxy.corp", 8080)
    assert parse_proxy("http://proxy.corp").port == 80
    assert parse_proxy("http://[2001:db8::1]:3128").shown == "http://[2001:db8::1]:3128"


def test_credentials_become_basic_authorization_and_are_never_shown():
    proxy = parse_proxy("http://it%40corp:pa%3Ass@proxy.corp:3128")
    assert proxy.authorization == "Basic " + base64.b64encode(b"it@corp:pa:ss").decode()
    assert "pa" not in proxy.shown and "pa%3Ass" not in repr(proxy) and "Basic" not in repr(proxy)
    assert parse_proxy("http://proxy.corp:3128").authorization is None


@pytest.mark.parametrize(
    "setting, reason",
    [("https://user:s3cret@proxy.corp:443", "uses https://: a TLS connection to the proxy itself"),
     ("socks5://user:s3cret@proxy.corp:1080", "uses socks5://, which is not supported"),
     ("http://user:s3cret@proxy.corp:99999", "malformed"),
     ("http://user:s3cret@:3128", "has no host"),
     ("http://user:s3cret@proxy corp:3128", "is not a URL")],
)
def test_proxy_settings_that_cannot_be_used_are_usage_errors_without_the_password(setting, reason):
    with pytest.raises(UsageError, match=reason) as caught:
        proxy_for(URL, {"HTTPS_PROXY": setting})
    assert caught.value.exit_code == ExitCode.USAGE
    assert "s3cret" not in str(caught.value) + (caught.value.hint or "")


# ------------------------------------------------------------------------------------------------
# Fetching through a real proxy


def via(proxy, monkeypatch, **extra: str) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy if isinstance(proxy, str) else proxy.url)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def test_keys_are_fetched_through_the_proxys_tunnel_with_tls_end_to_end(forge, proxies, monkeypatch):
    key = bare(keyfactory.public_line())
    serve(forge, "/alice.keys", lines(key))
    proxy = proxies.start()
    via(proxy, monkeypatch)
    fetched = fetch_keys("gh:alice")
    assert [k.line for k in fetched.keys] == [key]
    port = forge.url.rsplit(":", 1)[1]
    assert [(c.method, c.target) for c in proxy.connects] == [("CONNECT", f"127.0.0.1:{port}")]
    assert "proxy-authorization" not in proxy.connects[0].headers
    # the request itself went through the tunnel, encrypted: the forge got it, the proxy only saw the CONNECT
    assert forge.paths() == ["/alice.keys"] and "proxy-authorization" not in forge.requests[0].headers


def test_a_proxy_without_a_scheme_works(forge, proxies, monkeypatch):
    serve(forge, "/alice.keys", lines(bare(keyfactory.public_line())))
    proxy = proxies.start()
    via(proxy.url.removeprefix("http://"), monkeypatch)
    assert len(fetch_keys("gh:alice").keys) == 1
    assert len(proxy.connects) == 1


def test_no_proxy_fetches_directly(forge, proxies, monkeypatch):
    serve(forge, "/alice.keys", lines(bare(keyfactory.public_line())))
    proxy = proxies.start()
    via(proxy, monkeypatch, no_proxy="localhost,127.0.0.1")
    assert len(fetch_keys("gh:alice").keys) == 1
    assert proxy.connects == [] and forge.paths() == ["/alice.keys"]


def test_credentials_go_to_the_proxy_alone(forge, proxies, monkeypatch):
    serve(forge, "/alice.keys", lines(bare(keyfactory.public_line())))
    proxy = proxies.start(credentials="it@corp:s3cret pass")
    via(proxy.url.replace("http://", "http://it%40corp:s3cret%20pass@"), monkeypatch)
    assert len(fetch_keys("gh:alice").keys) == 1
    expected = "Basic " + base64.b64encode(b"it@corp:s3cret pass").decode()
    assert proxy.connects[0].headers["proxy-authorization"] == expected
    assert all(not name.startswith("proxy") for name in forge.requests[0].headers)


def test_a_proxy_asking_for_credentials_is_a_failure_with_a_hint_and_no_password(forge, proxies, monkeypatch):
    proxy = proxies.start(credentials="it:right")
    via(proxy.url.replace("http://", "http://it:wr0ng@"), monkeypatch)
    with pytest.raises(FetchError) as caught:
        fetch_keys("gh:alice")
    message = str(caught.value)
    assert caught.value.exit_code == ExitCode.FAILURE
    assert f"{forge.url}/alice.keys: the proxy refused the connection (HTTP 407 Proxy Authentication " \
           f"Required) (through the proxy {proxy.url})" in message
    assert "http://USER:PASSWORD@HOST:PORT" in caught.value.hint
    assert "wr0ng" not in message + caught.value.hint and REFUSAL_WORDS not in message
    assert forge.requests == []


def test_a_proxy_refusing_the_host_is_a_failure_in_standard_words(forge, proxies, monkeypatch):
    proxy = proxies.start(status=403)
    via(proxy, monkeypatch)
    with pytest.raises(FetchError, match=r"the proxy refused the connection \(HTTP 403 Forbidden\)") as caught:
        fetch_keys("gh:alice")
    assert REFUSAL_WORDS not in str(caught.value) and caught.value.hint is None


def test_a_proxy_nobody_listens_on_is_named_in_the_failure(forge, monkeypatch):
    port = free_port()
    via(f"http://127.0.0.1:{port}", monkeypatch)
    with pytest.raises(FetchError, match=rf"connection was refused \(through the proxy http://127.0.0.1:{port}\)"):
        fetch_keys("gh:alice")


def test_a_silent_proxy_hits_the_deadline_and_is_hung_up_on(forge, proxies, monkeypatch):
    """The proxy never answers, so only the deadline can end the fetch; what is asserted is that it did and
    that the connection was cut, not how long it took (a loaded host may not even connect within 1 s: then
    the next attempt has a longer deadline)."""

    def attempt(deadline: float):
        proxy = proxies.start(silent=True)
        via(proxy, monkeypatch)
        with pytest.raises(FetchError, match=f"no complete answer within {deadline:g} seconds"):
            fetch_keys("gh:alice", timeout=deadline)
        return proxy

    proxy = first_cut(attempt, lambda proxy: proxy.hung_up.wait(CUT_WITHIN), SILENT_DEADLINES)
    assert [connect.method for connect in proxy.connects] == ["CONNECT"]  # it was the tunnel that was cut


def test_an_unusable_proxy_setting_is_refused_once_before_any_fetch(forge, monkeypatch):
    serve(forge, "/alice.keys", lines(bare(keyfactory.public_line())))
    via("socks5://proxy.corp:1080", monkeypatch)
    fetcher = KeyFetcher()
    from provision.core.credentials.keysources import parse_key_source

    with pytest.raises(UsageError, match="socks5://"):
        fetcher.prefetch([parse_key_source("gh:alice"), parse_key_source("gh:bob")])
    assert forge.requests == []


def test_a_single_fetch_with_an_unusable_proxy_setting_is_a_usage_error_without_the_password(forge, monkeypatch):
    via("socks5://user:s3cret@proxy.corp:1080", monkeypatch)
    with pytest.raises(UsageError, match="socks5://, which is not supported") as caught:
        fetch_keys("gh:alice")
    assert caught.value.exit_code == ExitCode.USAGE and "s3cret" not in str(caught.value)
    assert forge.requests == []
