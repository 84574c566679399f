"""Read what the person gives on this machine: secrets and keys from stdin and files. Shared by the flags,
the wizard and batch.

Each reader caps what it reads, accepts exactly one line where one line is expected, refuses a secret file
that others can read, and never echoes what it read in an error.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

from provision.core.credentials.keysources import (
    FetchedKeys,
    KeySource,
    is_remote_key_source,
    parse_key_source,
)
from provision.core.credentials.netbird import validate_netbird_setup_key
from provision.core.credentials.passwords import MAX_PASSWORD_BYTES, check_password, validate_password_hash
from provision.core.credentials.sshkeys import AuthorizedKey, merge_keys, parse_authorized_keys
from provision.core.text import one_line
from provision.errors import UsageError
from provision.secret import Secret

_MAX_SECRET_FILE = 64 * 1024
_MAX_KEY_FILE = 1 << 20

# Fetches one gh:/gl:/https key source (fetch.forgekeys.KeyFetcher.fetch). Passed in, so that this module
# never touches the network itself.
KeyFetch = Callable[[KeySource], FetchedKeys]


def others_can_read(path: Path, mode: int, what: str) -> str | None:
    """Why a file holding a secret is too open, with the chmod that fixes it; None if only its owner reads it."""
    readers = [who for bit, who in ((0o040, "its group"), (0o004, "every user")) if mode & bit]
    if not readers:
        return None
    who = " and ".join(readers)
    return (f"{what} {path} holds a secret, but {who} can read it (mode {mode & 0o777:04o}); "
            f"run: chmod go-rwx {shlex.quote(str(path))}")


def read_small_file(path: Path, limit: int, what: str, *, secret: bool = False) -> bytes:
    """The file's bytes, at most `limit`. A `secret` file that its group or other users can read is refused."""
    try:
        if not path.is_file():
            raise UsageError(f"{what} {path}: not a regular file" if path.exists() else f"{what} {path}: no such file")
        with path.open("rb") as handle:
            if secret:  # the mode of the file opened, not of whatever the path names a moment later
                problem = others_can_read(path, os.fstat(handle.fileno()).st_mode, what)
                if problem:
                    raise UsageError(problem)
            data = handle.read(limit + 1)
    except OSError as exc:
        raise UsageError(f"{what} {path}: cannot read it ({exc.strerror})") from None
    if len(data) > limit:
        raise UsageError(f"{what} {path} is larger than {limit} bytes; is it the right file?")
    return data


def single_line(data: bytes, what: str) -> str:
    """Exactly one line: one trailing newline (\\n or \\r\\n) is allowed, nothing after it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{what} is not valid UTF-8 text") from None
    return one_line(text, what, breaks="\n\r")  # a password may hold any other character


def read_password_stream(stream: BinaryIO, what: str = "the password on standard input") -> str:
    data = stream.read(MAX_PASSWORD_BYTES + 3)
    if len(data) > MAX_PASSWORD_BYTES + 2:
        raise UsageError(f"{what} is longer than {MAX_PASSWORD_BYTES} bytes")
    password = single_line(data, what)
    check_password(password)
    return password


def read_password_stdin() -> str:
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError("--password-stdin reads the password from a pipe, e.g. `pass show zvm | zvm-provision ...`")
    return read_password_stream(sys.stdin.buffer)


def read_password_file(path: Path) -> str:
    data = read_small_file(path, _MAX_SECRET_FILE, "password file", secret=True)
    password = single_line(data, f"password file {path}")
    check_password(password)
    return password


def read_password_hash_file(path: Path) -> Secret:
    data = read_small_file(path, _MAX_SECRET_FILE, "password hash file", secret=True)
    try:
        return validate_password_hash(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"password hash file {path} is not text") from None
    except UsageError as exc:
        raise UsageError(f"password hash file {path}: {exc.message}") from None


def read_key_file(path: Path) -> list[AuthorizedKey]:
    """Every key of a .pub or authorized_keys file; any line that is not an acceptable key is refused."""
    data = read_small_file(path, _MAX_KEY_FILE, "SSH key file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"SSH key file {path} is not text") from None
    return parse_authorized_keys(text, str(path))


def read_key_files(paths: Sequence[Path]) -> list[AuthorizedKey]:
    """The keys of every file, de-duplicated by key (the first occurrence wins)."""
    keys: list[AuthorizedKey] = []
    for path in paths:
        keys = merge_keys(keys, read_key_file(path), replace=False)
    return keys


def read_signer_files(paths: Sequence[Path]) -> tuple[AuthorizedKey, ...]:
    """The release signers' keys (--update-signer KEY.pub, repeatable): public key files, without options."""
    keys: list[AuthorizedKey] = []
    for path in paths:
        found = read_key_file(path)
        if any(key.options is not None for key in found):
            raise UsageError(f"release signer file {path} gives a key with authorized_keys options",
                             hint="give the plain public key (.pub) the signer signs with")
        keys = merge_keys(keys, found, replace=False)
    return tuple(keys)


def read_key_sources(
    entries: Sequence[str], fetch: KeyFetch | None
) -> tuple[list[AuthorizedKey], list[FetchedKeys]]:
    """The keys of every --ssh-key entry, in order and de-duplicated: files read here, gh:USER, gl:USER and
    https URLs fetched through `fetch`. Every file is read and every source checked before the first fetch,
    so a typo is reported at once rather than after a slow server."""
    given: list[list[AuthorizedKey] | KeySource] = []
    for entry in entries:
        if is_remote_key_source(entry):
            given.append(parse_key_source(entry))
        else:
            given.append(read_key_file(Path(entry)))
    keys: list[AuthorizedKey] = []
    fetched: list[FetchedKeys] = []
    for item in given:
        if isinstance(item, KeySource):
            if fetch is None:
                raise UsageError(f"{item.shown}: keys cannot be fetched here; give a key file")
            served = fetch(item)
            fetched.append(served)
            item = list(served.keys)
        keys = merge_keys(keys, item, replace=False)
    return keys, fetched


def read_netbird_setup_key_file(path: Path) -> Secret:
    data = read_small_file(path, 4096, "Netbird setup key file", secret=True)
    return validate_netbird_setup_key(data.decode("utf-8", "replace"))
