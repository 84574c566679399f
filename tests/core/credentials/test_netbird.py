"""provision.core.credentials.netbird: the setup key and the management URL; refusals never echo a secret."""

from __future__ import annotations

import pytest

from provision.core.credentials import netbird
from provision.errors import UsageError


KEY = "A1B2C3D4-E5F6-4789-ABCD-0123456789EF"


def test_netbird_setup_key():
    assert netbird.validate_netbird_setup_key(KEY).reveal() == KEY
    assert netbird.validate_netbird_setup_key(f"  {KEY}\n").reveal() == KEY
    assert repr(netbird.validate_netbird_setup_key(KEY)) == "Secret('***')"


@pytest.mark.parametrize("text", [KEY.lower(), KEY[:13].lower() + KEY[13:], f" {KEY.lower()}\r\n"])
def test_netbird_setup_key_in_any_letter_case_is_stored_upper_case(text):
    assert netbird.validate_netbird_setup_key(text).reveal() == KEY


@pytest.mark.parametrize(
    "text", [KEY[:-1], KEY + "0", KEY.replace("-", ""), "{" + KEY + "}", f"{KEY[:8]}\n{KEY[9:]}",
             "G" + KEY[1:], "g" + KEY[1:].lower(), "", "not-a-key-at-all"],
)
def test_netbird_setup_key_refusals_never_echo(text):
    with pytest.raises(UsageError, match="must be a UUID such as XXXXXXXX-XXXX-") as info:
        netbird.validate_netbird_setup_key(text)
    message = str(info.value)
    if text:
        assert text not in message and text.upper() not in message and text[:8] not in message


def test_management_url():
    ok = "https://netbird.example.com:33073/api"
    assert netbird.validate_management_url(f"  {ok}\n") == ok
    assert netbird.validate_management_url("HTTPS://nb.example") == "HTTPS://nb.example"
    assert netbird.validate_management_url("https://[2001:db8::1]:443") == "https://[2001:db8::1]:443"


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://nb.example.com", "plain http, which anyone on the way can change"),
        ("ftp://nb.example.com", "https://"),
        ("nb.example.com", "https://"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://admin:pa55word@nb.example.com", "user name or password"),
        ("https://admin@nb.example.com", "user name or password"),
        ("https://nb.example.com/a b", "without spaces"),
        ("https://nb.example.com/\nX-Injected: 1", "without spaces"),
        ("https://nb.exämple.com", "plain ASCII"),
        ("https://nb.example.com:99999", "malformed"),
        ("https://nb.example.com:port", "malformed"),
        ("https://nb.example.com/" + "a" * 2100, "longer than 2048"),
    ],
)
def test_management_url_refusals(url, reason):
    with pytest.raises(UsageError, match=reason) as info:
        netbird.validate_management_url(url)
    assert "pa55word" not in str(info.value)
