"""authorized_keys as OpenSSH 9.2's sshd reads it: the one model of who gets in by key. Pure: no I/O.

Every command asks this module, none splits key lines itself: seed's plan, `keys`, `inspect --check`,
`inspect --find-key` and the rule that nobody is locked out. Its answers are judged against a real
`sshd -D` (tests/sshd: where model and sshd differ, sshd is right). The rules, from openssh-portable 9.2:

- The file (auth2-pubkeyfile.c `auth_check_authkeys_file`): read with getline, any number of lines of any
  length; each line is a C string (a NUL ends it); leading spaces and tabs are skipped; an empty line or one
  starting with "#" is skipped. Only "\\n" ends a line: a "\\r" stays in it (in a comment it is part of the
  comment; at the end of the base64 it is skipped as b64_pton skips white space).
- A line (`auth_check_authkey_line`): a key at the start (`sshkey_read`), else options, white space, then a
  key (`sshkey_advance_past_options`: the options end at the first space or tab outside double quotes, \\"
  inside them is a quote; an unterminated quote drops the line). Then the options are parsed
  (auth-options.c `sshauthopt_parse`); bad options drop the line.
- A key (sshkey.c `sshkey_read`): a type name ending at a space or tab (its full name: ssh-ed25519,
  rsa-sha2-512 for an RSA key too; not RSA or ED25519, which sshd refuses), spaces and tabs, the base64 blob up to the next space or tab
  (b64_pton: strict padding, white space inside skipped), and the rest, after spaces and tabs, is the
  comment: any bytes. The blob (`sshkey_fromb`) must be a whole key of the line's type: RSA of 1024 bits up
  to 16384 (SSH_RSA_MINIMUM_MODULUS_SIZE, SSHBUF_MAX_BIGNUM), ed25519 of 32 bytes, ECDSA an uncompressed
  point on the named curve, sk- keys with their application string, certificates.
- Login with a plain key (auth2-pubkeyfile.c, auth-options.c `sshauthopt_parse`/`auth_authorise_keyopts`):
  the line's key must equal the key offered, the line must not say cert-authority (a CA line admits only
  certificates the CA signed), `expiry-time` must not be past, and the key's algorithm must be one sshd
  accepts by default (PubkeyAcceptedAlgorithms leaves out ssh-dss). A certificate written into
  authorized_keys never logs in (sshd compares the offered key with the line's; a certificate line only
  equals a certificate, and certificates are judged against cert-authority lines).

What counts as *a way in* (the lock-out rule): a line whose key logs in now (from=, command=, restrict and
the like only restrict it: shown as restricted), and a cert-authority line not expired (certificates the
CA signs). sk- keys are ways in: sshd accepts them with their hardware token, which the person holds.

The module is long because it is one reading of one file format, rule by rule in sshd's order, kept in one
place so that it can be read side by side with sshd's sources and judged against sshd as a whole.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass, field


# sshkey.c keyimpls of an OpenSSL build without XMSS: full name -> (kind, certificate?)
_ED25519, _ED25519_SK, _ECDSA, _ECDSA_SK, _RSA, _DSA = "ED25519", "ED25519-SK", "ECDSA", "ECDSA-SK", "RSA", "DSA"
_FULL_NAMES = {
    "ssh-ed25519": (_ED25519, False),
    "ssh-ed25519-cert-v01@openssh.com": (_ED25519, True),
    "sk-ssh-ed25519@openssh.com": (_ED25519_SK, False),
    "sk-ssh-ed25519-cert-v01@openssh.com": (_ED25519_SK, True),
    "ecdsa-sha2-nistp256": (_ECDSA, False),
    "ecdsa-sha2-nistp384": (_ECDSA, False),
    "ecdsa-sha2-nistp521": (_ECDSA, False),
    "ecdsa-sha2-nistp256-cert-v01@openssh.com": (_ECDSA, True),
    "ecdsa-sha2-nistp384-cert-v01@openssh.com": (_ECDSA, True),
    "ecdsa-sha2-nistp521-cert-v01@openssh.com": (_ECDSA, True),
    "sk-ecdsa-sha2-nistp256@openssh.com": (_ECDSA_SK, False),
    "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com": (_ECDSA_SK, True),
    "ssh-rsa": (_RSA, False),
    "rsa-sha2-256": (_RSA, False),
    "rsa-sha2-512": (_RSA, False),
    "ssh-rsa-cert-v01@openssh.com": (_RSA, True),
    "rsa-sha2-256-cert-v01@openssh.com": (_RSA, True),
    "rsa-sha2-512-cert-v01@openssh.com": (_RSA, True),
    "ssh-dss": (_DSA, False),
    "ssh-dss-cert-v01@openssh.com": (_DSA, True),
}
_CURVES = {"ecdsa-sha2-nistp256": b"nistp256", "ecdsa-sha2-nistp384": b"nistp384", "ecdsa-sha2-nistp521": b"nistp521",
           "sk-ecdsa-sha2-nistp256@openssh.com": b"nistp256"}
_CURVE_POINT_BYTES = {b"nistp256": 65, b"nistp384": 97, b"nistp521": 133}  # uncompressed: 0x04 || x || y
_RSA_MIN_BITS, _RSA_MAX_BITS = 1024, 16384  # SSH_RSA_MINIMUM_MODULUS_SIZE, SSHBUF_MAX_BIGNUM * 8
_BLANKS = " \t"  # sshkey_read and skip_space separate fields with these only
_B64_SKIPPED = re.compile(rb"[\n\v\f\r]")  # b64_pton skips isspace(); space and tab already end the token

# sshauthopt_parse: flags (opt_flag; those with allow_negate take "no-"), then name="value" options
_FLAGS = {"restrict": False, "cert-authority": False, "port-forwarding": True, "agent-forwarding": True,
          "x11-forwarding": True, "touch-required": True, "verify-required": True, "pty": True, "user-rc": True}
_VALUED = ("command", "principals", "from", "expiry-time", "environment", "tunnel", "permitopen", "permitlisten")
# restrictions shown with a key that still logs in (the others only narrow what a session may do)
_SHOWN_RESTRICTIONS = ("from", "command", "restrict")


@dataclass(frozen=True)
class ParsedKey:
    """A key as sshkey_read read it from a line."""

    type_name: str  # as written in the line (ssh-ed25519, rsa-sha2-512 ...)
    kind: str  # ED25519, ED25519-SK, ECDSA, ECDSA-SK, RSA, DSA
    certificate: bool
    blob: bytes  # the decoded base64: the key's identity
    bits: int
    comment: bytes  # any bytes, as sshd keeps them


@dataclass(frozen=True)
class KeyOptions:
    """What sshauthopt_parse made of a line's options."""

    text: str | None = None  # as written (decoded for display), None: no options
    cert_authority: bool = False
    expires: int | None = None  # expiry-time as seconds since the epoch (the earliest, if several)
    restricted_by: tuple[str, ...] = ()  # from, command, restrict: what a login with the key is held to


