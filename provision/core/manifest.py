"""The batch manifest: one row per employee, every row validated before anything is written.

CSV with a header (the documented format; `,`, `;` or tab as the header line shows, columns with neither a
header nor a cell ignored: core.spreadsheet), or TOML with the same fields in `[[user]]` tables:

    name,ssh_keys,password_hash,netbird_setup_key,netbird_management_url,hostname
    alice,keys/alice.pub,,,,
    bob,keys/bob.pub;keys/bob-laptop.pub,$6$rounds=656000$...,,,bob-workstation

`ssh_keys` names one or more key files separated by `;`, relative to the manifest's folder, or key sources
fetched over HTTPS (`gh:USER`, `gl:USER`, an https URL; core.credentials.keysources). An empty
`password_hash` means "generate a password". `hostname` (optional column) is the VM's name: given, it must be
a valid hostname as it is; empty or absent, it is `zvm-<name>` made valid (lower case, any other character
than a-z, 0-9 and '-' becomes '-', at most 63 characters). Two rows with one hostname are refused. Every
problem of every row is collected and reported together, by line number (CSV) or table number (TOML), and never
with a secret's value in it.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from provision.core.credentials.identity import HOSTNAME_RULE, hostname_from_name, hostname_problem
from provision.core.credentials.keysources import KeySource, is_remote_key_source, parse_key_source
from provision.core.credentials.netbird import validate_management_url, validate_netbird_setup_key
from provision.core.credentials.passwords import validate_password_hash
from provision.core.credentials.sshkeys import AuthorizedKey, merge_keys
from provision.core.spreadsheet import DELIMITERS, ascii_spelling, header_delimiter
from provision.core.text import plural, shown
from provision.errors import ExitCode, ProvisionError, UsageError
from provision.secret import Secret

T = TypeVar("T")
# What the rows' key files and gh:/gl:/https sources gave, read and fetched first (commands/batch/manifest.py;
# this module reads nothing): keys by file path and by source identity, or the error raised (the row's problem).
KeysRead = Mapping[Path, "list[AuthorizedKey] | ProvisionError"]
KeysFetched = Mapping[str, "list[AuthorizedKey] | ProvisionError"]
RawRow = tuple[str, "dict[str, str] | None", list[str]]  # where, the fields (None: unusable), problems

FIELDS = ("name", "ssh_keys", "password_hash", "netbird_setup_key", "netbird_management_url", "hostname")
REQUIRED_FIELDS = ("name", "ssh_keys")
NAME_ALIASES = ("username", "user", "login")  # common headers of the name column, read as `name` (batch --help)
SECRET_FIELDS = ("password_hash", "netbird_setup_key")
NAME_RE = re.compile(r"[A-Za-z0-9._-]+", re.ASCII)
MAX_NAME = 128
MAX_MANIFEST_BYTES = 16 << 20
MAX_ROWS = 10_000
_PLAIN_COLUMN_RE = re.compile(r"[a-z_ ]{1,40}")  # the header cells are lower-cased before they are checked


@dataclass(frozen=True)
class User:
    """One validated manifest row."""

    name: str
    keys: tuple[AuthorizedKey, ...]
    password_hash: Secret | None  # None: a password is generated
    netbird_setup_key: Secret | None
    netbird_management_url: str | None
    hostname: str  # the VM's name (the row's, or zvm-<name> made valid)

    @property
    def image_name(self) -> str:
        return f"{self.name}.qcow2"


@dataclass(frozen=True)
class Manifest:
    path: Path
    users: tuple[User, ...]
    sha256: str | None = None  # of the file's bytes: shards of one roll-out must have read the same manifest
    # Read for one shard: only its users' remote keys were fetched (batch/manifest.py); the others' users
    # carry their key files' keys only, and are not to be seeded from this reading.
    fetched_shard: tuple[int, int] | None = None

    def shard(self, index: int, count: int) -> tuple[User, ...]:
        """The index-th (1-based) of `count` contiguous, near-equal slices, in manifest order."""
        if self.fetched_shard not in (None, (index, count)):
            raise ValueError(f"this manifest was read for shard {self.fetched_shard}, not {(index, count)}")
        return tuple(shard_slice(self.users, index, count))


class ManifestError(UsageError):
    """The manifest has bad rows; `problems` lists every one as (where, reason)."""

    def __init__(self, path: Path, problems: list[tuple[str, str]], *, network: bool = False) -> None:
        rows = {where for where, _ in problems}
        lines = [f"{path}: {plural(len(rows), 'bad row')}; nothing was created:"]
        lines += [f"  {where}: {shown(reason, cap=1000)}" for where, reason in problems]  # escaped: one line
        hint = "fix every row listed, then run the same command again"
        if network:  # a key source could not be fetched: the rows may be right and the network wrong (exit 1)
            hint = "fix every row listed (or the network, for a fetch that failed), then run the same command again"
            self.exit_code = ExitCode.FAILURE
        super().__init__("\n".join(lines), hint=hint)
        self.problems = problems


def shard_slice(items: Sequence[T], index: int, count: int) -> Sequence[T]:
    """The index-th (1-based) of `count` contiguous, near-equal slices of `items`, in order (batch-report names
    a missing shard's rows with it)."""
    return items[(index - 1) * len(items) // count : index * len(items) // count]


def parse_shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"([0-9]{1,6})/([0-9]{1,6})", text.strip())
    if not match:
        raise UsageError(f"--shard must look like K/N (for example 2/4), not {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise UsageError(f"--shard {text}: K must be between 1 and N")
    return index, count


def read_rows(path: Path, text: str) -> list[RawRow]:
    """The manifest's rows as (where, fields or None, problems), from its text (`path`: for messages, and a
    .toml suffix means TOML)."""
    return _toml_rows(path, text) if path.suffix.lower() == ".toml" else _csv_rows(path, text)


def validate_rows(
    folder: Path, raw_rows: list[RawRow], files: KeysRead, fetched: KeysFetched | None = None
) -> tuple[list[User], list[tuple[str, str]]]:
    """Every row checked (key files relative to `folder`, as `files` holds what each gave; gh:/gl:/https
    sources as `fetched` holds them, None where nothing may be fetched): the users, and every problem of every
    row as (where, reason). `named_keys` says which files and sources the rows need."""
    problems: list[tuple[str, str]] = []
    users: list[User] = []
    first_seen: dict[str, str] = {}
    first_hostname: dict[str, str] = {}
    for where, row, row_problems in raw_rows:
        problems += [(where, reason) for reason in row_problems]
        if row is None:
            continue
        user, reasons = _validate_row(folder, row, files, fetched)
        name = row.get("name", "").strip()
        if name:
            key = name.casefold()  # alice and Alice would collide on a case-insensitive filesystem
            if key in first_seen:
                reasons.insert(0, f"duplicate name {name!r} (first used at {first_seen[key]})")
            else:
                first_seen[key] = where
        hostname = user.hostname if user is not None and not reasons else None
        if hostname is not None:  # one name per VM: Netbird and DHCP would show two machines as one
            if hostname in first_hostname:
                reasons.append(f"duplicate hostname {hostname!r} (first used at {first_hostname[hostname]})")
            else:
                first_hostname[hostname] = where
        problems += [(where, reason) for reason in reasons]
        if user is not None and not reasons:
            users.append(user)
    if not raw_rows:
        problems.append(("manifest", "no users: the manifest has a header but no rows"))
    return users, problems


def key_sources(raw_rows: list[RawRow]) -> list[KeySource]:
    """Every gh:/gl:/https key source the rows name, that can be read (a bad one is the row's problem, found
    by validate_rows), in order: what batch fetches before it validates the rows."""
    return _parsed_sources(entry for _, row, _ in raw_rows for entry in (row or {}).get("ssh_keys", "").split(";"))


def named_keys(folder: Path, raw_rows: list[RawRow]) -> tuple[list[Path], list[KeySource]]:
    """The key files (under `folder`) and the gh:/gl:/https sources validate_rows looks up: what is read and
    fetched first. An entry that looks like a secret, or a source that does not parse, is its row's problem."""
    entries = [entry for _, row, _ in raw_rows for entry in _key_entries(row or {})
               if not _LOOKS_SECRET_RE.search(entry)]
    return [folder / entry for entry in entries if not is_remote_key_source(entry)], _parsed_sources(entries)


def _parsed_sources(entries: Iterable[str]) -> list[KeySource]:
    found = []
    for entry in filter(is_remote_key_source, entries):
        with suppress(UsageError):
            found.append(parse_key_source(entry))
    return found


def holds_secrets(raw_rows: list[RawRow]) -> bool:
    """Whether any row, even one refused for another reason, gives a password hash or a setup key."""
    return any(row and any(row.get(f, "").strip() for f in SECRET_FIELDS) for _, row, _ in raw_rows)


# -- reading rows ---------------------------------------------------------------------------------


def _csv_rows(path: Path, text: str) -> list[RawRow]:
    lines = text.splitlines()
    header_line = next((line for line in lines if line.strip(" \t,;")), "")
    delimiter = header_delimiter(header_line, FIELDS + NAME_ALIASES)  # Excel writes ';' or tab in much of the world
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader, None)
        while header is not None and not [cell for cell in header if cell.strip()]:
            header = next(reader, None)  # blank lines before the header
    except csv.Error as exc:
        raise UsageError(f"manifest {path}: line {reader.line_num}: not valid CSV ({exc})") from None
    if header is None:
        raise UsageError(f"manifest {path} is empty; it needs a header line: {','.join(FIELDS)}")
    header_end = reader.line_num
    records = _csv_records(reader, header_end)
    # A spreadsheet exports its used range: columns with no header and no cell (name,ssh_keys,,) are none.
    empty = {n for n, cell in enumerate(header) if not cell.strip()
             and all(n >= len(cells) or not cells[n].strip() for _, cells, _ in records if cells is not None)}
    kept = [n for n in range(len(header)) if n not in empty]
    columns = ["name" if c in NAME_ALIASES else c for c in (header[n].strip().lower() for n in kept)]
    header_problems = []
    unknown = [_column_shown(n + 1, name) for n, name in zip(kept, columns, strict=True) if name not in FIELDS]
    if unknown:
        header_problems.append(f"unknown column(s) {', '.join(unknown)}; the columns are {', '.join(FIELDS)}")
    missing = [c for c in REQUIRED_FIELDS if c not in columns]
    if missing:
        header_problems.append(f"missing column(s) {', '.join(missing)}")
    if len(set(columns)) != len(columns):
        header_problems.append("a column appears twice")
    if header_problems:
        read = ", ".join(_column_shown(n + 1, cell.strip().lower()) for n, cell in enumerate(header))
        raise UsageError(f"manifest {path}: line {header_end} (header): " + "; ".join(header_problems)
                         + f" (the header as read, split at {DELIMITERS[delimiter]}: {read})")

    rows: list[RawRow] = []
    trailing = empty == set(range(len(kept), len(header)))  # a row may then stop before the empty columns
    for where, cells, problems in records:
        if cells is None:
            rows.append((where, None, problems))
        elif len(rows) >= MAX_ROWS:
            rows.append((where, None, [f"more than {MAX_ROWS} rows; split the manifest"]))
            break
        elif len(cells) == len(header) or (trailing and len(cells) == len(kept)):
            rows.append((where, dict(zip(columns, (cells[n] for n in kept), strict=True)), []))
        else:
            rows.append((where, None, [f"{len(cells)} fields where the header has {len(kept)}"]))
    return rows


def _csv_records(reader, previous_end: int) -> list[tuple[str, list[str] | None, list[str]]]:
    """The rows after the header as (where, cells or None, problems); blank lines and '#' comments left out."""
    records: list[tuple[str, list[str] | None, list[str]]] = []
    while len(records) <= MAX_ROWS:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            records.append((f"line {previous_end + 1}", None, [f"not valid CSV ({exc})"]))
            break
        where = f"line {previous_end + 1}"
        previous_end = reader.line_num
        if any(cell.strip() for cell in cells) and not cells[0].lstrip().startswith("#"):
            records.append((where, cells, []))
    return records


def _column_shown(number: int, name: str) -> str:
    """A header cell for a message: a manifest without its header line has a row there, with its hash and
    setup key, so only a name made of letters, '_' and spaces is shown."""
    return repr(name) if _PLAIN_COLUMN_RE.fullmatch(name) else f"column {number}"


def _toml_rows(path: Path, text: str) -> list[RawRow]:
    import tomllib

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"manifest {path}: not valid TOML ({exc})") from None
    tables = data.get("user")
    if not isinstance(tables, list) or set(data) - {"user"}:
        raise UsageError(f"manifest {path}: expected only [[user]] tables with the fields {', '.join(FIELDS)}")
    rows: list[RawRow] = []
    for number, table in enumerate(tables, start=1):
        where = f"[[user]] #{number}"
        if not isinstance(table, dict):
            rows.append((where, None, ["not a table"]))
            continue
        row: dict[str, str] = {}
        problems = []
        for key, value in (("name" if k in NAME_ALIASES else k, v) for k, v in table.items()):
            if key not in FIELDS:
                problems.append(f"unknown field {key!r}")
            elif key == "ssh_keys" and isinstance(value, list) and all(isinstance(v, str) for v in value):
                row[key] = ";".join(value)
            elif isinstance(value, str):
                row[key] = value
            else:
                problems.append(f"{key} must be a string" + (" or a list of strings" if key == "ssh_keys" else ""))
        rows.append((where, None if problems else row, problems))
    return rows


