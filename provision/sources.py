"""Read secrets and keys from where the person put them: stdin, files. Shared by flags, wizard and batch.

Each reader caps what it reads, accepts exactly one line where one line is expected, and never echoes
what it read in an error.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from provision.errors import UsageError

if TYPE_CHECKING:
    from provision.core.credentials import AuthorizedKey
    from provision.secret import Secret

_MAX_SECRET_FILE = 64 * 1024
_MAX_KEY_FILE = 1 << 20


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
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if "\n" in text or "\r" in text:
        raise UsageError(f"{what} must be exactly one line")
    return text


def read_password_stream(stream: BinaryIO, what: str = "the password on standard input") -> str:
    from provision.core.credentials import MAX_PASSWORD_BYTES, check_password

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
    from provision.core.credentials import check_password

    data = read_small_file(path, _MAX_SECRET_FILE, "password file", secret=True)
    password = single_line(data, f"password file {path}")
    check_password(password)
    return password


def read_password_hash_file(path: Path) -> Secret:
    from provision.core.credentials import validate_password_hash

    data = read_small_file(path, _MAX_SECRET_FILE, "password hash file", secret=True)
    try:
        return validate_password_hash(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"password hash file {path} is not text") from None
    except UsageError as exc:
        raise UsageError(f"password hash file {path}: {exc.message}") from None


def read_key_files(paths: list[Path]) -> list[AuthorizedKey]:
    from provision.core.credentials import merge_keys, parse_authorized_keys

    keys: list[AuthorizedKey] = []
    for path in paths:
        data = read_small_file(path, _MAX_KEY_FILE, "SSH key file")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"SSH key file {path} is not text") from None
        keys = merge_keys(keys, parse_authorized_keys(text, str(path)), replace=False)
    return keys


def read_netbird_setup_key_file(path: Path) -> Secret:
    from provision.core.credentials import validate_netbird_setup_key

    data = read_small_file(path, 4096, "Netbird setup key file", secret=True)
    return validate_netbird_setup_key(data.decode("utf-8", "replace"))