@dataclass(frozen=True)
class KeyLine:
    """One line of the file, numbered from 1, with what sshd makes of it."""

    number: int
    raw: bytes  # the line without its "\\n"
    key: ParsedKey | None = None
    options: KeyOptions = field(default_factory=KeyOptions)
    problem: str | None = None  # why sshd skips the line (a fixed reason, never the line's text)

    @property
    def is_key(self) -> bool:
        return self.key is not None

    def logs_in(self, now: float) -> bool:
        """Whether sshd lets the line's key itself log in now (a plain key login, what ssh -i KEY does)."""
        return self.why_not(now) is None and not self.options.cert_authority

    def way_in(self, now: float) -> bool:
        """Whether the line lets somebody in now: its key, or certificates its CA key signs."""
        return self.why_not(now) is None

    def why_not(self, now: float) -> str | None:
        """None when the line is a way in now; else why not, in fixed words."""
        if self.key is None:
            return self.problem or "no key"
        if self.problem is not None:
            return self.problem
        if self.key.certificate:
            return "a certificate: sshd never lets a certificate in through an authorized_keys line"
        if self.key.kind == _DSA:
            return "an ssh-dss (DSA) key: sshd's default PubkeyAcceptedAlgorithms refuses it"
        if self.options.expires is not None and self.options.expires < now:
            return "expired (expiry-time is past)"
        return None

    def restriction(self) -> str | None:
        """How a way in is narrowed, in words: "certificates signed by this CA", "from=, command=", or None."""
        if self.options.cert_authority:
            return "cert-authority: only certificates this key signs"
        if self.options.restricted_by:
            return "restricted (" + ", ".join(f"{name}=" if name != "restrict" else name
                                              for name in self.options.restricted_by) + ")"
        return None


