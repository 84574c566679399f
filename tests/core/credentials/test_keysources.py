"""Tests for provision.core.credentials.keysources: a key source read as written (gh:USER, gl:USER, https URLs),
with no network. The fetches themselves are tested in tests/fetch/test_forgekeys.py."""

from __future__ import annotations

import pytest

from provision.core.credentials.keysources import (
    GITHUB_URL_ENV,
    GITLAB_URL_ENV,
    is_remote_key_source,
    parse_key_source,
)
from provision.errors import UsageError


@pytest.mark.parametrize(
    "text",
    ["gh:alice", "gl:bob", "GH:alice", "https://git.example.org/alice.keys", "HTTPS://x", "http://x/a.keys",
     "gh:", " gh:alice "],
)
def test_remote_sources_are_recognised(text):
    assert is_remote_key_source(text)


@pytest.mark.parametrize(
    "text",
    ["alice.pub", "/home/alice/.ssh/id_ed25519.pub", "./gh:alice", "keys/gl:bob", "ftp://x/a.keys", "gh",
     "github:alice", "C:\\keys\\a.pub", ""],
)
def test_anything_else_is_a_file(text):
    assert not is_remote_key_source(text)


def test_forge_specs_name_the_keys_url(monkeypatch):
    monkeypatch.delenv(GITHUB_URL_ENV, raising=False)
    monkeypatch.delenv(GITLAB_URL_ENV, raising=False)
    gh = parse_key_source("gh:Alice-1")
    assert (gh.url, gh.forge, gh.user) == ("https://github.com/Alice-1.keys", "GitHub", "Alice-1")
    assert gh.spec == "gh:Alice-1"
    gl = parse_key_source("gl:bob.smith_2")
    assert (gl.url, gl.forge, gl.user) == ("https://gitlab.com/bob.smith_2.keys", "GitLab", "bob.smith_2")
    url = parse_key_source("https://git.example.org/carol.keys")
    assert (url.url, url.forge, url.user) == ("https://git.example.org/carol.keys", None, None)


def test_base_urls_come_from_the_environment():
    env = {GITHUB_URL_ENV: "https://mirror.example/github/", GITLAB_URL_ENV: "https://gitlab.example.org"}
    assert parse_key_source("gh:alice", environ=env).url == "https://mirror.example/github/alice.keys"
    assert parse_key_source("gl:bob", environ=env).url == "https://gitlab.example.org/bob.keys"


@pytest.mark.parametrize("base", ["http://mirror.example", "https://mirror.example/?x=1", "ftp://mirror"])
def test_a_base_url_that_is_not_plain_https_is_refused(base):
    with pytest.raises(UsageError, match=GITHUB_URL_ENV):
        parse_key_source("gh:alice", environ={GITHUB_URL_ENV: base})


@pytest.mark.parametrize(
    "spec", ["gh:a", "gh:" + "a" * 39, "gh:a-b-c", "gh:0", "gl:_bob", "gl:bob_", "gl:b.o-b", "gl:a"]
)
def test_valid_user_names_are_accepted(spec):
    assert parse_key_source(spec, environ={}).user == spec[3:]


def test_a_url_with_a_password_is_refused_without_showing_it():
    with pytest.raises(UsageError, match="user name or password") as caught:
        parse_key_source("https://alice:hunter2secret@git.example.org/alice.keys")
    assert "hunter2secret" not in caught.value.message


def test_a_url_with_escape_codes_is_refused_without_sending_them_to_the_terminal():
    with pytest.raises(UsageError, match="plain ASCII") as caught:
        parse_key_source("https://git.example.org/\x1b[2J\x1b]0;owned\x07.keys")
    assert not any(ord(c) < 0x20 for c in caught.value.message)
    assert "https://git.example.org/%1B[2J%1B]0;owned%07.keys" in caught.value.message
