"""Input refused before any appliance: `--hostname localhost` and manifests as spreadsheets export them
(`;` or tab delimiters, empty trailing columns, UTF-16, non-ASCII or leading-`-` names), through the real
command in a process of its own.

The images are made by qemu-img (no appliance): every refusal is checked to leave the image byte-identical
and the output folder uncreated.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from provision.commands.batch.outputs import read_passwords, write_password_rows
from provision.core.spreadsheet import FORMULA_STARTS
from tests.commands.seed.test_forge_keys import image, sha256  # noqa: F401 (image: a fixture)
from tests.commands.seed.test_seed import zvm
from tests.support.keyfactory import public_line

LOCALHOSTS = ["localhost", "LOCALHOST", "LocalHost", "localhost.", "localhost.localdomain",
              "LOCALHOST.LOCALDOMAIN", "localhost6", "localhost6.localdomain6", "db.localhost"]


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "alice.pub"
    path.write_text(public_line(comment="alice") + "\n")
    return path


def batch_refused(image: Path, manifest: Path) -> subprocess.CompletedProcess[str]:
    """batch on `manifest`: the image untouched, no output folder, no traceback."""
    before = sha256(image)
    out = manifest.parent / "out"
    result = zvm("batch", str(manifest), "--base", str(image), "--out-dir", str(out))
    assert sha256(image) == before and not out.exists()
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return result


# ------------------------------------------------------------------------------------------------
# localhost is no hostname


@pytest.mark.parametrize("name", LOCALHOSTS)
def test_seed_refuses_localhost_as_a_hostname_with_the_rule(image, key, name):
    before = sha256(image)
    result = zvm("seed", str(image), "--no-password", "--ssh-key", str(key), "--hostname", name, "--yes")
    assert result.returncode == 2, result.stderr
    assert f"--hostname {name!r} is refused: localhost" in result.stderr
    assert "hostname_is_useful" in result.stderr and "Netbird" in result.stderr
    assert sha256(image) == before


def test_a_manifest_hostname_of_localhost_is_refused_naming_its_line(image, key, tmp_path):
    manifest = tmp_path / "staff.csv"
    manifest.write_text(f"name,ssh_keys,hostname\nalice,{key.name},zvm-alice\nbob,{key.name},localhost6\n")
    result = batch_refused(image, manifest)
    assert result.returncode == 2, result.stderr
    assert "line 3: hostname: 'localhost6' is refused: localhost" in result.stderr
    assert "or leave the cell empty for zvm-bob" in result.stderr  # the row's own default, not an example
    assert "line 2" not in result.stderr


# ------------------------------------------------------------------------------------------------
# Manifests as spreadsheets export them


def manifest(folder: Path, text: str, encoding: str = "utf-8") -> Path:
    path = folder / "staff.csv"
    path.write_bytes(text.encode(encoding))
    return path


@pytest.mark.parametrize("delimiter", [";", "\t"])
def test_a_semicolon_or_tab_delimiter_shown_by_the_header_is_read(image, key, tmp_path, delimiter):
    """Excel writes ';' where the decimal comma is usual, and tab for "Unicode text": every row but the one
    with a missing key file is read (a cell holding ';' is quoted, as Excel quotes it)."""
    (tmp_path / "b.pub").write_text(public_line(comment="b") + "\n")
    d = delimiter
    result = batch_refused(image, manifest(tmp_path, f'name{d}ssh_keys{d}hostname\n'
                                                     f'alice{d}"{key.name};b.pub"{d}zvm-alice\n'
                                                     f'bob{d}missing.pub{d}\n'))
    assert result.returncode == 2, result.stderr
    assert "1 bad row" in result.stderr and "line 3: " in result.stderr and "missing.pub" in result.stderr
    assert "line 2" not in result.stderr and "unknown column" not in result.stderr


def test_a_column_error_shows_the_header_as_read_and_the_delimiter(image, tmp_path):
    result = batch_refused(image, manifest(tmp_path, "name;ssh_key\nalice;a.pub\n"))
    assert result.returncode == 2, result.stderr
    assert "unknown column(s) 'ssh_key'" in result.stderr and "missing column(s) ssh_keys" in result.stderr
    assert "(the header as read, split at ';': 'name', 'ssh_key')" in result.stderr


def test_empty_trailing_columns_of_a_spreadsheet_export_are_ignored(image, key, tmp_path):
    result = batch_refused(image, manifest(tmp_path, f"name,ssh_keys,,\nalice,{key.name},,\nbob,missing.pub,,\n"
                                                     f"carol,{key.name}\n"))
    assert result.returncode == 2, result.stderr
    assert "1 bad row" in result.stderr and "line 3: " in result.stderr
    assert "unknown column" not in result.stderr and "appears twice" not in result.stderr
    assert "fields where" not in result.stderr
    # A column with a cell but no header is still one: it is named by its number.
    result = batch_refused(image, manifest(tmp_path, f"name,ssh_keys,\nalice,{key.name},x\n"))
    assert result.returncode == 2 and "unknown column(s) column 3" in result.stderr


def test_a_name_with_a_letter_outside_ascii_is_refused_with_its_ascii_spelling(image, key, tmp_path):
    result = batch_refused(image, manifest(tmp_path, f"name,ssh_keys\nJosé,{key.name}\nSøren,{key.name}\n"))
    assert result.returncode == 2, result.stderr
    assert "line 2: name 'José' holds letters outside ASCII" in result.stderr
    assert "write it as 'Jose'" in result.stderr and "write it as 'Soren'" in result.stderr


@pytest.mark.parametrize("name", ["-A1", "-", "--force"])
def test_a_name_starting_with_a_hyphen_is_refused(image, key, tmp_path, name):
    result = batch_refused(image, manifest(tmp_path, f"name,ssh_keys\n{name},{key.name}\n"))
    assert result.returncode == 2, result.stderr
    assert f"line 2: name {name!r} may only hold ASCII letters" in result.stderr
    assert "not start with '.' or '-'" in result.stderr


@pytest.mark.parametrize("encoding, found, iconv_name", [
    ("utf-16", "UTF-16 little-endian, with a byte-order mark", "UTF-16"),  # Python writes the BOM, as Excel does
    ("utf-16-le", "UTF-16 little-endian, without a byte-order mark", "UTF-16LE"),
    ("utf-16-be", "UTF-16 big-endian, without a byte-order mark", "UTF-16BE"),
])
def test_a_utf16_manifest_names_its_encoding_and_how_to_save_as_csv_utf8(image, key, tmp_path, encoding, found,
                                                                        iconv_name):
    path = manifest(tmp_path, f"name\tssh_keys\nalice\t{key.name}\n", encoding)
    result = batch_refused(image, path)
    assert result.returncode == 2, result.stderr
    assert f"staff.csv is {found} (Excel's \"Unicode text\" is UTF-16), not UTF-8" in result.stderr
    assert 'choose "CSV UTF-8 (Comma delimited) (*.csv)"' in result.stderr
    command = re.search(r"iconv -f \S+ -t UTF-8 staff\.csv", result.stderr)
    assert command and command.group(0) == f"iconv -f {iconv_name} -t UTF-8 staff.csv", result.stderr
    # the command the hint gives turns this very file into the UTF-8 text it was written from
    converted = subprocess.run(["iconv", "-f", iconv_name, "-t", "UTF-8", str(path)], capture_output=True, check=True)
    assert converted.stdout.decode("utf-8").removeprefix("\ufeff") == f"name\tssh_keys\nalice\t{key.name}\n"


# ------------------------------------------------------------------------------------------------
# The CSV the tool writes is safe to open in a spreadsheet (OWASP: no cell starts a formula)

# No line breaks: names and generated passwords never hold one (Python's csv writer leaves a lone CR unquoted
# under a "\n" line end, which no cell of ours can meet).
cells = st.text(st.characters(blacklist_characters="\x00\r\n", blacklist_categories=("Cs",)), max_size=12) \
    | st.sampled_from(["=1+1", "+1", "-A1", "@SUM(A1)", "\tx", "'=x", "'", "=HYPERLINK(\"http://x\")"])


@given(rows=st.lists(st.tuples(cells, cells), max_size=6))
def test_every_cell_of_initial_passwords_csv_is_safe_in_a_spreadsheet_and_reads_back(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("csv") / "initial-passwords.csv"
    write_password_rows(path, rows)
    with open(path, newline="", encoding="utf-8") as handle:
        written = [cell for row in csv.reader(handle) for cell in row]
    assert not [cell for cell in written if cell.startswith(FORMULA_STARTS)]
    assert read_passwords(path) == rows


@pytest.mark.appliance
def test_an_excel_semicolon_export_with_a_bom_and_empty_columns_is_seeded(sample_disk_template, open_readonly,
                                                                           tmp_path):
    """What Excel writes as "CSV UTF-8" where ';' is the list separator: a byte-order mark, ';', the key files
    quoted together, and the empty columns of its used range. Read as it is, seeded through the appliance."""
    for name in ("a", "b"):
        (tmp_path / f"{name}.pub").write_text(public_line(comment=name) + "\n")
    path = manifest(tmp_path, '\ufeffname;ssh_keys;hostname;;\r\nalice;"a.pub;b.pub";alice-vm;;\r\n', "utf-8")
    out = tmp_path / "out"
    result = zvm("batch", str(path), "--base", str(sample_disk_template), "--out-dir", str(out), "--json")
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)["users"]
    assert (entry["name"], entry["status"], entry["hostname"]) == ("alice", "seeded", "alice-vm")
    with open_readonly(out / "alice.qcow2") as (_, fs):
        keys = fs.read_file("/home/zvm/.ssh/authorized_keys").decode()
    assert [line.split()[-1] for line in keys.splitlines()] == ["a", "b"]


def test_a_hash_shifted_into_the_name_or_hostname_column_is_not_shown(image, key, tmp_path):
    """A lost delimiter shifts a row's cells: the password hash lands in the hostname column (line 2), inside
    the name (line 3, the delimiter after the name lost) or in the key column (line 4). The refusal names line
    and column, never the hash (the generated-manifest property found the hostname case)."""
    secret_hash = "$6$rounds=5000$saltsaltsalt$" + "A" * 86
    tail = secret_hash.rsplit("$", 1)[-1]
    path = tmp_path / "staff.csv"
    path.write_text(f"name,ssh_keys,hostname,password_hash\n"
                    f"alice,{key.name},{secret_hash},\n"
                    f"bob{secret_hash},{key.name},,\n"
                    f"carol,{secret_hash},,\n")
    path.chmod(0o600)  # a manifest holding a hash must be private
    result = batch_refused(image, path)
    assert result.returncode == 2, result.stderr
    assert "line 2: hostname: (a value not shown: it looks like a password hash" in result.stderr
    assert "line 3: name (a value not shown" in result.stderr
    assert "line 4: ssh_keys: (a value not shown" in result.stderr  # not as a missing key file's path
    assert tail not in result.stderr and tail not in result.stdout


# ------------------------------------------------------------------------------------------------
# --remove-key FP with --ssh-key giving that key: refused before the image is opened (README: input is
# validated first). The image is blank: a check made after the launch would meet "no persist" (exit 3) first.


def test_remove_key_naming_a_key_that_ssh_key_adds_is_refused_before_the_image_is_opened(image, key):
    listed = subprocess.run(["ssh-keygen", "-lf", str(key)], capture_output=True, text=True, check=True).stdout
    fingerprint = listed.split()[1]
    before = sha256(image)
    result = zvm("seed", str(image), "--no-password", "--ssh-key", str(key), "--remove-key", fingerprint, "--yes")
    assert result.returncode == 2, result.stderr
    assert f"{fingerprint} is both removed (--remove-key) and added (--ssh-key); keep one of the two" in result.stderr
    assert "persist" not in result.stderr
    assert sha256(image) == before