def read_authorized_keys(raw: bytes) -> tuple[KeyLine, ...]:
    """Every line of an authorized_keys file as sshd reads it (blank and "#" lines included, as lines
    without a key and without a problem). Linear in the file's size; never raises."""
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return tuple(_read_line(number, line) for number, line in enumerate(lines, 1))


def _read_line(number: int, raw: bytes) -> KeyLine:
    text = raw.split(b"\0", 1)[0]  # a C string: a NUL ends it
    start = len(text) - len(text.lstrip(b" \t"))
    body = text[start:]
    if not body.strip(b" \t\r\v\f") or body.startswith(b"#"):
        return KeyLine(number, raw)  # blank (a lone "\r" too: sshd reads no key in it, nor is it a problem)
    try:
        key = _read_key(body)
        options_text = None
        if key is None:
            end = _past_options(body)
            if end is None:
                return KeyLine(number, raw, problem="an unterminated quote in the options")
            options_text = body[:end]
            key = _read_key(body[end:].lstrip(b" \t"))
            if key is None:
                return KeyLine(number, raw, problem="no key sshd can read")
        try:
            options = parse_options(options_text)
        except _BadOptions as exc:
            return KeyLine(number, raw, key=key, problem=f"bad options: {exc}")
        return KeyLine(number, raw, key=key, options=options)
    except Exception as exc:  # untrusted input never crashes a report
        return KeyLine(number, raw, problem=f"unreadable ({type(exc).__name__})")


def _type_of(name: bytes) -> tuple[str, bool] | None:
    """(kind, certificate?) of a key type name: the full name only, in its case (sshd refuses a line that
    says RSA or ed25519: tests/sshd)."""
    try:
        return _FULL_NAMES.get(name.decode("ascii"))
    except UnicodeDecodeError:
        return None


def _token_end(data: bytes, start: int) -> int:
    """strcspn(data + start, " \\t")."""
    ends = [i for i in (data.find(b" ", start), data.find(b"\t", start)) if i >= 0]
    return min(ends) if ends else len(data)


def _read_key(data: bytes) -> ParsedKey | None:
    """sshkey_read at the start of `data`: the key, or None where sshd would not read one."""
    space = _token_end(data, 0)
    if space == len(data):
        return None  # a type and nothing after it
    name = data[:space]
    typed = _type_of(name)
    if typed is None:
        return None
    kind, certificate = typed
    pos = space
    while pos < len(data) and data[pos] in b" \t":
        pos += 1
    if pos == len(data):
        return None
    end = _token_end(data, pos)
    blob = _b64_pton(data[pos:end])
    if blob is None:
        return None
    bits = _check_blob(blob, kind, certificate, name.decode("ascii"))
    if bits is None:
        return None
    comment = data[end:].lstrip(b" \t")
    return ParsedKey(name.decode("ascii"), kind, certificate, blob, bits, comment)


def _b64_pton(token: bytes) -> bytes | None:
    """OpenSSH's b64_pton: white space skipped, padding required and only at the end, no stray bits."""
    text = _B64_SKIPPED.sub(b"", token)
    if not text or len(text) % 4:
        return None
    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return blob if base64.b64encode(blob) == text else None


def _strings(blob: bytes) -> Iterator[bytes]:
    offset = 0
    while offset < len(blob):
        if offset + 4 > len(blob):
            raise ValueError("truncated")
        size = int.from_bytes(blob[offset:offset + 4], "big")
        if offset + 4 + size > len(blob):
            raise ValueError("truncated")
        yield blob[offset + 4:offset + 4 + size]
        offset += 4 + size


def _mpint_bits(value: bytes) -> int | None:
    """sshbuf_get_bignum2: a negative number is refused, leading zeros trimmed, at most 16384 bits."""
    if value and value[0] & 0x80:
        return None
    if len(value) > _RSA_MAX_BITS // 8 + 1 or (len(value) == _RSA_MAX_BITS // 8 + 1 and value[0] != 0):
        return None
    return int.from_bytes(value, "big").bit_length()


