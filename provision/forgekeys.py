"""SSH public keys from where people keep them: `gh:USER` (GitHub), `gl:USER` (gitlab.com), or an https URL
that serves authorized_keys text (a self-hosted GitLab, Gitea or Forgejo answers `https://HOST/USER.keys`).

Anything else is not a key source of ours (a file path, read as today). The fetch itself is httpsget's: HTTPS
with certificate checks, one 10 s deadline, a 1 MiB cap, https-only redirects. What comes back goes through
the same validation as a key file (credentials.parse_authorized_keys).

Errors: a user that does not exist (404) or has no keys, a web page or a private key served, a bad key line
are UsageErrors (exit 2: the input is wrong); network trouble is httpsget.FetchError (exit 1). None echoes
what the server sent.

The base URLs can be pointed elsewhere (tests, mirrors) with ZVM_PROVISION_GITHUB_URL and
ZVM_PROVISION_GITLAB_URL, e.g. `https://gitlab.example.org` for `gl:` on a self-hosted GitLab.
"""

from __future__ import annotations

import os
import re
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from provision import __version__
from provision.credentials import AuthorizedKey, parse_authorized_keys
from provision.errors import ProvisionError, UsageError
from provision.httpsget import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    MALFORMED_URL,
    HTTPStatusError,
    check_https_url,
    display_url,
    https_get,
)

GITHUB_URL_ENV = "ZVM_PROVISION_GITHUB_URL"
GITLAB_URL_ENV = "ZVM_PROVISION_GITLAB_URL"
MAX_KEYS_BYTES = DEFAULT_MAX_BYTES  # 1 MiB, as for a key file
USER_AGENT = f"zvm-provision/{__version__} (SSH key import)"
_NOT_FOUND = frozenset({404, 410})
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
        return [f"{key.describe()}, from {self.source.spec}" for key in self.keys]


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


def _has_key_line(text: str) -> bool:
    return any(line.strip(" \t\r") and not line.strip(" \t\r").startswith("#") for line in text.split("\n"))


def _keys_from_body(source: KeySource, final_url: str, body: bytes, content_type: str) -> list[AuthorizedKey]:
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
    return parse_authorized_keys(text, named)


def fetch_keys(
    source: str | KeySource,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    context: ssl.SSLContext | None = None,
    environ: Mapping[str, str] | None = None,
) -> FetchedKeys:
    """Fetch and validate the keys of one source (a spec as written, or a parsed KeySource).

    `timeout` bounds the whole fetch; `context` defaults to the system's trust (SSL_CERT_FILE applies).
    UsageError: bad spec, no such user (404), no keys, a web page, a private key, a bad key line.
    httpsget.FetchError (exit 1): DNS, refused, TLS, timeout, oversize, a redirect to http, other HTTP
    errors."""
    if isinstance(source, str):
        source = parse_key_source(source, environ=environ)
    try:
        response = https_get(source.url, timeout=timeout, max_bytes=MAX_KEYS_BYTES, context=context,
                             user_agent=USER_AGENT, accept="text/plain")
    except HTTPStatusError as exc:
        if exc.status not in _NOT_FOUND:
            raise
        if source.forge:
            what = f"{source.forge} has no user {source.user}"
        else:
            what = f"{source.label} does not exist"
        raise UsageError(f"{what} ({exc.url} answered HTTP {exc.status})") from None
    keys = _keys_from_body(source, response.url, response.body, response.content_type)
    return FetchedKeys(source=source, final_url=response.url, keys=tuple(keys))


class KeyFetcher:
    """Fetches each distinct source once (batch: every row's sources, before any image is copied), and answers
    a repeated source, or the same forge user in another letter case, from what it fetched. A source that
    failed fails again with the same error, without another fetch."""

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        context: ssl.SSLContext | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._timeout = timeout
        self._context = context
        self._environ = environ
        self._done: dict[str, FetchedKeys | ProvisionError] = {}

    def fetch(self, source: str | KeySource) -> FetchedKeys:
        if isinstance(source, str):
            source = parse_key_source(source, environ=self._environ)
        done = self._done.get(source.identity)
        if done is None:
            try:
                done = fetch_keys(source, timeout=self._timeout, context=self._context)
            except ProvisionError as exc:
                done = exc
            self._done[source.identity] = done
        if isinstance(done, ProvisionError):
            raise done
        return FetchedKeys(source=source, final_url=done.final_url, keys=done.keys)

    def fetch_all(self, sources: Iterable[str | KeySource]) -> list[FetchedKeys]:
        """Each source's keys, in order; the first failure is raised."""
        return [self.fetch(source) for source in sources]
