"""core/urls.py: how a URL is shown in a message (check_https_url's refusals are tested with their callers:
tests/core/credentials/test_keysources.py, tests/core/credentials and tests/fetch)."""

from __future__ import annotations

import pytest

from provision.core.urls import MALFORMED_URL, display_url


@pytest.mark.parametrize(
    "url, shown",
    [
        ("https://github.com/alice.keys", "https://github.com/alice.keys"),
        ("https://user:s3cret@keys.example:8443/a?token=abc#top", "https://keys.example:8443/a?..."),
        ("https://[2001:db8::1]:8443/k", "https://[2001:db8::1]:8443/k"),  # the port stays apart from the address
        ("https://[2001:db8::1]/k", "https://[2001:db8::1]/k"),
        ("https://keys.example/a b\x1b[2J", "https://keys.example/a%20b%1B[2J"),  # no escape code reaches a terminal
        ("https://keys.example:99999/", MALFORMED_URL),
    ],
)
def test_display_url(url, shown):
    assert display_url(url) == shown
