"""Where SSH public keys may come from besides a file: `gh:USER` (GitHub), `gl:USER` (gitlab.com), or an https
URL that serves authorized_keys text (a self-hosted GitLab, Gitea or Forgejo answers `https://HOST/USER.keys`).

Pure: this reads a key source as written and judges what a server sent; the fetch itself is provision.fetch's.
What comes back goes through the same validation as a key file (sshkeys.parse_authorized_keys). Anything that
is not a key source of ours is a file path, read as before.

Errors: a bad user name, plain http, a URL with a password (before any network access); a web page or a private
key served, no key, a bad key line, a key line with options (after the fetch): UsageErrors (exit 2: the input is wrong), none echoing
what the server sent.

The base URLs can be pointed elsewhere (tests, mirrors) with ZVM_PROVISION_GITHUB_URL and
ZVM_PROVISION_GITLAB_URL, e.g. `https://gitlab.example.org` for `gl:` on a self-hosted GitLab.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from provision.core.credentials.sshkeys import AuthorizedKey, parse_authorized_keys
from provision.core.urls import MALFORMED_URL, check_https_url, display_url
from provision.errors import UsageError

GITHUB_URL_ENV = "ZVM_PROVISION_GITHUB_URL"
GITLAB_URL_ENV = "ZVM_PROVISION_GITLAB_URL"
KEY_SOURCE_FORMS = "a .pub or authorized_keys file, gh:USER, gl:USER or an https:// URL"
# GitHub and GitLab serve bare keys: options (command=, from=...) from a server would put a forced command or a
# restriction on someone's real key unseen, so a source that serves them is refused, never its line echoed.
SERVED_OPTIONS = ("the key is served with authorized_keys options (such as command= or from=), which GitHub and "
                  "GitLab never serve: the source is broken or hostile; refused (the line is not shown)")
# Markers of a private key (PEM, OpenSSH, PuTTY): checked before parsing, to say "served" rather than "given".
_PRIVATE_KEY_MARKERS = ("PRIVATE KEY-----", "PuTTY-User-Key-File-")


@dataclass(frozen=True)
class _Forge:
    prefix: str
    name: str
    default_url: str
    env: str
    user_re: re.Pattern[str]
    max_chars: int
    rule: str  # the naming rule, for the message that refuses a name

    def user_problem(self, user: str) -> str | None:
        if not user:
            return "no user name after the colon"
        if len(user) > self.max_chars or not self.user_re.fullmatch(user):
            return self.rule
        if self.prefix == "gl" and user.lower().endswith((".git", ".atom")):
            return self.rule
        return None


_FORGES = {
    forge.prefix: forge
    for forge in (
        _Forge(
            prefix="gh", name="GitHub", default_url="https://github.com", env=GITHUB_URL_ENV,
            user_re=re.compile(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*", re.ASCII), max_chars=39,
            rule="GitHub user names have 1 to 39 letters, digits and single hyphens, "
                 "and do not start or end with a hyphen",
        ),
        # GitLab's historical namespace rule, which names made before its stricter 2024 rule still follow.
        _Forge(
            prefix="gl", name="GitLab", default_url="https://gitlab.com", env=GITLAB_URL_ENV,
            user_re=re.compile(r"[A-Za-z0-9_.](?:[A-Za-z0-9_.-]*[A-Za-z0-9_-])?", re.ASCII), max_chars=255,
            rule="GitLab user names have letters, digits, '_', '.' and '-', do not start with '-' "
                 "and do not end with '.', '.git' or '.atom'",
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class KeySource:
    """Where keys come from: `spec` as the person wrote it, the https `url` it names, and for gh:/gl: the
    forge ("GitHub", "GitLab") and user name."""

    spec: str
    url: str
    forge: str | None = None
    user: str | None = None

    @property
    def label(self) -> str:
        """How messages name the source: "GitHub user alice", or the URL."""
        return f"{self.forge} user {self.user}" if self.forge else display_url(self.url)

    @property
    def shown(self) -> str:
        """The source as messages and the plan show it: as written (gh:alice), a URL without its query (it may
        hold a token: ?private_token=...) through core.urls.display_url."""
        return self.spec if self.forge else display_url(self.url)

    @property
    def identity(self) -> str:
        """Equal for sources that name the same keys: forge user names are case-insensitive."""
        if self.forge and self.user:
            return self.url.removesuffix(f"{self.user}.keys") + f"{self.user.lower()}.keys"
        return self.url


@dataclass(frozen=True)
class FetchedKeys:
    """The keys one source served, validated, in the order served. `final_url` is where they came from after
    redirects, for the plan and the report."""

    source: KeySource
    final_url: str
    keys: tuple[AuthorizedKey, ...]

    def describe(self) -> list[str]:
        """One line per key: what ssh-keygen -l prints, then where it came from."""
        return [f"{key.describe()}, from {self.source.shown}" for key in self.keys]


def is_remote_key_source(text: str) -> bool:
    """Whether `text` asks for keys from the network (gh:USER, gl:USER, https://..., and http://... so that it
    is refused with a reason instead of being looked up as a file). Whether it is valid is parse_key_source's
    job. A file whose name starts like that is given with a path: ./gh:alice."""
    prefix, colon, _ = text.strip().partition(":")
    return bool(colon) and prefix.lower() in ("gh", "gl", "https", "http")


def _base_url(forge: _Forge, environ: Mapping[str, str]) -> str:
    base = environ.get(forge.env) or forge.default_url
    check_https_url(base, f"{forge.env} ({display_url(base)})")
    parts = urlsplit(base)
    if parts.query or parts.fragment:
        raise UsageError(f"{forge.env} must be a base URL without '?' or '#', e.g. {forge.default_url}")
    return base.rstrip("/")


def parse_key_source(text: str, *, environ: Mapping[str, str] | None = None) -> KeySource:
    """A KeySource for gh:USER, gl:USER or an https URL; UsageError for a bad user name, plain http, a URL
    with a password... before any network access. `environ` (default os.environ) may override the base
    URLs."""
    spec = text.strip()
    if not is_remote_key_source(spec):
        raise UsageError(f"{spec!r} is not gh:USER, gl:USER or an https:// URL")
    prefix, _, rest = spec.partition(":")
    forge = _FORGES.get(prefix.lower())
    if forge is None:
        shown = display_url(spec)
        what = "the key URL" if shown == MALFORMED_URL else f"the key URL {shown}"
        return KeySource(spec=spec, url=check_https_url(spec, what))
    problem = forge.user_problem(rest)
    if problem:
        shown = rest if rest.isascii() and rest.isprintable() and len(rest) <= 80 else "(not shown)"
        raise UsageError(f"{prefix}:{shown} is not a valid {forge.name} user name: {problem}")
    base = _base_url(forge, os.environ if environ is None else environ)
    return KeySource(spec=spec, url=f"{base}/{rest}.keys", forge=forge.name, user=rest)


def not_found_message(source: KeySource, url: str, status: int) -> str:
    """What a 404 (or 410) means: the user, or the address, does not exist."""
    what = f"{source.forge} has no user {source.user}" if source.forge else f"{source.label} does not exist"
    return f"{what} ({url} answered HTTP {status})"


def _has_key_line(text: str) -> bool:
    return any(line.strip(" \t\r") and not line.strip(" \t\r").startswith("#") for line in text.split("\n"))


def keys_from_body(source: KeySource, final_url: str, body: bytes, content_type: str) -> list[AuthorizedKey]:
    """The keys in what `source` served (from `final_url`), validated as a key file's lines; UsageError for a
    web page, text that is not UTF-8, a private key, no key at all or a bad key line."""
    where = display_url(final_url)
    if content_type == "text/html":  # a login page, a profile page, a proxy's error page: not keys
        raise UsageError(
            f"{source.label}: {where} answered with a web page, not SSH keys; is the address right?"
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{source.label}: {where} did not answer with text (not UTF-8)") from None
    if any(marker in text for marker in _PRIVATE_KEY_MARKERS):
        raise UsageError(
            f"{source.label}: {where} serves a private key, not public keys; refused (it is not shown)",
            hint="whoever runs that server should remove the key, and its owner should consider it leaked",
        )
    if not _has_key_line(text):
        raise UsageError(f"{source.label} has no public SSH keys ({where} answered with no key)")
    named = where if source.forge is None else f"{source.spec} ({where})"
    return parse_authorized_keys(text, named, options_refused=SERVED_OPTIONS)
