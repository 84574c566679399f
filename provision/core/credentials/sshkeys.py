"""SSH public keys: the keys a person gives (key files, pasted lines, forges) parsed strictly (options, types,
key data checked with cryptography, imported lazily, and sshd's own reading of the line: authorizedkeys), an
image's authorized_keys read as sshd reads it (`read_image_keys`, through authorizedkeys), de-duplicated by key
blob, fingerprints and known_hosts lines as ssh-keygen prints them.

Every error is a UsageError whose message never holds the line's text: sources, line numbers, fixed reasons.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from provision.core.credentials.authorizedkeys import KeyLine, read_authorized_keys
from provision.core.text import one_line, shown
from provision.errors import UsageError

MAX_KEY_LINE_BYTES = 8192  # sshd.8: authorized_keys lines are "up to a limit of 8 kilobytes" (keys given to seed)
_MIN_RSA_BITS = 2048  # for keys this tool writes; sshd itself takes RSA from 1024 bits (authorizedkeys)

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
    sshd: KeyLine  # the line as sshd reads it (authorizedkeys): whether, and how, the key lets anybody in

    @property
    def fingerprint(self) -> str:
        return _fingerprint(self.blob)

    @property
    def type_label(self) -> str:
        key = self.sshd.key
        assert key is not None
        return key.kind + ("-CERT" if key.certificate else "")

    def way_in(self, now: float) -> bool:
        """Whether sshd lets somebody in through this line now (authorizedkeys.KeyLine.way_in)."""
        return self.sshd.way_in(now)

    def describe(self) -> str:
        """The line `ssh-keygen -lf` prints for this key, and its authorized_keys options if it has any (a
        forced command or a source restriction must show wherever the key is shown). Comment and options
        escaped: a key read from an image may carry terminal escapes or bidi controls."""
        described = f"{self.bits} {self.fingerprint} {shown(self.comment) or 'no comment'} ({self.type_label})"
        return described + (f" with options {shown(self.options)}" if self.options else "")


def from_key_line(line: KeyLine) -> AuthorizedKey:
    """The key of a line sshd reads (line.key is set), as the commands handle keys."""
    key = line.key
    assert key is not None
    text = line.raw.split(b"\0", 1)[0].decode("utf-8", "replace").strip(" \t\r")
    return AuthorizedKey(line=text, options=line.options.text, key_type=key.type_name, blob=key.blob,
                         comment=key.comment.decode("utf-8", "replace").strip(" \t\r"), bits=key.bits, sshd=line)


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
    line = raw.lstrip(" \t").rstrip(" \t\r")  # sshd skips only spaces and tabs at the start; CRLF's "\r" ends
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
    sshd = read_authorized_keys(line.encode("utf-8"))[0]
    if sshd.key is None or sshd.problem is not None:  # sshd is the judge: it would not read this line
        raise _BadLine(sshd.problem or "sshd would not read this line")
    return AuthorizedKey(line=line, options=options, key_type=key_type, blob=blob, comment=comment, bits=bits,
                         sshd=sshd)


def _key_lines(text: str):
    """(line number, line) for every line that is not blank or a '#' comment."""
    for lineno, raw in enumerate(text.split("\n"), 1):
        stripped = raw.lstrip(" \t").rstrip(" \t\r")  # as sshd: a "\r" before the key or "#" is no blank
        if stripped and not stripped.startswith("#"):
            yield lineno, raw


def parse_authorized_keys(text: str, source: str, *, options_refused: str | None = None) -> list[AuthorizedKey]:
    """A .pub or authorized_keys file given by the user: every key line must be acceptable, or UsageError.
    `options_refused`, when given, is why a line with options is refused (keys served by a forge)."""
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
        if options_refused and keys[-1].options is not None:
            raise UsageError(f"{source}:{lineno}: {options_refused}",
                             hint="to restrict a key, put it with its options in a local file and give that file")
    if not keys:
        raise UsageError(f"{source} holds no public key")
    return keys


def read_image_keys(raw: bytes, now: float) -> tuple[list[AuthorizedKey], list[str]]:
    """An image's authorized_keys (untrusted), as sshd reads it: every line holding a key sshd reads (whether
    or not it lets anybody in now), and one problem per line that lets nobody in (never its text). Never
    raises; linear in the file's size."""
    keys: list[AuthorizedKey] = []
    problems: list[str] = []
    for line in read_authorized_keys(raw):
        if line.key is not None:
            keys.append(from_key_line(line))
        why = line.why_not(now)
        if (line.key is not None or line.problem is not None) and why is not None:
            problems.append(f"line {line.number}: {why}")
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
        return _parse_key_line(one_line(public_line, "a public key line"))
    except _BadLine as exc:
        raise UsageError(f"bad public key line: {exc}") from None


def known_hosts_line(host: str, public_line: str) -> str:
    """'<host> <type> <base64>' for a known_hosts file (no comment)."""
    if not host or any(c.isspace() for c in host) or any(ord(c) < 0x20 for c in host):
        raise UsageError("the known_hosts host name must be non-empty and contain no whitespace")
    key = _single_key(public_line)
    return f"{host} {key.key_type} {base64.b64encode(key.blob).decode('ascii')}"


def key_summary(key: AuthorizedKey) -> dict[str, Any]:
    """What JSON output says of a key: never more than authorized_keys itself shows."""
    return {
        "type": key.key_type,
        "bits": key.bits,
        "fingerprint": key.fingerprint,
        "comment": key.comment,
        "options": key.options,
    }
