"""Passwords: the one policy, sha-512 crypt hashing (passlib, imported lazily: --help stays fast), and
checking a ready hash as libxcrypt (PAM, in the VM) will read it. Generated passwords for batch, too.

Every error is a UsageError whose message never holds the password or the hash: only fixed reasons.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Literal

from provision.core.text import LINE_BREAKS, one_line
from provision.errors import UsageError
from provision.secret import Secret

# passlib's default; libxcrypt calls its own implicit 5000 "too low for modern hardware"
SHA512_DEFAULT_ROUNDS = 656000
SHA512_IMPLICIT_ROUNDS = 5000  # what libxcrypt uses when a $6$ hash has no rounds= field
SHA512_MIN_ROUNDS = 1000  # libxcrypt refuses (returns "*0", locking the user out) outside this range
SHA512_MAX_ROUNDS = 999_999_999
MAX_PASSWORD_BYTES = 4096  # passlib's MAX_PASSWORD_SIZE
MIN_PASSWORD_CHARS = 8  # the one password policy: wizard, --password-stdin, --password-file
LOCKED_PASSWORD_LINE = "!"  # what --no-password writes: the account is locked, key-only login

_CRYPT64 = "[./0-9A-Za-z]"
_CRYPT64_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SHA512_RE = re.compile(rf"\$6\$(?:rounds=([0-9]+)\$)?({_CRYPT64}*)\$({_CRYPT64}*)", re.ASCII)
# libxcrypt crypt(5): \$y\$[./A-Za-z0-9]+\$[./A-Za-z0-9]{,86}\$[./A-Za-z0-9]{43}. Params encode at least
# flavor, N and r (3 chars); we also refuse an empty salt, which mkpasswd never writes.
_YESCRYPT_RE = re.compile(rf"\$y\$({_CRYPT64}{{3,64}})\$({_CRYPT64}{{1,86}})\$({_CRYPT64}{{43}})", re.ASCII)
# The parameters libxcrypt's crypt_gensalt writes for costs 1..11 (mkpasswd -R, login.defs YESCRYPT_COST_FACTOR;
# 5, j9T, is the default). Others may not decode (libxcrypt answers "*0") or may ask for any amount of memory.
_YESCRYPT_PARAMS = frozenset({"j75", "j85", "j7T", "j8T", "j9T", "jAT", "jBT", "jCT", "jDT", "jET", "jFT"})
_MAX_PASSWORD_FILE_BYTES = 64 * 1024  # a hash line is ~120 bytes; anything far bigger is not a password file
# Generated passwords (batch): 29 characters, 5 groups of 5 random ones (~146 bits) joined by '-', no 0/O, 1/l/I.
PASSWORD_ALPHABET = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
PASSWORD_GROUPS, PASSWORD_GROUP_SIZE = 5, 5

PasswordState = Literal["set", "locked", "invalid"]
HashAlgorithm = Literal["sha512-crypt", "yescrypt"]


def check_password(password: str) -> None:
    """The password policy, the same on every path (wizard, --password-stdin, --password-file): at least
    MIN_PASSWORD_CHARS characters, and nothing that cannot survive the trip to /etc/shadow or that passlib
    would refuse."""
    if not password:
        raise UsageError("the password is empty")
    if "\x00" in password:
        raise UsageError("the password contains a NUL character")
    if "\n" in password or "\r" in password:
        raise UsageError("the password contains a line break")
    try:
        size = len(password.encode("utf-8"))
    except UnicodeEncodeError:  # lone surrogates, e.g. from surrogateescape-decoded bytes
        raise UsageError("the password is not valid UTF-8") from None
    if size > MAX_PASSWORD_BYTES:
        raise UsageError(f"the password is longer than {MAX_PASSWORD_BYTES} bytes")
    if len(password) < MIN_PASSWORD_CHARS:
        raise UsageError(f"the password must be at least {MIN_PASSWORD_CHARS} characters long")


def _check_rounds(rounds: int) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, int):
        raise UsageError("rounds must be an integer")
    if not SHA512_MIN_ROUNDS <= rounds <= SHA512_MAX_ROUNDS:
        raise UsageError(f"rounds must be {SHA512_MIN_ROUNDS}..{SHA512_MAX_ROUNDS}")


def hash_password(password: str, *, rounds: int = SHA512_DEFAULT_ROUNDS) -> Secret:
    """sha-512 crypt with explicit rounds and a 16-character salt, as libxcrypt (PAM) will verify it."""
    check_password(password)
    _check_rounds(rounds)
    from passlib.hash import sha512_crypt  # lazy: keeps --help fast

    hashed = sha512_crypt.using(rounds=rounds, salt_size=16).hash(password)
    return validate_password_hash(hashed)  # self-check: never write a hash our own reader would refuse


def _sha512_rounds(rounds_text: str | None) -> int:
    if rounds_text is None:
        return SHA512_IMPLICIT_ROUNDS
    if rounds_text.startswith("0") or len(rounds_text) > 9:  # libxcrypt refuses leading zeros
        raise UsageError(f"rounds must be {SHA512_MIN_ROUNDS}..{SHA512_MAX_ROUNDS} (no leading zero)")
    rounds = int(rounds_text)
    if not SHA512_MIN_ROUNDS <= rounds <= SHA512_MAX_ROUNDS:
        raise UsageError(f"rounds must be {SHA512_MIN_ROUNDS}..{SHA512_MAX_ROUNDS}")
    return rounds


def _parse_hash(text: str) -> tuple[HashAlgorithm, int | None]:
    """(algorithm, rounds) of a valid hash line, or UsageError saying what is wrong (never the hash)."""
    line = one_line(text, "the password hash")
    if line != line.strip():
        raise UsageError("the password hash has surrounding whitespace")
    if line.startswith("$6$"):
        m = _SHA512_RE.fullmatch(line)
        if not m:
            raise UsageError(
                "malformed sha-512 ($6$) hash: expected $6$[rounds=N$]salt$hash"
                " in the crypt alphabet [./0-9A-Za-z]"
            )
        rounds = _sha512_rounds(m.group(1))
        if not 1 <= len(m.group(2)) <= 16:
            raise UsageError("the sha-512 salt must be 1..16 characters")
        if len(m.group(3)) != 86:
            raise UsageError("the sha-512 hash part must be 86 characters")
        return "sha512-crypt", rounds
    if line.startswith("$y$"):
        m = _YESCRYPT_RE.fullmatch(line)
        if not m:
            raise UsageError(
                "malformed yescrypt ($y$) hash: expected $y$params$salt$hash with a 43-character hash "
                "in the crypt alphabet [./0-9A-Za-z]"
            )
        if m.group(1) not in _YESCRYPT_PARAMS:
            raise UsageError("yescrypt parameters other than those mkpasswd writes (costs 1..11) are not "
                             "accepted; make the hash with mkpasswd -m yescrypt")
        if not _whole_bytes(m.group(2)):
            raise UsageError("the yescrypt salt is not a whole number of bytes: libxcrypt would refuse it")
        return "yescrypt", None
    raise UsageError("not a sha-512 ($6$) or yescrypt ($y$) crypt hash")


def _whole_bytes(encoded: str) -> bool:
    """Whether crypt base-64 text decodes to whole bytes, as libxcrypt's decode64 requires: no single
    character left over, and no bits set in the last character beyond the last byte."""
    rest = len(encoded) % 4  # 4 characters hold 3 bytes
    if rest == 1:
        return False
    last = _CRYPT64_ALPHABET.index(encoded[-1])
    return rest == 0 or last < (4 if rest == 2 else 16)


def validate_password_hash(text: str) -> Secret:
    """A pre-made hash (e.g. from mkpasswd), checked as libxcrypt will read it; returned without newline."""
    _parse_hash(text)
    return Secret(one_line(text, "the password hash"))


@dataclass(frozen=True)
class PasswordInfo:
    state: PasswordState
    algorithm: HashAlgorithm | None
    rounds: int | None  # sha512: explicit rounds or 5000 (the default when absent)


def describe_password_file(content: bytes) -> PasswordInfo:
    """What an image's /passwords/zvm holds. Untrusted bytes: never raises, never returns the hash."""
    invalid = PasswordInfo("invalid", None, None)
    if len(content) > _MAX_PASSWORD_FILE_BYTES:
        return invalid
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError:
        return invalid
    # As NixOS reads it (update-users-groups.pl: read_file, then chomp): one trailing "\n" goes and nothing
    # else, so a line ending in "\r\n" keeps its "\r", and that hash matches no password.
    line = text[:-1] if text.endswith("\n") else text
    if any(c in line for c in LINE_BREAKS):
        return invalid
    if line in ("!", "*") or line.startswith("!"):
        return PasswordInfo("locked", None, None)
    try:
        algorithm, rounds = _parse_hash(line)
    except UsageError:
        return invalid
    return PasswordInfo("set", algorithm, rounds)


def generate_password() -> str:
    """A new random password for a batch user, easy to read out and type: five groups of five characters."""
    groups = ("".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_GROUP_SIZE))
              for _ in range(PASSWORD_GROUPS))
    return "-".join(groups)
