"""Read what the person gives on this machine: secrets and keys from stdin and files, the batch manifest, and
the public keys in ~/.ssh. Shared by the flags, the wizard and batch.

Each reader caps what it reads, accepts exactly one line where one line is expected, refuses a secret file
that others can read, and never echoes what it read in an error.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from provision.core.credentials.identity import validate_hostname
from provision.core.credentials.keysources import (
    FetchedKeys,
    KeySource,
    is_remote_key_source,
    parse_key_source,
)
from provision.core.credentials.netbird import validate_management_url, validate_netbird_setup_key
from provision.core.credentials.passwords import MAX_PASSWORD_BYTES, check_password, validate_password_hash
from provision.core.credentials.sshkeys import AuthorizedKey, merge_keys, parse_authorized_keys
from provision.core.keyremoval import parse_selector
from provision.core.manifest import (
    MAX_MANIFEST_BYTES,
    Manifest,
    ManifestError,
    holds_secrets,
    key_sources,
    read_rows,
    shard_slice,
    validate_rows,
)
from provision.core.record import operator_from, validate_operator
from provision.core.spreadsheet import SAVE_AS_UTF8, utf16_encoding
from provision.core.request import PasswordChoice, SeedFlags
from provision.core.text import one_line
from provision.errors import ProvisionError, UsageError
from provision.secret import Secret

_MAX_SECRET_FILE = 64 * 1024
_MAX_KEY_FILE = 1 << 20

# Fetches one gh:/gl:/https key source (fetch.forgekeys.KeyFetcher.fetch). Passed in, so that this module
# never touches the network itself.
KeyFetch = Callable[[KeySource], FetchedKeys]


class ManifestFetcher(Protocol):
    """What load_manifest needs of fetch.forgekeys.KeyFetcher: every source fetched at once, then each row's."""

    def prefetch(self, sources: Sequence[KeySource]) -> None: ...
    def fetch(self, source: KeySource) -> FetchedKeys: ...


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
                raise UsageError(f"{item.spec}: keys cannot be fetched here; give a key file")
            served = fetch(item)
            fetched.append(served)
            item = list(served.keys)
        keys = merge_keys(keys, item, replace=False)
    return keys, fetched


def read_netbird_setup_key_file(path: Path) -> Secret:
    data = read_small_file(path, 4096, "Netbird setup key file", secret=True)
    return validate_netbird_setup_key(data.decode("utf-8", "replace"))


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
    network_failed = False
    # With no bad row (else nothing is seeded), the rows are the users: the slice of rows is the shard's users.
    wanted = key_sources(raw_rows if shard is None else shard_slice(raw_rows, *shard))
    wanted_ids = {source.identity for source in wanted}
    if fetcher is not None:
        fetcher.prefetch(wanted)

    def fetch(source: KeySource) -> list[AuthorizedKey]:
        nonlocal network_failed
        assert fetcher is not None
        if source.identity not in wanted_ids:
            return []  # only another shard's rows name it: that shard fetches it
        try:
            return list(fetcher.fetch(source).keys)
        except UsageError:
            raise
        except ProvisionError:
            network_failed = True
            raise

    users, problems = validate_rows(path.parent, raw_rows, read_key_file, fetch if fetcher else None)
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


def find_local_public_keys(home: Path) -> list[tuple[Path, AuthorizedKey]]:
    """The keys in ~/.ssh/*.pub that parse; unreadable or odd files are skipped (a path can be given)."""
    found: list[tuple[Path, AuthorizedKey]] = []
    ssh_dir = home / ".ssh"
    if not ssh_dir.is_dir():
        return found
    for path in sorted(ssh_dir.glob("*.pub")):
        try:
            keys = read_key_files([path])
        except UsageError:
            continue
        if len(keys) == 1:  # a .pub holds one key; anything else is not what the checklist offers
            found.append((path, keys[0]))
    return found


