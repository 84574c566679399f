"""Fetch the SSH public keys of a key source (core.credentials.keysources): gh:USER, gl:USER or an https URL.

The fetch is httpsget's: HTTPS with certificate checks, one 10 s deadline, a 1 MiB cap, https-only redirects.
What comes back is judged by keysources.keys_from_body, as a key file's lines are.

Errors: a user that does not exist (404) or has no keys, a web page or a private key served, a bad key line are
UsageErrors (exit 2: the input is wrong); network trouble is httpsget.FetchError (exit 1). None echoes what the
server sent.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

from provision import __version__
from provision.core.credentials.keysources import (
    GITHUB_URL_ENV,
    GITLAB_URL_ENV,
    FetchedKeys,
    KeySource,
    keys_from_body,
    not_found_message,
    parse_key_source,
)
from provision.errors import ProvisionError, UsageError
from provision.fetch.httpsget import DEFAULT_MAX_BYTES, DEFAULT_TIMEOUT, HTTPStatusError, https_get
from provision.fetch.proxy import proxy_for

__all__ = ["GITHUB_URL_ENV", "GITLAB_URL_ENV", "KeyFetcher", "fetch_keys"]

MAX_KEYS_BYTES = DEFAULT_MAX_BYTES  # 1 MiB, as for a key file
USER_AGENT = f"zvm-provision/{__version__} (SSH key import)"
_NOT_FOUND = frozenset({404, 410})
PREFETCH_WORKERS = 8  # fetches at once in a batch: polite to a forge, and an outage costs a few deadlines


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
                             user_agent=USER_AGENT, accept="text/plain", environ=environ)
    except HTTPStatusError as exc:
        if exc.status not in _NOT_FOUND:
            raise
        raise UsageError(not_found_message(source, exc.url, exc.status)) from None
    keys = keys_from_body(source, response.url, response.body, response.content_type)
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
            done = self._done[source.identity] = self._fetch_once(source)
        if isinstance(done, ProvisionError):
            raise done
        return FetchedKeys(source=source, final_url=done.final_url, keys=done.keys)

    def prefetch(self, sources: Iterable[KeySource], *, workers: int = PREFETCH_WORKERS) -> None:
        """Fetch the distinct sources not fetched yet, `workers` at a time, so that a batch of many users waits
        for the slowest fetches, not for their sum (an unreachable forge costs one deadline per round, not one
        per user). Failures are kept, to be raised by fetch()."""
        todo: dict[str, KeySource] = {}
        for source in sources:
            if source.identity not in self._done:
                todo.setdefault(source.identity, source)
        if not todo:
            return
        for source in todo.values():  # an unusable proxy setting: refused once here, not once per row
            proxy_for(source.url, os.environ if self._environ is None else self._environ)
        with ThreadPoolExecutor(min(workers, len(todo)), thread_name_prefix="zvm-keys") as pool:
            for identity, done in zip(todo, pool.map(self._fetch_once, todo.values()), strict=True):
                self._done[identity] = done  # only this thread writes the cache

    def _fetch_once(self, source: KeySource) -> FetchedKeys | ProvisionError:
        try:
            return fetch_keys(source, timeout=self._timeout, context=self._context, environ=self._environ)
        except ProvisionError as exc:
            return exc