# -- validating one row ---------------------------------------------------------------------------


def _validate_row(
    folder: Path, row: dict[str, str], files: KeysRead, fetched: KeysFetched | None
) -> tuple[User | None, list[str]]:
    reasons: list[str] = []
    name = row.get("name", "").strip()
    if not name:
        reasons.append("name is empty")
    elif not name.isascii():
        reasons.append(_not_ascii(name))
    elif not NAME_RE.fullmatch(name) or name in (".", "..") or name.startswith((".", "-")):
        reasons.append(f"name {_cell(name)} may only hold ASCII letters, digits, '.', '_' and '-', and not start "
                       "with '.' or '-' (a file name beginning with '-' reads as an option in every shell, "
                       "and as a formula in a spreadsheet)")
    elif len(name) > MAX_NAME:
        reasons.append(f"name is longer than {MAX_NAME} characters")

    keys: list[AuthorizedKey] = []
    entries = _key_entries(row)
    if not entries:
        reasons.append("ssh_keys is empty: give at least one public key file, gh:USER, gl:USER or https URL")
    for entry in entries:
        if _LOOKS_SECRET_RE.search(entry):  # a shifted hash would be shown as the missing key file's path
            reasons.append(f"ssh_keys: {_cell(entry)} is no key file, gh:USER, gl:USER or https URL")
            continue
        try:
            keys = merge_keys(keys, _row_keys(folder, entry, files, fetched), replace=False)
        except ProvisionError as exc:  # a fetch that failed on the way (exit 1) is this row's problem too
            reasons.append(exc.message)

    password_hash = _optional_field(row, "password_hash", validate_password_hash, reasons)
    setup_key = _optional_field(row, "netbird_setup_key", validate_netbird_setup_key, reasons)
    url = _optional_field(row, "netbird_management_url", validate_management_url, reasons)
    default_hostname = hostname_from_name(name) if name else None
    hostname = _optional_field(row, "hostname", lambda text: _row_hostname(text, default_hostname), reasons)
    if hostname is None and not row.get("hostname", "").strip() and name:
        hostname = default_hostname
        if hostname is None:
            reasons.append(f"hostname: no valid hostname can be made from the name; give one ({HOSTNAME_RULE})")

    if reasons:
        return None, reasons
    assert hostname is not None
    return User(name, tuple(keys), password_hash, setup_key, url, hostname), []