def _check_blob(blob: bytes, kind: str, certificate: bool, line_type: str) -> int | None:
    """sshkey_fromb: the key's size in bits when the blob is a whole key of the line's type, else None."""
    try:
        fields = list(_strings(blob))
    except ValueError:
        return None
    if not fields or _type_of(fields[0]) != (kind, certificate):
        return None
    inner = fields[0].decode("ascii")
    if kind in (_ECDSA, _ECDSA_SK) and not certificate:
        if _CURVES.get(inner) != _CURVES.get(line_type) or _CURVES.get(inner) is None:
            return None
    if certificate:
        return _certificate_bits(fields, kind)
    return _plain_bits(fields[1:], kind, _CURVES.get(inner))


def _plain_bits(fields: list[bytes], kind: str, curve: bytes | None) -> int | None:
    if kind == _ED25519:
        return 256 if len(fields) == 1 and len(fields[0]) == 32 else None
    if kind == _ED25519_SK:
        return 256 if len(fields) == 2 and len(fields[0]) == 32 else None
    if kind == _RSA:
        if len(fields) != 2 or _mpint_bits(fields[0]) is None:
            return None
        bits = _mpint_bits(fields[1])
        return bits if bits is not None and _RSA_MIN_BITS <= bits <= _RSA_MAX_BITS else None
    if kind == _DSA:
        return 1024 if len(fields) == 4 and all(_mpint_bits(f) is not None for f in fields) else None
    wanted = 3 if kind == _ECDSA_SK else 2
    if len(fields) != wanted or curve is None or fields[0] != curve or not _on_curve(curve, fields[1]):
        return None
    return {b"nistp256": 256, b"nistp384": 384, b"nistp521": 521}[curve]


def _on_curve(curve: bytes, point: bytes) -> bool:
    """sshbuf_get_eckey + sshkey_ec_validate_public: an uncompressed point on the curve."""
    if len(point) != _CURVE_POINT_BYTES[curve] or point[0] != 4:
        return False
    from cryptography.hazmat.primitives.asymmetric import ec  # lazy: only for ECDSA lines

    named = {b"nistp256": ec.SECP256R1, b"nistp384": ec.SECP384R1, b"nistp521": ec.SECP521R1}[curve]()
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(named, point)
    except ValueError:
        return False
    return True


def _certificate_bits(fields: list[bytes], kind: str) -> int | None:
    """A certificate line is never a way in: its structure up to the key is read, its signature is not."""
    key_fields = {_ED25519: 1, _ED25519_SK: 2, _RSA: 2, _DSA: 4, _ECDSA: 2, _ECDSA_SK: 3}[kind]
    if len(fields) < 2 + key_fields:
        return None
    if kind == _RSA:
        return _mpint_bits(fields[3])
    return {_DSA: 1024}.get(kind, 256)


class _BadOptions(Exception):
    """Why sshauthopt_parse refused a line's options (fixed words)."""


def _past_options(data: bytes) -> int | None:
    """sshkey_advance_past_options: where the options end, or None for an unterminated quote."""
    quoted = False
    i = 0
    while i < len(data) and (quoted or data[i] not in b" \t"):
        if data[i:i + 2] == b'\\"':
            i += 1
        elif data[i:i + 1] == b'"':
            quoted = not quoted
        i += 1
    return None if (i == len(data) and quoted) else i


def parse_options(options: bytes | None) -> KeyOptions:
    """sshauthopt_parse. Raises _BadOptions where sshd refuses the options (the line then lets nobody in)."""
    if options is None:
        return KeyOptions()
    cert_authority = False
    expires: int | None = None
    seen: list[str] = []
    pos = 0
    lowered = options.lower()
    while pos < len(options) and options[pos:pos + 1] not in (b" ", b"\t"):
        if options[pos:pos + 1] == b",":  # an empty option: sshd passes over it (",no-pty", "a,,b", "a,": tests/sshd)
            pos += 1
            continue
        name, pos, value = _one_option(options, lowered, pos)
        if name == "cert-authority":
            cert_authority = True
        elif name == "expiry-time":
            stamp = _absolute_time(value or b"")
            if stamp is None:
                raise _BadOptions("invalid expires time")
            expires = stamp if expires is None else min(expires, stamp)
        elif name in ("command", "principals", "from") and name in seen:
            raise _BadOptions(f'multiple "{name}" clauses')
        elif name == "environment" and not _valid_environment(value or b""):
            raise _BadOptions("invalid environment string")
        elif name == "tunnel" and not _valid_tunnel(value or b""):
            raise _BadOptions("invalid tun device")
        elif name in ("permitopen", "permitlisten") and not _valid_permit(value or b"", name == "permitlisten"):
            raise _BadOptions("invalid permission")
        seen.append(name)
        if pos >= len(options) or options[pos:pos + 1] in (b" ", b"\t"):
            break
        if options[pos:pos + 1] != b",":
            raise _BadOptions("unknown key option")
    restricted = tuple(name for name in _SHOWN_RESTRICTIONS if name in seen)
    return KeyOptions(options.decode("utf-8", "replace"), cert_authority, expires, restricted)


