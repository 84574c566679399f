"""Properties of the credential parsers on generated input: the authorized_keys parsers, the password-hash
validator and the password-file describer.

Each either accepts or refuses with UsageError (the lenient and describing readers never raise), never
another exception, never echoes key data or a hash in a refusal; what they accept is checked against
independent implementations: libxcrypt (through ctypes, what PAM runs in the VM) for hashes, ssh-keygen for
keys whose data was mutated and still accepted.

Inputs start from real material (keys made by cryptography, hashes made by libxcrypt) and are mutated:
options from sshd's grammar and beyond it, flipped and truncated key blobs, broken base64, control
characters, line endings; hashes with edited salts, rounds, parameters and line endings.

Default: a few hundred examples each; ZVM_PROPERTY_EXAMPLES=N runs N (see conftest.py).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import event, example, given
from hypothesis import strategies as st

from provision.core.credentials import passwords, sshkeys
from provision.errors import UsageError
from tests.support import libxcrypt


def image_keys(text: str):
    """An image's file as the commands read it (core.credentials.authorizedkeys, sshd's rules), now."""
    return sshkeys.read_image_keys(text.encode("utf-8", "surrogateescape"), time.time())


SOURCE = "keys.pub"
CRYPT64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
NASTY = ["\x00", "\t", "\n", "\r", "\r\n", "\x0b", "\x1b", "\x7f", "\x85", "\u2028", "\ufeff", "\udcff", " ", '"',
         "\\", ",", "#", "$", ":", "=", "é", "😀"]  # fmt: skip


def ssh_string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def openssh_line(key) -> str:
    return key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode()


def make_real_lines() -> list[str]:
    point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    sk_ed = ssh_string(sshkeys._SK_ED25519.encode()) + ssh_string(bytes(range(32))) + ssh_string(b"ssh:")
    sk_ec = ssh_string(sshkeys._SK_ECDSA.encode()) + ssh_string(b"nistp256") + ssh_string(point) + ssh_string(b"ssh:")
    return [
        openssh_line(ed25519.Ed25519PrivateKey.generate()),
        openssh_line(ec.generate_private_key(ec.SECP256R1())),
        openssh_line(ec.generate_private_key(ec.SECP384R1())),
        openssh_line(ec.generate_private_key(ec.SECP521R1())),
        openssh_line(rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        f"{sshkeys._SK_ED25519} {base64.b64encode(sk_ed).decode()}",
        f"{sshkeys._SK_ECDSA} {base64.b64encode(sk_ec).decode()}",
    ]


REAL_LINES = make_real_lines()
REAL_BLOBS = {line.split()[1] for line in REAL_LINES}


# -- authorized_keys lines --------------------------------------------------------------------------


def mutated_bytes(data: bytes) -> st.SearchStrategy[bytes]:
    """A blob with a byte flipped, a length prefix rewritten, a cut, or bytes inserted."""

    @st.composite
    def strategy(draw) -> bytes:
        blob = bytearray(data)
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, max(len(blob) - 1, 0)))
            kind = draw(st.sampled_from(["flip", "length", "cut", "insert"]))
            if kind == "flip" and blob:
                blob[at] ^= 1 << draw(st.integers(0, 7))
            elif kind == "length" and len(blob) >= at + 4:
                value = draw(st.sampled_from([0, 1, 3, 4, 32, 33, 65, 2**31, 2**32 - 1, len(blob)]))
                blob[at : at + 4] = value.to_bytes(4, "big")
            elif kind == "cut":
                del blob[at:]
            else:
                blob[at:at] = draw(st.binary(min_size=1, max_size=8))
        return bytes(blob)

    return strategy()


option_name = st.one_of(st.sampled_from(sorted(sshkeys._VALUED_OPTIONS | sshkeys._FLAG_OPTIONS)),
                        st.sampled_from(["Restrict", "NO-PTY", "bogus", "", "from ", "x=y"]),
                        st.text(alphabet="abcdefghijklmnopqrstuvwxyz-=", max_size=12))  # fmt: skip
option_value = st.one_of(
    st.text(alphabet=st.sampled_from(['"', "\\", ",", " ", "\t", "a", "*", "=", "é"]), max_size=12),
    st.text(max_size=12),
)


@st.composite
def options(draw) -> str:
    items = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(option_name)
        form = draw(st.sampled_from(["flag", "quoted", "bare", "unterminated"]))
        value = draw(option_value)
        items.append({"flag": name, "quoted": f'{name}="{value}"', "bare": f"{name}={value}",
                      "unterminated": f'{name}="{value}'}[form])  # fmt: skip
    return ",".join(items)


@st.composite
def key_line(draw) -> tuple[str, str]:
    """(line, the base64 key data it carries)"""
    kind, data = draw(st.sampled_from(REAL_LINES)).split(" ")
    how = draw(st.sampled_from(["real"] * 4 + ["blob", "blob", "base64", "type", "random-type"]))
    if how == "blob":
        data = base64.b64encode(draw(mutated_bytes(base64.b64decode(data)))).decode()
    elif how == "base64":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.text(alphabet="=+/-_.! \tA\x00é", max_size=3)) + data[at + 1 :]
    elif how == "type":
        kind = draw(st.sampled_from(sorted(sshkeys._KEY_TYPES) + ["ssh-dss", "ssh-rsa-cert-v01@openssh.com"]))
    elif how == "random-type":
        kind = draw(st.text(max_size=12))
    parts = [kind, data]
    if draw(st.booleans()):
        parts.append(draw(st.one_of(st.just("me@laptop"), st.text(max_size=20),
                                    st.sampled_from(NASTY).map(lambda ch: f"me{ch}laptop"))))
    separator = draw(st.sampled_from([" ", "\t", "  ", " \t"]))
    line = separator.join(parts)
    if draw(st.integers(0, 2)) == 0:
        line = draw(options()) + draw(st.sampled_from([" ", "\t"])) + line
    if draw(st.integers(0, 4)) == 0:  # a nasty character somewhere
        at = draw(st.integers(0, len(line)))
        line = line[:at] + draw(st.sampled_from(NASTY)) + line[at:]
    if draw(st.integers(0, 5)) == 0:  # cut anywhere (inside the options, the type, the data), or after a quote
        quotes = [i + 1 for i, ch in enumerate(line) if ch in '"\\']  # or a backslash: the quoting edge cases
        line = line[: draw(st.one_of(st.integers(0, len(line)), st.sampled_from(quotes or [len(line)])))]
    return line, data


@st.composite
def authorized_keys_text(draw) -> tuple[str, list[str]]:
    """(file text, the key data it carries)"""
    lines, blobs = [], []
    for _ in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(["key"] * 6 + ["blank", "comment", "private", "rfc4716", "junk", "options-only"]))
        if kind == "key":
            line, blob = draw(key_line())
            lines.append(line)
            blobs.append(blob)
        else:
            lines.append({"blank": "", "comment": "# a comment", "private": "-----BEGIN OPENSSH PRIVATE KEY-----",
                          "rfc4716": "---- BEGIN SSH2 PUBLIC KEY ----", "junk": draw(st.text(max_size=40)),
                          "options-only": draw(options())}[kind])  # fmt: skip
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(lines) + draw(st.sampled_from(["", ending]))
    if draw(st.integers(0, 10)) == 0:
        text += "x" * sshkeys.MAX_KEY_LINE_BYTES  # an overlong last line
    return text, blobs


def key_fields(keys: list[sshkeys.AuthorizedKey]) -> list[tuple]:
    return [(k.line, k.options, k.key_type, k.blob, k.comment, k.bits) for k in keys]


def ssh_keygen_agrees(key: sshkeys.AuthorizedKey) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "k"
        path.write_text(key.line + "\n")
        out = subprocess.run(["ssh-keygen", "-lf", str(path)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"ssh-keygen refuses a key we accepted: {key.line!r}: {out.stderr}"
    assert out.stdout.split()[:2] == [str(key.bits), key.fingerprint]


def check_parsers(text: str, blobs: list[str]) -> None:
    try:
        keys = sshkeys.parse_authorized_keys(text, SOURCE)
    except UsageError as exc:
        event("refused: " + re.sub(r"[0-9]+", "#", exc.message.removeprefix(SOURCE).lstrip(":0123456789 "))[:60])
        for blob in blobs:
            assert len(blob) < 20 or blob not in exc.message  # key data is never echoed
        keys = None
    lenient, problems = image_keys(text)
    assert not [p for p in problems if "unreadable (" in p], problems  # an exception the parser did not expect
    if keys is None:
        return
    event(f"accepted: {len(keys)} key(s)")
    # a key line reaches terminals through reports: no control character but tab, no line break
    assert keys and not [k.line for k in keys if re.search("[\x00-\x08\x0a-\x1f\x7f-\x9f]", k.line)]
    # what was accepted reads back the same once written, and the lenient reader agrees
    assert key_fields(sshkeys.parse_authorized_keys(sshkeys.render_authorized_keys(keys).decode(), SOURCE)) == key_fields(keys)
    assert key_fields(lenient) == key_fields(keys) and problems == []
    for key in keys:
        if base64.b64encode(key.blob).decode() not in REAL_BLOBS and shutil.which("ssh-keygen"):
            event("accepted: a mutated key blob, checked with ssh-keygen")
            ssh_keygen_agrees(key)


@given(key_line(), st.sampled_from(["", "\n", "\r\n"]))
def test_a_key_line_is_parsed_or_refused_with_a_usage_error(generated, ending):
    line, blob = generated
    check_parsers(line + ending, [blob])


@given(authorized_keys_text())
@example(("\r" + REAL_LINES[0], [REAL_LINES[0].split(" ")[1]]))  # sshd skips only spaces and tabs: no key read there
@example(("\r# a comment\n" + REAL_LINES[0], [REAL_LINES[0].split(" ")[1]]))
def test_authorized_keys_files_are_parsed_or_refused_with_a_usage_error(generated):
    check_parsers(*generated)


@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1"))))
def test_arbitrary_text_is_parsed_or_refused_with_a_usage_error(text):
    try:
        sshkeys.parse_authorized_keys(text, SOURCE)
    except UsageError:
        pass
    _keys, problems = image_keys(text)
    assert not [p for p in problems if "unreadable (" in p], problems


# -- password hashes --------------------------------------------------------------------------------


def make_real_hashes() -> list[str]:
    settings = [libxcrypt.gensalt("$6$"), libxcrypt.gensalt("$6$", 1000), libxcrypt.gensalt("$6$", 656000),
                "$6$rounds=5000$" + libxcrypt.gensalt("$6$").split("$")[2], "$6$short$",
                libxcrypt.gensalt("$y$", 1), libxcrypt.gensalt("$y$", 3), libxcrypt.gensalt("$y$", 5)]
    return [libxcrypt.crypt("pw", setting) for setting in settings]


REAL_HASHES = make_real_hashes()


@st.composite
def hash_text(draw) -> tuple[str, list[str]]:
    """(text, the salt and hash fields of the real hash it was made from)"""
    real = draw(st.sampled_from(REAL_HASHES))
    fields = [f for f in real.split("$") if len(f) >= 8]
    text = real
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["replace", "insert", "delete", "rounds", "rounds", "params", "params", "cut"]))
        char = draw(st.one_of(st.sampled_from(CRYPT64), st.sampled_from(NASTY)))
        if kind == "replace":
            text = text[:at] + char + text[at + 1 :]
        elif kind == "insert":
            text = text[:at] + char + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + 1 :]
        elif kind == "rounds" and text.startswith("$6$"):
            rounds = draw(st.one_of(st.sampled_from(["", "0", "00", "999", "1000", "01000", "0656000", "5000",
                                                     "999999999", "1000000000", "1e4", "-5", " 5000", "٣٠٠٠"]),
                                    st.integers(0, 10**12).map(str)))  # fmt: skip
            rest = text.removeprefix("$6$")  # salt$hash, or rounds=N$salt$hash
            rest = rest.split("$", 1)[1] if rest.startswith("rounds=") and "$" in rest else rest
            text = f"$6$rounds={rounds}${rest}"
        elif kind == "params" and text.startswith("$y$") and text.count("$") >= 3:
            _, _, params, rest = text.split("$", 3)
            params = draw(st.one_of(st.text(alphabet=CRYPT64, min_size=1, max_size=8),
                                    st.sampled_from(["j9T", "j75", "j85", "j9U", "jZT", "j9", "j9T.", ".9T"])))
            text = f"$y${params}${rest}"
        elif kind == "cut":
            text = text[:at]
    text += draw(st.sampled_from(["", "", "\n", "\r\n", "\n\n", "\r", " ", "\nmore"]))
    return text, fields


def expected_rounds(accepted: str) -> int | None:
    m = re.match(r"\$6\$(?:rounds=([0-9]+)\$)?", accepted)
    if m is None:
        return None
    return int(m.group(1)) if m.group(1) else 5000


@given(hash_text())
def test_password_hashes_are_accepted_only_when_libxcrypt_can_verify_them(generated):
    text, secret_fields = generated
    try:
        value = passwords.validate_password_hash(text).reveal()
    except UsageError as exc:
        event("refused: " + exc.message[:50])
        for field in secret_fields:
            assert field not in exc.message  # the hash is never echoed
        return
    algorithm = "yescrypt" if value.startswith("$y$") else "sha512-crypt"
    event(f"accepted: {algorithm}")
    info = passwords.describe_password_file((value + "\n").encode())
    assert info == passwords.PasswordInfo("set", algorithm, expected_rounds(value))
    # PAM (libxcrypt) must be able to check a password against it: no failure token, no lock-out. Up to
    # 999999999 rounds are accepted (libxcrypt's range, checked in credentials/test_passwords.py): with many
    # rounds the same setting is checked at 1000 rounds, which costs milliseconds instead of minutes.
    setting = value
    if algorithm == "sha512-crypt" and info.rounds > 5000:
        setting = re.sub(r"^\$6\$rounds=[0-9]+\$", "$6$rounds=1000$", value)
    made = libxcrypt.crypt("pw", setting)
    assert not made.startswith("*"), f"libxcrypt cannot use a hash we accepted: {value!r}"
    assert made.split("$")[:-1] == setting.split("$")[:-1]  # same method, rounds or parameters, salt


@given(st.one_of(hash_text().map(lambda t: t[0].encode("utf-8", "surrogatepass")), st.binary(max_size=200)))
def test_describing_any_password_file_never_raises(content):
    info = passwords.describe_password_file(content)
    assert info.state in ("set", "locked", "invalid")
    event(info.state)
    if info.state == "set":
        assert passwords.validate_password_hash(content.decode("ascii")).reveal()  # the same verdict as the validator
