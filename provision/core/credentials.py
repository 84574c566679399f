"""Credentials: password hashes, SSH public keys, host keys, Netbird key, machine-id.

Pure functions: no guestfs, no CLI. passlib and cryptography are imported inside the functions that need
them, because `zvm-provision --help` must start in under 0.3 s.

Every error is a UsageError whose message never contains a secret (password, hash, private key text,
setup key): messages are built from sources, line numbers, lengths and fixed reasons only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from provision.errors import UsageError
from provision.secret import Secret

# --------------------------------------------------------------------------------------------------
# Passwords

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


def _one_line(text: str, what: str) -> str:
    """Strip one trailing newline (what NixOS's chomp removes); refuse any other line break."""
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if any(c in text for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"):
        raise UsageError(f"{what} must be exactly one line")
    return text


def _sha512_rounds(rounds_text: str | None) -> int:
    if rounds_text is None:
        return SHA512_IMPLICIT_ROUNDS
    if rounds_text.startswith("0") or len(rounds_text) > 9:  # libxcrypt refuses leading zeros
        raise UsageError(f"rounds must be {SHA512_MIN_ROUNDS}..{SHA512_MAX_ROUNDS} (no leading zero)")
    rounds = int(rounds_text)
    if not SHA512_MIN_ROUNDS <= rounds <= SHA512_MAX_ROUNDS:
        raise UsageError(f"rounds must be {SHA512_MIN_ROUNDS}..{SHA512_MAX_ROUNDS}")
    return rounds


def _parse_hash(text: str) -> tuple[str, int | None]:
    """(algorithm, rounds) of a valid hash line, or UsageError saying what is wrong (never the hash)."""
    line = _one_line(text, "the password hash")
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
    return Secret(_one_line(text, "the password hash"))


@dataclass(frozen=True)
class PasswordInfo:
    state: str  # "set", "locked" or "invalid"
    algorithm: str | None  # "sha512-crypt" or "yescrypt"
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
    try:
        line = _one_line(text, "the password file")
    except UsageError:
        return invalid
    if line in ("!", "*") or line.startswith("!"):
        return PasswordInfo("locked", None, None)
    try:
        algorithm, rounds = _parse_hash(line)
    except UsageError:
        return invalid
    return PasswordInfo("set", algorithm, rounds)


# --------------------------------------------------------------------------------------------------
# SSH public keys

MAX_KEY_LINE_BYTES = 8192  # sshd.8: authorized_keys lines are "up to a limit of 8 kilobytes"
_LENIENT_MAX_LINES = 1000
_MIN_RSA_BITS = 2048

_SK_ED25519 = "sk-ssh-ed25519@openssh.com"
_SK_ECDSA = "sk-ecdsa-sha2-nistp256@openssh.com"
# key type -> (ssh-keygen -l label, number of SSH strings after the type in the blob)
_KEY_TYPES = {
    "ssh-ed25519": ("ED25519", 1),
    "ecdsa-sha2-nistp256": ("ECDSA", 2),
    "ecdsa-sha2-nistp384": ("ECDSA", 2),
    "ecdsa-sha2-nistp521": ("ECDSA", 2),
    "ssh-rsa": ("RSA", 2),
    _SK_ED25519: ("ED25519-SK", 2),
    _SK_ECDSA: ("ECDSA-SK", 3),
}
_ACCEPTED_TYPES_TEXT = (
    "ssh-ed25519, ecdsa-sha2-nistp256/384/521, ssh-rsa, sk-ssh-ed25519, sk-ecdsa-sha2-nistp256"
)

# authorized_keys options (sshd.8). Valued ones take name="value"; the others are bare flags.
_VALUED_OPTIONS = frozenset(
    {"command", "environment", "expiry-time", "from", "permitlisten", "permitopen", "principals", "tunnel"}
)
_FLAG_OPTIONS = frozenset(
    {
        "agent-forwarding", "cert-authority", "no-agent-forwarding", "no-port-forwarding", "no-pty",
        "no-user-rc", "no-x11-forwarding", "port-forwarding", "pty", "no-touch-required", "verify-required",
        "restrict", "user-rc", "x11-forwarding",
    }
)  # fmt: skip
_OPTION_NAME_RE = re.compile(r"[A-Za-z0-9-]+", re.ASCII)
# exactly one double-quoted string; \" is OpenSSH's only escape, a lone backslash is literal
_QUOTED_VALUE_RE = re.compile(r'"(?:\\"|\\(?!")|[^"\\])*"', re.DOTALL)

# Markers of a private key pasted where a public one belongs (PEM, OpenSSH, PuTTY).
_PRIVATE_KEY_RE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|PuTTY-User-Key-File-")


_CONTROL_RE = re.compile("[\x01-\x08\x0a-\x1f\x7f-\x9f]")  # C0 (tab allowed), DEL, C1
_FIELD_SEP = re.compile("[ \t]+")  # sshd separates fields with spaces and tabs only


class _BadLine(Exception):
    """Internal: why one authorized_keys line was refused (a fixed reason, never the line's text)."""


@dataclass(frozen=True)
class AuthorizedKey:
    line: str  # the accepted line verbatim (no trailing newline/CR), options and comment included
    options: str | None  # e.g. 'restrict,from="10.0.0.0/8"'
    key_type: str
    blob: bytes  # decoded base64 key blob: the identity used for de-duplication
    comment: str
    bits: int  # as ssh-keygen -l reports it

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.blob)

    @property
    def type_label(self) -> str:
        return _KEY_TYPES[self.key_type][0]

    def describe(self) -> str:
        """The line `ssh-keygen -lf` prints for this key."""
        return f"{self.bits} {self.fingerprint} {self.comment or 'no comment'} ({self.type_label})"


def _fingerprint(blob: bytes) -> str:
    # ssh-keygen's default: SHA256 over the raw blob, base64 without padding. Works for sk keys too.
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode("ascii").rstrip("=")


def _unquoted(text: str, separators: str):
    """Yield the indexes of separator characters outside double quotes (inside them, \\" is a quote)."""
    quoted = False
    i = 0
    while i < len(text):
        c = text[i]
        if quoted and c == "\\" and text[i + 1 : i + 2] == '"':  # OpenSSH's only escape: \"
            i += 1
        elif c == '"':
            quoted = not quoted
        elif c in separators and not quoted:
            yield i
        i += 1
    if quoted:
        raise _BadLine("unterminated quoted string in the options")


def _split_options(line: str) -> tuple[str, str]:
    """Split `options rest` at the first space or tab outside double quotes."""
    i = next(_unquoted(line, " \t"), None)
    if i is None:
        return line, ""
    return line[:i], line[i:].lstrip(" \t")


def _check_options(options: str) -> None:
    """Each comma-separated option must be a known keyword, with a quoted value exactly when it takes one."""
    bounds = [-1, *_unquoted(options, ","), len(options)]
    items = [options[a + 1 : b] for a, b in zip(bounds, bounds[1:])]
    for n, item in enumerate(items, 1):
        name, eq, value = item.partition("=")
        if not _OPTION_NAME_RE.fullmatch(name):
            raise _BadLine(f"option {n} in the options field is malformed")
        name = name.lower()
        if name in _FLAG_OPTIONS and not eq:
            continue
        if name in _VALUED_OPTIONS:
            if not (eq and _QUOTED_VALUE_RE.fullmatch(value)):
                raise _BadLine(f'option {n} ({name}) needs a value in double quotes: {name}="..."')
            continue
        if name in _FLAG_OPTIONS:
            raise _BadLine(f"option {n} ({name}) takes no value")
        raise _BadLine(f"option {n} in the options field is not a known authorized_keys option")


def _is_type_name(token: str) -> bool:
    return token in _KEY_TYPES or token == "ssh-dss" or token.endswith("-cert-v01@openssh.com")


def _read_string(blob: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(blob):
        raise _BadLine("the key data is truncated")
    size = int.from_bytes(blob[offset : offset + 4], "big")
    end = offset + 4 + size
    if end > len(blob):
        raise _BadLine("the key data is truncated")
    return blob[offset + 4 : end], end


def _key_bits(key_type: str, blob: bytes, fields: list[bytes]) -> int:
    """Validate the key material (cryptography for the usual types, by hand for FIDO sk- keys)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    if key_type == _SK_ED25519:
        if len(fields[0]) != 32:
            raise _BadLine("the sk-ssh-ed25519 public key is not 32 bytes")
        _check_application(fields[1])
        return 256
    if key_type == _SK_ECDSA:
        if fields[0] != b"nistp256":
            raise _BadLine("the key type in the line does not match the key data")
        point = fields[1]
        if len(point) != 65 or point[0] != 4:
            raise _BadLine("the sk-ecdsa public key is not an uncompressed nistp256 point")
        try:
            ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
        except ValueError:
            raise _BadLine("the sk-ecdsa public key is not a point on nistp256") from None
        _check_application(fields[2])
        return 256
    if key_type.startswith("ecdsa-sha2-") and fields[0] != key_type.removeprefix("ecdsa-sha2-").encode():
        raise _BadLine("the key type in the line does not match the key data")

    from cryptography.hazmat.primitives.serialization import load_ssh_public_key

    try:
        key = load_ssh_public_key(key_type.encode() + b" " + base64.b64encode(blob))
    except (ValueError, UnsupportedAlgorithm, NotImplementedError):  # the last: a compressed ECDSA point
        raise _BadLine(f"the key data is not a valid {key_type} key") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise _BadLine(f"RSA key of {key.key_size} bits: at least {_MIN_RSA_BITS} are required")
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    return 256  # ed25519


def _check_application(app: bytes) -> None:
    # OpenSSH writes "ssh:" or "ssh:<name>"; we only insist on something printable.
    if not app or len(app) > 1024 or not all(0x20 < b < 0x7F for b in app):
        raise _BadLine("the FIDO application string in the key is empty or not printable ASCII")


def _parse_key_line(raw: str) -> AuthorizedKey:
    """One non-blank, non-comment line -> AuthorizedKey, or _BadLine with a reason free of the line's text."""
    line = raw.strip(" \t\r")
    if len(line.encode("utf-8", "surrogatepass")) > MAX_KEY_LINE_BYTES:
        raise _BadLine(f"the line is longer than {MAX_KEY_LINE_BYTES} bytes")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: accepted, the line could not be written to the image
        raise _BadLine("the line is not valid UTF-8") from None
    if "\x00" in line:
        raise _BadLine("the line contains a NUL character")
    if _CONTROL_RE.search(line):  # a comment with escape sequences would reach the terminal via reports
        raise _BadLine("the line contains control characters")
    if not line:
        raise _BadLine("the line is empty")
    first = _FIELD_SEP.split(line, 1)[0]
    options: str | None = None
    rest = line
    if not _is_type_name(first):
        opts, after = _split_options(line)
        if after and _is_type_name(_FIELD_SEP.split(after, 1)[0]):
            options, rest = opts, after
    parts = _FIELD_SEP.split(rest, 2)
    key_type = parts[0]
    if key_type == "ssh-dss":
        raise _BadLine("ssh-dss (DSA) keys are not accepted")
    if key_type.endswith("-cert-v01@openssh.com"):
        raise _BadLine("SSH certificates are not accepted here; give the plain public key")
    if key_type not in _KEY_TYPES:
        raise _BadLine(f"unknown key type (accepted: {_ACCEPTED_TYPES_TEXT})")
    if options is not None:
        _check_options(options)
    if len(parts) < 2:
        raise _BadLine("no key data after the key type")
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        raise _BadLine("bad base64 in the key") from None
    inner_type, offset = _read_string(blob, 0)
    if inner_type != key_type.encode():
        raise _BadLine("the key type in the line does not match the key data")
    fields = []
    for _ in range(_KEY_TYPES[key_type][1]):
        field, offset = _read_string(blob, offset)
        fields.append(field)
    if offset != len(blob):
        raise _BadLine("the key data has trailing bytes")
    bits = _key_bits(key_type, blob, fields)
    comment = parts[2].strip(" \t") if len(parts) > 2 else ""
    return AuthorizedKey(line=line, options=options, key_type=key_type, blob=blob, comment=comment, bits=bits)


def _key_lines(text: str):
    """(line number, line) for every line that is not blank or a '#' comment."""
    for lineno, raw in enumerate(text.split("\n"), 1):
        stripped = raw.strip(" \t\r")
        if stripped and not stripped.startswith("#"):
            yield lineno, raw


def parse_authorized_keys(text: str, source: str) -> list[AuthorizedKey]:
    """A .pub or authorized_keys file given by the user: every key line must be acceptable, or UsageError."""
    if _PRIVATE_KEY_RE.search(text):
        raise UsageError(f"{source} is a private key; give the public key (.pub) instead")
    if "---- BEGIN SSH2 PUBLIC KEY ----" in text:
        raise UsageError(
            f"{source} is an RFC 4716 (SSH2) public key; convert it with: ssh-keygen -i -f {source}"
        )
    keys = []
    for lineno, raw in _key_lines(text):
        try:
            keys.append(_parse_key_line(raw))
        except _BadLine as exc:
            raise UsageError(f"{source}:{lineno}: {exc}") from None
    if not keys:
        raise UsageError(f"{source} holds no public key")
    return keys


def parse_authorized_keys_lenient(text: str) -> tuple[list[AuthorizedKey], list[str]]:
    """For files read from an image (untrusted): good keys and one problem per bad line; never raises."""
    keys: list[AuthorizedKey] = []
    problems: list[str] = []
    for lineno, raw in _key_lines(text):
        if lineno > _LENIENT_MAX_LINES:
            problems.append(f"more than {_LENIENT_MAX_LINES} lines: the rest was not read")
            break
        if len(raw) > 2 * MAX_KEY_LINE_BYTES:  # skip before any work on it
            problems.append(f"line {lineno}: the line is longer than {MAX_KEY_LINE_BYTES} bytes")
            continue
        if _PRIVATE_KEY_RE.search(raw):
            problems.append(f"line {lineno}: a private key, not a public key")
            continue
        try:
            keys.append(_parse_key_line(raw))
        except _BadLine as exc:
            problems.append(f"line {lineno}: {exc}")
        except Exception as exc:  # untrusted input must never crash a read-only report
            problems.append(f"line {lineno}: unreadable ({type(exc).__name__})")
    return keys, problems


def merge_keys(
    existing: Sequence[AuthorizedKey], new: Sequence[AuthorizedKey], *, replace: bool
) -> list[AuthorizedKey]:
    """Existing keys first (unless replace), then new ones; de-duplicated by blob, first occurrence wins."""
    seen: set[bytes] = set()
    merged = []
    for key in [*(() if replace else existing), *new]:
        if key.blob not in seen:
            seen.add(key.blob)
            merged.append(key)
    return merged


def render_authorized_keys(keys: Sequence[AuthorizedKey]) -> bytes:
    return "".join(key.line + "\n" for key in keys).encode("utf-8")


def public_key_fingerprint(public_line: str) -> str:
    """SHA256:... of one public key line (any accepted type)."""
    return _single_key(public_line).fingerprint


def _single_key(public_line: str) -> AuthorizedKey:
    try:
        return _parse_key_line(_one_line(public_line, "a public key line"))
    except _BadLine as exc:
        raise UsageError(f"bad public key line: {exc}") from None


def known_hosts_line(host: str, public_line: str) -> str:
    """'<host> <type> <base64>' for a known_hosts file (no comment)."""
    if not host or any(c.isspace() for c in host) or any(ord(c) < 0x20 for c in host):
        raise UsageError("the known_hosts host name must be non-empty and contain no whitespace")
    key = _single_key(public_line)
    return f"{host} {key.key_type} {base64.b64encode(key.blob).decode('ascii')}"


# --------------------------------------------------------------------------------------------------
# Host keys and user key pairs


def _check_comment(comment: str) -> None:
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in comment):
        raise UsageError("the key comment must be one line without control characters")


def _new_ed25519(comment: str, encryption) -> tuple[bytes, str]:
    """(OpenSSH private key PEM, public line with comment) of a fresh ed25519 key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    _check_comment(comment)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, encryption)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    line = public.decode("ascii") + (f" {comment}" if comment else "")
    return private, line


@dataclass(frozen=True)
class HostKey:
    private_openssh: Secret  # OpenSSH PEM, unencrypted (sshd cannot read an encrypted host key)
    public_line: str  # "ssh-ed25519 AAAA... root@zvm"

    @property
    def fingerprint(self) -> str:
        return public_key_fingerprint(self.public_line)


def generate_host_key(comment: str = "root@zvm") -> HostKey:
    from cryptography.hazmat.primitives.serialization import NoEncryption

    private, line = _new_ed25519(comment, NoEncryption())
    return HostKey(private_openssh=Secret(private.decode("ascii")), public_line=line)


def generate_user_keypair(*, comment: str, passphrase: Secret | None = None) -> tuple[bytes, str]:
    """A new ed25519 key pair (OpenSSH private key, encrypted if given a passphrase; public line)."""
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, NoEncryption

    secret = passphrase.reveal() if passphrase is not None else ""
    if "\x00" in secret:
        raise UsageError("the passphrase contains a NUL character")
    # OpenSSH's bcrypt-pbkdf encryption needs the bcrypt package (a declared dependency).
    encryption = BestAvailableEncryption(secret.encode("utf-8")) if secret else NoEncryption()
    return _new_ed25519(comment, encryption)


def _create_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Create path with `mode` from its first instant (no window with wider permissions); never overwrite."""
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(path, flags, mode)
    try:
        os.fchmod(fd, mode)  # the umask may have narrowed it; a .pub must be readable
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private_key_file(path: Path, private_bytes: bytes, public_line: str) -> None:
    """Write path (0600) and path.pub (0644); refuse to overwrite either."""
    path = Path(path)
    pub = path.with_name(path.name + ".pub")
    for target in (path, pub):
        if os.path.lexists(target):
            raise UsageError(f"{target} already exists; not overwriting it")
    try:
        _create_exclusive(path, private_bytes, 0o600)
    except FileExistsError:
        raise UsageError(f"{path} already exists; not overwriting it") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        _create_exclusive(pub, public_line.rstrip("\n").encode("utf-8") + b"\n", 0o644)
    except OSError as exc:
        os.unlink(path)  # no half-written pair: the private key alone is useless to the wizard
        if isinstance(exc, FileExistsError):
            raise UsageError(f"{pub} already exists; not overwriting it") from None
        raise UsageError(f"cannot write {pub}: {exc.strerror}") from None


# --------------------------------------------------------------------------------------------------
# Netbird, machine-id

_NETBIRD_KEY_RE = re.compile(r"[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}", re.ASCII)
_MAX_URL_CHARS = 2048


def validate_netbird_setup_key(text: str) -> Secret:
    """A Netbird setup key is a UUID. The dashboard shows it in upper case, other tools print it in lower case:
    any letter case is accepted and the key is stored upper case, as Netbird issued it. Never echoes the input."""
    key = text.strip().upper()
    if _NETBIRD_KEY_RE.fullmatch(key):
        return Secret(key)
    raise UsageError("the Netbird setup key must be a UUID such as XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX")


def validate_management_url(url: str) -> str:
    """A self-hosted Netbird management URL: https, a host, no credentials. Returns it stripped."""
    from urllib.parse import urlsplit

    url = url.strip()
    if len(url) > _MAX_URL_CHARS:
        raise UsageError(f"the Netbird management URL is longer than {_MAX_URL_CHARS} characters")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UsageError("the Netbird management URL contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        parts.port  # raises ValueError for a non-numeric or out-of-range port
    except ValueError:
        raise UsageError("the Netbird management URL is malformed") from None
    if parts.scheme.lower() != "https":
        raise UsageError("the Netbird management URL must start with https://")
    if "@" in parts.netloc:  # not echoed: it may hold a password
        raise UsageError("the Netbird management URL must not contain a user name or password")
    if not parts.hostname:
        raise UsageError("the Netbird management URL has no host")
    return url


_MACHINE_ID_RE = re.compile(r"[0-9a-f]{32}\n?", re.ASCII)


def new_machine_id() -> str:
    """32 lowercase hex, unique per image (systemd forbids all zeros)."""
    while True:
        mid = secrets.token_hex(16)
        if mid.strip("0"):
            return mid


def is_valid_machine_id(text: str) -> bool:
    return bool(_MACHINE_ID_RE.fullmatch(text)) and bool(text.rstrip("\n").strip("0"))