def _one_option(options: bytes, lowered: bytes, pos: int) -> tuple[str, int, bytes | None]:
    """One option at `pos` (opt_flag: a prefix match in any case; opt_match: name and "=" then a quoted
    value, opt_dequote): its name, where it ends, its value."""
    for flag, negatable in _FLAGS.items():
        at = pos + 3 if negatable and lowered.startswith(b"no-", pos) else pos
        if lowered.startswith(flag.encode(), at):
            return flag, at + len(flag), None
    for name in _VALUED:
        if lowered.startswith(name.encode() + b"=", pos):
            value, end = _dequote(options, pos + len(name) + 1)
            return name, end, value
    raise _BadOptions("unsupported option")


def _dequote(options: bytes, pos: int) -> tuple[bytes, int]:
    """opt_dequote: a double-quoted value, \\" a quote inside it."""
    if options[pos:pos + 1] != b'"':
        raise _BadOptions("missing start quote")
    pos += 1
    value = bytearray()
    while pos < len(options) and options[pos:pos + 1] != b'"':
        if options[pos:pos + 2] == b'\\"':
            pos += 1
        value += options[pos:pos + 1]
        pos += 1
    if pos >= len(options):
        raise _BadOptions("missing end quote")
    return bytes(value), pos + 1


def _absolute_time(text: bytes) -> int | None:
    """misc.c parse_absolute_time: YYYYMMDD[HHMM[SS]], a trailing Z or UTC for UTC, local time otherwise
    (NixOS runs in UTC unless time.timeZone says otherwise); 0 or before the epoch is refused."""
    value = text.decode("latin-1")
    if len(value) > 1 and value[-1] in "zZ":
        value = value[:-1]
    elif len(value) > 3 and value[-3:].lower() == "utc":
        value = value[:-3]
    if len(value) not in (8, 12, 14) or not value.isascii() or not value.isdigit():
        return None
    parts = [int(value[i:i + w]) for i, w in ((0, 4), (4, 2), (6, 2), (8, 2), (10, 2), (12, 2)) if i < len(value)]
    year, month, day, hour, minute, second = (parts + [0, 0, 0])[:6]
    if not (1 <= month <= 12 and 1 <= day <= 31 and hour <= 23 and minute <= 59 and second <= 61):
        return None  # glibc strptime's ranges for %m %d %H %M %S
    if year < 1970:
        return None
    stamp = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))  # mktime's normalising
    return stamp if stamp > 0 else None


def _valid_environment(value: bytes) -> bool:
    """NAME=value, NAME of ASCII letters, digits and "_" (valid_env_name)."""
    name, eq, _ = value.partition(b"=")
    return bool(eq) and re.fullmatch(rb"[A-Za-z0-9_]+", name) is not None


def _valid_tunnel(value: bytes) -> bool:
    """a2tun: "any", or a number below SSH_TUNID_MAX; "N:M" forms are refused here."""
    return value.lower() == b"any" or (value.isdigit() and int(value) < 0x7fffffff - 2)


def _valid_permit(value: bytes, bare_port: bool) -> bool:
    """handle_permit: host:port (a bare port for permitlisten), the port a number 1..65535 or "*"."""
    if bare_port and b":" not in value:
        value = b"*:" + value
    host, _, port = value.rpartition(b":")
    if host.startswith(b"[") and host.endswith(b"]"):
        host = host[1:-1]
    if not host or not port:
        return False
    return port == b"*" or (port.isdigit() and 0 < int(port) <= 65535)