def _not_ascii(name: str) -> str:
    """A name with a letter outside ASCII (it names the image file and the default hostname), with its ASCII
    spelling when that is a valid name."""
    spelt = ascii_spelling(name)
    suggestion = (f"; write it as {spelt!r}" if NAME_RE.fullmatch(spelt) and not spelt.startswith((".", "-"))
                  else "")
    return (f"name {_cell(name)} holds letters outside ASCII: a name may only hold the ASCII letters A-Z and a-z, "
            f"digits, '.', '_' and '-'{suggestion}")


def _key_entries(row: dict[str, str]) -> list[str]:
    return [part.strip() for part in row.get("ssh_keys", "").split(";") if part.strip()]


def _row_keys(folder: Path, entry: str, files: KeysRead, fetched: KeysFetched | None) -> list[AuthorizedKey]:
    source = parse_key_source(entry) if is_remote_key_source(entry) else None
    if source is not None and fetched is None:
        raise UsageError(f"{source.shown}: keys cannot be fetched here; give a key file")
    found = files[folder / entry] if source is None else fetched[source.identity]  # type: ignore[index]
    if isinstance(found, ProvisionError):
        raise found
    return found


def _row_hostname(text: str, default: str | None) -> str:
    """The hostname cell, checked as --hostname is; a refusal also says what an empty cell gives this row."""
    if problem := hostname_problem(text):
        hint = f"; or leave the cell empty for {default}" if default else ""
        raise UsageError(f"{_cell(text)} is refused: {problem}{hint}")
    return text


# A cell that looks like a password hash ($id$...) or a Netbird setup key (a UUID) is not shown, wherever it
# stands: a lost delimiter shifts a row's cells, and a hash then reaches the name or hostname column.
_LOOKS_SECRET_RE = re.compile(r"\$[0-9a-z]{1,2}\$|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-", re.ASCII)


def _cell(text: str) -> str:
    """A cell's value as a message shows it: quoted and escaped, or withheld when it may be a secret."""
    if _LOOKS_SECRET_RE.search(text):
        return "(a value not shown: it looks like a password hash or setup key; are the columns in order?)"
    shown = text if len(text) <= 80 else text[:80] + "..."
    return repr(shown.encode("unicode_escape").decode("ascii") if not shown.isprintable() else shown)


def _optional_field(row: dict[str, str], field: str, validate: Callable[[str], T], reasons: list[str]) -> T | None:
    """An optional field: None when empty, else the validated value; a refusal is added to `reasons`
    (the validators never put the value itself in their message)."""
    text = row.get(field, "").strip()
    if not text:
        return None
    try:
        return validate(text)
    except UsageError as exc:
        reasons.append(f"{field}: {exc.message}")
        return None
