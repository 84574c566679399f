"""Batch's manifest, read from this machine: the file, every key file its rows name, and the gh:/gl:/https
sources fetched (only the shard's own with --shard); core.manifest checks the rows against what was read."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from provision.core.credentials.keysources import FetchedKeys, KeySource
from provision.core.credentials.sshkeys import AuthorizedKey
from provision.core.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    holds_secrets,
    key_sources,
    named_keys,
    read_rows,
    shard_slice,
    validate_rows,
)
from provision.core.spreadsheet import SAVE_AS_UTF8, utf16_encoding
from provision.errors import ProvisionError, UsageError
from provision.host.reading import others_can_read, read_key_file, read_small_file


class ManifestFetcher(Protocol):
    """What load_manifest needs of fetch.forgekeys.KeyFetcher: every source fetched at once, then each row's."""

    def prefetch(self, sources: Sequence[KeySource]) -> None: ...
    def fetch(self, source: KeySource) -> FetchedKeys: ...


def load_manifest(path: Path, fetcher: ManifestFetcher | None = None, *, shard: tuple[int, int] | None = None
                  ) -> Manifest:
    """Read and validate the whole batch manifest; ManifestError names every bad row. Key sources (gh:USER,
    gl:USER, https URLs) are fetched through `fetcher` (a KeyFetcher: each distinct source once, several at
    a time, before any row is validated); one that fails on the way makes the error exit 1, as a network
    error does. With `shard` (K, N), only the sources of the K-th slice's rows are fetched: the other rows
    are checked without the network (their shards fetch them), so N shards ask a forge once per user in all."""
    data = read_small_file(path, MAX_MANIFEST_BYTES, "manifest")
    utf16 = utf16_encoding(data)  # Excel's "Unicode text"; without a byte-order mark it would decode as UTF-8
    if utf16:
        raise UsageError(f"manifest {path} is {utf16.described} (Excel's \"Unicode text\" is UTF-16), not UTF-8",
                         hint=f"{SAVE_AS_UTF8}; or convert it: iconv -f {utf16.iconv_name} -t UTF-8 {path.name} "
                         "> NEW.csv")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"manifest {path} is not UTF-8 text", hint=SAVE_AS_UTF8) from None
    raw_rows = read_rows(path, text)
    # With no bad row (else nothing is seeded), the rows are the users: the slice of rows is the shard's users.
    wanted = key_sources(raw_rows if shard is None else shard_slice(raw_rows, *shard))
    wanted_ids = {source.identity for source in wanted}
    if fetcher is not None:
        fetcher.prefetch(wanted)
    files, sources = named_keys(path.parent, raw_rows)
    fetched, network_failed = _fetched(sources, fetcher, wanted_ids) if fetcher is not None else (None, False)
    users, problems = validate_rows(path.parent, raw_rows, _read(files), fetched)
    if holds_secrets(raw_rows):
        # Password hashes and Netbird setup keys are secrets: only the manifest's owner may read it, as for
        # --password-file (even a row refused for another reason may hold one).
        try:
            problem = others_can_read(path, os.stat(path).st_mode, "the manifest")
        except OSError:
            problem = None  # it was just read; a file gone meanwhile is refused by whatever reads it next
        if problem:
            problems.append(("manifest", problem))
    if problems:
        raise ManifestError(path, problems, network=network_failed)
    return Manifest(path, tuple(users), hashlib.sha256(data).hexdigest(), fetched_shard=shard)


def _read(files: Sequence[Path]) -> dict[Path, list[AuthorizedKey] | ProvisionError]:
    """Each key file's keys, or why it could not be read (that row's problem); a file several rows name is
    read once."""
    read: dict[Path, list[AuthorizedKey] | ProvisionError] = {}
    for path in files:
        if path not in read:
            try:
                read[path] = read_key_file(path)
            except UsageError as exc:
                read[path] = exc
    return read


def _fetched(sources: Sequence[KeySource], fetcher: ManifestFetcher, wanted_ids: set[str]
             ) -> tuple[dict[str, list[AuthorizedKey] | ProvisionError], bool]:
    """Each source's keys (none for a source only another shard's rows name: that shard fetches it), or the
    error its fetch raised; and whether one failed on the network (exit 1, not 2)."""
    fetched: dict[str, list[AuthorizedKey] | ProvisionError] = {}
    network_failed = False
    for source in sources:
        if source.identity in fetched:
            continue
        if source.identity not in wanted_ids:
            fetched[source.identity] = []
            continue
        try:
            fetched[source.identity] = list(fetcher.fetch(source).keys)
        except ProvisionError as exc:
            fetched[source.identity] = exc
            network_failed = network_failed or not isinstance(exc, UsageError)
    return fetched, network_failed
