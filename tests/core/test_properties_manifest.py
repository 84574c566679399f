"""Property: the batch manifest reader, fed generated CSV and TOML files, returns a valid manifest or refuses with
UsageError (ManifestError for bad rows), never another exception, never with a secret in what it says.

Files are generated from the manifest's own grammar (columns in any order and case, missing or unknown
columns, a missing header, `,`, `;` or tab delimiters, empty trailing columns, rows with names, key files
that exist, are private keys, junk, missing or directories, password hashes made by libxcrypt and broken
ones, Netbird setup keys and URLs good and bad), then mutated as text (quotes, separators, line breaks, NUL,
byte-order marks, invalid UTF-8) or saved as UTF-16. TOML files come from generated tables with strings,
lists, numbers, booleans and nested tables.

Default: a few hundred examples each; ZVM_PROPERTY_EXAMPLES=N runs N (see conftest.py).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from pathlib import Path

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from provision.core.manifest import FIELDS, NAME_RE, ManifestError
from provision.errors import UsageError
from provision.commands.batch.manifest import load_manifest
from tests.support import libxcrypt
from tests.support.keyfactory import private_pem, public_line

HASHES = [libxcrypt.crypt("pw", libxcrypt.gensalt("$6$", 1000)), libxcrypt.crypt("pw", libxcrypt.gensalt("$y$", 1))]
SETUP_KEY = "0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0"
KEY_FILES = ["keys/alice.pub", "keys/bob.pub", " keys/alice.pub ", "keys/id_ed25519", "keys/bad.pub",
             "keys/missing.pub", "keys/empty.pub", "keys", "../outside.pub", ""]  # fmt: skip
_counter = itertools.count()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("manifests")
    keys = folder / "keys"
    keys.mkdir()
    (keys / "alice.pub").write_text(public_line(comment="alice@laptop") + "\n")
    (keys / "bob.pub").write_text(public_line("ecdsa", comment="bob@phone") + "\n")
    (keys / "id_ed25519").write_text(private_pem())
    (keys / "bad.pub").write_text("not a key\n")
    (keys / "empty.pub").write_text("")
    return folder


# -- cells and secrets ------------------------------------------------------------------------------


def broken(text: str) -> st.SearchStrategy[str]:
    return st.tuples(st.integers(0, len(text)), st.sampled_from(["", "x", "$", "\n", ",", '"', " "])).map(
        lambda t: text[: t[0]] + t[1] + text[t[0] + 1 :])


good_names = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,11}", fullmatch=True)
odd_names = st.one_of(st.sampled_from(["alice", "Alice", ".hidden", "..", "a b", "é", "", "x" * 129, "con/sole"]),
                      st.text(max_size=8))  # fmt: skip
names = st.one_of(good_names, good_names, good_names, odd_names)
good_keys = st.lists(st.sampled_from(["keys/alice.pub", "keys/bob.pub", " keys/alice.pub "]), min_size=1,
                     max_size=2).map(";".join)
key_lists = st.one_of(good_keys, good_keys, good_keys, st.lists(st.sampled_from(KEY_FILES), max_size=3).map(";".join))
hashes = st.one_of(st.just(""), st.just(""), st.sampled_from(HASHES), st.sampled_from(HASHES).flatmap(broken))
setup_keys = st.one_of(st.just(""), st.just(""), st.just(SETUP_KEY), st.just(SETUP_KEY.lower()), broken(SETUP_KEY))
urls = st.one_of(st.just(""), st.just(""), st.just("https://netbird.example.org"),
                 st.sampled_from(["http://netbird.example.org", "https://user:secret@host", "https://",
                                  "https://h:99999"]), st.text(max_size=12))  # fmt: skip
CELLS = {"name": names, "ssh_keys": key_lists, "password_hash": hashes, "netbird_setup_key": setup_keys,
         "netbird_management_url": urls}  # fmt: skip
# well-formed cells only: a share of the manifests is valid, so that the accepting path is exercised too
GOOD_CELLS = {"name": good_names, "ssh_keys": good_keys, "password_hash": st.sampled_from(["", *HASHES]),
              "netbird_setup_key": st.sampled_from(["", SETUP_KEY]),
              "netbird_management_url": st.sampled_from(["", "https://netbird.example.org"])}  # fmt: skip


def secrets_in(values) -> set[str]:
    """The secret values a generated manifest holds (and their telling parts): none may be shown."""
    found = set()
    for value in values:
        value = str(value).strip()
        if value.startswith("$") and len(value) > 20:
            found |= {value, value.rsplit("$", 1)[-1]}
        elif re.fullmatch(r"[0-9A-Fa-f-]{30,40}", value):
            found |= {value, value.upper(), value[:13]}
    return {s for s in found if len(s) >= 8}


def mutate_text(draw, text: str) -> str:
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
        at = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:at] + draw(st.sampled_from(['"', ",", "\n", "\r", "\x00", "\ufeff", ";", " ", "#", "[",
                                                     "]", "=", "'", "\\"])) + text[at:]  # fmt: skip
        else:
            text = text[:at] + text[at + 1 :]
    return text


def encode(draw, text: str) -> bytes:
    data = text.encode("utf-8", "surrogatepass")
    utf16 = text.encode("utf-16", "surrogatepass")  # Excel's "Unicode text": refused, naming the encoding
    return draw(st.sampled_from([data] * 6 + [b"\xef\xbb\xbf" + data, data + b"\xff\xfe", utf16, utf16[2:]]))


# -- CSV ------------------------------------------------------------------------------------------------


@st.composite
def csv_manifests(draw) -> tuple[bytes, set[str], str]:
    columns = draw(st.one_of(
        st.permutations(list(FIELDS)),
        st.permutations(list(FIELDS)),
        st.lists(st.sampled_from(FIELDS[2:]), max_size=3, unique=True).map(lambda rest: ["name", "ssh_keys", *rest]),
        st.lists(st.sampled_from(FIELDS), min_size=1, max_size=5, unique=True),
        st.lists(st.sampled_from([*FIELDS, "password", "Name", " ssh_keys ", ""]), min_size=1, max_size=5),
    ))  # fmt: skip
    good = draw(st.booleans())
    cells = GOOD_CELLS if good else CELLS
    rows = []
    for _ in range(draw(st.integers(1 if good else 0, 5))):
        rows.append([draw(cells.get(col.strip().lower(), st.text(max_size=6))) for col in columns])
        if not good and draw(st.integers(0, 5)) == 0:
            rows[-1] = rows[-1][: draw(st.integers(0, len(rows[-1])))]  # a short row
    padding = [""] * draw(st.sampled_from([0, 0, 0, 1, 2]))  # a spreadsheet's empty used-range columns
    columns, rows = [*columns, *padding], [[*row, *padding] for row in rows]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])),
                        delimiter=draw(st.sampled_from([",", ",", ";", "\t"])))  # as spreadsheets export
    if good or draw(st.integers(0, 6)):
        writer.writerow(columns)  # else: the header was forgotten, the first row stands in its place
    for row in rows:
        if draw(st.integers(0, 6)) == 0:
            out.write(draw(st.sampled_from(["\n", "# a comment, with commas\n", " , ,\n"])))
        writer.writerow(row)
    text = mutate_text(draw, out.getvalue())
    return encode(draw, text), secrets_in(itertools.chain(*rows)), text


# -- TOML -----------------------------------------------------------------------------------------------


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # a TOML basic string (json escapes are TOML escapes)


toml_odd_values = st.one_of(st.integers(-5, 5), st.booleans(), st.lists(st.text(max_size=4), max_size=2),
                            st.dictionaries(st.sampled_from(["a", "b"]), st.integers(0, 1), max_size=2))  # fmt: skip


@st.composite
def toml_manifests(draw) -> tuple[bytes, set[str], str]:
    tables, values = [], []
    good = draw(st.booleans())
    for _ in range(draw(st.integers(1 if good else 0, 4))):
        table = {}
        required = st.lists(st.sampled_from(FIELDS[2:]), max_size=3, unique=True).map(
            lambda rest: ["name", "ssh_keys", *rest])
        fields = required if good else st.one_of(
            required, st.lists(st.sampled_from([*FIELDS, "password", "Name"]), max_size=6, unique=True))
        for field in draw(fields):
            if good:
                value = draw(GOOD_CELLS.get(field, st.just("")))
            elif field == "ssh_keys" and draw(st.booleans()):
                value = draw(st.lists(st.sampled_from(KEY_FILES), max_size=3))
            elif draw(st.integers(0, 12)) == 0:
                value = draw(toml_odd_values)
            else:
                value = draw(CELLS.get(field, st.text(max_size=6)))
            table[field] = value
            values.append(value if not isinstance(value, list) else ";".join(map(str, value)))
        tables.append(table)
    lines = []
    top = "" if good else draw(st.sampled_from(["", "", 'title = "staff"\n', 'user = "alice"\n']))
    lines.append(top)
    for table in tables:
        lines.append("[[user]]\n" + "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in table.items()))
    text = mutate_text(draw, "\n".join(lines))
    return encode(draw, text), secrets_in(values), text


# -- the property ---------------------------------------------------------------------------------------


def check(folder: Path, suffix: str, generated: tuple[bytes, set[str], str], mode: int) -> None:
    data, secrets, text = generated
    path = folder / f"staff-{next(_counter)}{suffix}"
    path.write_bytes(data)
    path.chmod(mode)
    try:
        manifest = load_manifest(path)
    except UsageError as exc:
        said = f"{exc.message}\n{exc.hint or ''}"
        event("refused: " + re.sub(r"line [0-9]+|#[0-9]+|'[^']*'", "#", exc.message.replace(str(path), ""))[:60])
        assert not [s for s in secrets if s in said], "a secret is shown in the refusal"
        if isinstance(exc, ManifestError):
            lines = len(re.split(r"\r\n|\r|\n", text))  # csv (and a manifest's line numbers) end lines at each
            tables = len(re.findall(r"^[ \t]*\[\[[ \t]*user[ \t]*\]\]", text, re.M))  # TOML allows [[ user ]]
            for where, _reason in exc.problems:
                m = re.fullmatch(r"line ([0-9]+)|\[\[user\]\] #([0-9]+)|manifest", where)
                assert m, where
                assert m.group(1) is None or 1 <= int(m.group(1)) <= lines, (where, lines)
                assert m.group(2) is None or 1 <= int(m.group(2)) <= max(tables, 1), (where, tables)
        return
    finally:
        path.unlink()
    event(f"accepted: {len(manifest.users)} user(s)")
    assert manifest.users
    names = [u.name for u in manifest.users]
    assert all(NAME_RE.fullmatch(n) and n.isascii() and not n.startswith((".", "-")) for n in names), names
    assert len({n.casefold() for n in names}) == len(names)
    assert all(u.keys for u in manifest.users)


modes = st.sampled_from([0o600, 0o640, 0o644])


@given(generated=csv_manifests(), mode=modes)
def test_generated_csv_manifests_are_read_or_refused_with_a_usage_error(folder, generated, mode):
    check(folder, ".csv", generated, mode)


@given(generated=toml_manifests(), mode=modes)
def test_generated_toml_manifests_are_read_or_refused_with_a_usage_error(folder, generated, mode):
    check(folder, ".toml", generated, mode)


# -- what the properties found ----------------------------------------------------------------------------


def test_a_manifest_without_its_header_line_does_not_show_the_first_rows_secrets(folder):
    """Found by the CSV property: the first row, taken for the header, was echoed as unknown column names,
    its password hash and Netbird setup key with it."""
    path = folder / "no-header.csv"
    path.write_text(f"alice,keys/alice.pub,{HASHES[0]},{SETUP_KEY},https://nb.example.org\n")
    path.chmod(0o600)
    with pytest.raises(UsageError) as info:
        load_manifest(path)
    said = info.value.message
    assert "unknown column(s) 'alice', column 2, column 3, column 4, column 5" in said
    assert not [s for s in secrets_in([HASHES[0], SETUP_KEY]) if s in said]
    path.write_text("name,ssh_keys,password\nalice,keys/alice.pub,x\n")  # a plain wrong name is still shown
    with pytest.raises(UsageError, match="unknown column.*'password'"):
        load_manifest(path)
