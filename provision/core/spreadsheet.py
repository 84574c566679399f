"""CSV as spreadsheets read and write it: which delimiter a header line shows (Excel writes `;` where the
decimal comma is usual, tab for "Unicode text"), which encoding a file that is not UTF-8 is in (Excel's
"Unicode text" is UTF-16), the ASCII spelling of a name, and cells made safe to open (OWASP's CSV injection
advice: a cell that starts with = + - @ tab or CR is a formula to a spreadsheet).

Pure: no files are read here.
"""

from __future__ import annotations

import codecs
import unicodedata
from collections.abc import Iterable
from typing import NamedTuple

DELIMITERS = {",": "','", ";": "';'", "\t": "tab"}  # the delimiter, and how a message names it
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
SAVE_AS_UTF8 = 'save it again as UTF-8: in Excel, "Save As" and choose "CSV UTF-8 (Comma delimited) (*.csv)"'
# Letters NFKD does not take apart into a base letter and accents.
_ASCII_LETTERS = {"ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "œ": "oe", "Œ": "OE", "đ": "d",
                  "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "Th", "ð": "d", "Ð": "D", "ı": "i"}


def header_delimiter(header_line: str, known: Iterable[str]) -> str:
    """The delimiter the header line shows: the one of ',', ';' and tab that splits it into the most `known`
    column names; ',' when none does better."""
    names = set(known)

    def score(delimiter: str) -> int:
        return sum(cell.strip().strip('"').strip().lower() in names for cell in header_line.split(delimiter))

    return max(DELIMITERS, key=lambda d: (score(d), d == ","))


class Utf16(NamedTuple):
    described: str  # 'UTF-16 little-endian, with a byte-order mark'
    iconv_name: str  # what iconv -f needs: its plain UTF-16 reads a file without a byte-order mark as big-endian


def utf16_encoding(data: bytes) -> Utf16 | None:
    """Which UTF-16 `data` is in, when it looks like UTF-16 text, else None. Without a BOM, text that is mostly
    ASCII has a NUL in every other byte."""
    if data.startswith(codecs.BOM_UTF16_LE):
        return Utf16("UTF-16 little-endian, with a byte-order mark", "UTF-16")
    if data.startswith(codecs.BOM_UTF16_BE):
        return Utf16("UTF-16 big-endian, with a byte-order mark", "UTF-16")
    sample = data[:4096]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    odd_nuls, even_nuls = sample[1::2].count(0), sample[0::2].count(0)
    if odd_nuls >= 0.8 * pairs and even_nuls == 0:
        return Utf16("UTF-16 little-endian, without a byte-order mark", "UTF-16LE")
    if even_nuls >= 0.8 * pairs and odd_nuls == 0:
        return Utf16("UTF-16 big-endian, without a byte-order mark", "UTF-16BE")
    return None


def ascii_spelling(text: str) -> str:
    """`text` with accents dropped and a few letters spelt out (José: Jose, Jürgen: Jurgen, Søren: Soren);
    anything else that is not ASCII is left out."""
    spelt = "".join(_ASCII_LETTERS.get(char, char) for char in text)
    decomposed = unicodedata.normalize("NFKD", spelt)
    return "".join(char for char in decomposed if char.isascii())


def safe_cell(cell: str) -> str:
    """A cell a spreadsheet shows as text: one that would start a formula gets a leading "'" (OWASP), and so
    does one that starts with "'" itself, so that unsafe_cell gives every cell back as it was."""
    return "'" + cell if cell.startswith((*FORMULA_STARTS, "'")) else cell


def unsafe_cell(cell: str) -> str:
    """safe_cell undone, for files this tool wrote and reads back."""
    return cell[1:] if cell.startswith("'") else cell