def default_key(found: Sequence[tuple[Path, AuthorizedKey]]) -> Path | None:
    """The key ticked at first: ~/.ssh/id_ed25519.pub (ssh-keygen's default) if offered, else the newest .pub."""
    paths = [path for path, _ in found]
    for path in paths:
        if path.name == "id_ed25519.pub":
            return path
    newest = None
    for path in paths:
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        if newest is None or mtime > newest[0]:
            newest = (mtime, path)
    return newest[1] if newest else None


def free_key_path(home: Path) -> Path:
    """Where a new key pair goes: ~/.ssh/zvm_ed25519, or _2, _3... when taken."""
    base = home / ".ssh" / "zvm_ed25519"
    candidate, n = base, 2
    while os.path.lexists(candidate) or os.path.lexists(f"{candidate}.pub"):
        candidate, n = base.with_name(f"{base.name}_{n}"), n + 1
    return candidate


def operator(given: str | None) -> str:
    """Who seeds, for the seeding record: --operator TEXT (checked), else `user@host` of this machine."""
    if given is not None:
        return validate_operator(given)
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # no name for this uid (a container): the record says so
        user = "unknown"
    return operator_from(user, socket.gethostname())


def read_seed_flags(
    *,
    password_stdin: bool = False,
    password_file: Path | None = None,
    password_hash_file: Path | None = None,
    no_password: bool = False,
    ssh_keys: Sequence[str] | None = None,
    fetch_keys: KeyFetch | None = None,
    replace_keys: bool = False,
    remove_keys: Sequence[str] | None = None,
    netbird_setup_key_file: Path | None = None,
    netbird_management_url: str | None = None,
    no_host_keys: bool = False,
    new_host_keys: bool = False,
    new_machine_id: bool = False,
    hostname: str | None = None,
    operator_given: str | None = None,
) -> SeedFlags:
    """The seed command's flags, every file read, every key source fetched (through `fetch_keys`) and every
    value checked: bad input fails here, before the image is opened. A plain password is kept (as a Secret)
    to be hashed while the appliance starts."""
    chosen = [name for name, given in (
        ("--password-stdin", password_stdin), ("--password-file", password_file is not None),
        ("--password-hash-file", password_hash_file is not None), ("--no-password", no_password),
    ) if given]
    if len(chosen) > 1:
        raise UsageError(f"choose one password source, not {' and '.join(chosen)}")
    if no_host_keys and new_host_keys:
        raise UsageError("--no-host-keys and --new-host-keys contradict each other")
    if replace_keys and remove_keys:
        raise UsageError("--replace-keys already takes out every key the image holds; drop --remove-key")
    selectors = tuple(parse_selector(text) for text in remove_keys or ())
    plain = None
    password = None
    if password_stdin:
        plain = Secret(read_password_stdin())
    elif password_file is not None:
        plain = Secret(read_password_file(password_file))
    elif password_hash_file is not None:
        password = PasswordChoice.from_hash(read_password_hash_file(password_hash_file))
    elif no_password:
        password = PasswordChoice.locked()
    setup_key = read_netbird_setup_key_file(netbird_setup_key_file) if netbird_setup_key_file else None
    url = validate_management_url(netbird_management_url) if netbird_management_url is not None else None
    keys, fetched = read_key_sources(ssh_keys, fetch_keys) if ssh_keys else (None, [])  # the network: last
    return SeedFlags(
        password_plain=plain,
        password=password,
        keys=tuple(keys) if keys is not None else None,
        replace_keys=replace_keys,
        remove_keys=selectors,
        fetched=tuple(fetched),
        host_keys=not no_host_keys,
        new_host_keys=new_host_keys,
        new_machine_id=new_machine_id,
        netbird_setup_key=setup_key,
        netbird_management_url=url,
        hostname=validate_hostname(hostname, "--hostname") if hostname is not None else None,
        operator=operator(operator_given),
    )
