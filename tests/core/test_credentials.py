"""Tests for provision.core.credentials (passwords, sshkeys, hostkeys, netbird, identity): no appliance. Key material is generated at run time.

Hashes are verified with libxcrypt (through ctypes, tests/support/libxcrypt.py), not passlib, so a passlib bug cannot
hide itself; fingerprints and descriptions are compared with `ssh-keygen -lf` where it is installed.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from provision.host import writing as hostfiles
from provision.core.credentials import hostkeys, identity, netbird, passwords, sshkeys
from provision.errors import UsageError
from provision.secret import Secret
from tests.support import libxcrypt  # the implementation PAM uses in the VM: the independent verifier

SSH_KEYGEN = shutil.which("ssh-keygen")
needs_ssh_keygen = pytest.mark.skipif(
    SSH_KEYGEN is None, reason="ssh-keygen not installed (apt-get install openssh-client)"
)

PASSWORD = "correct horse battery staple ü"
# Made by libxcrypt (crypt_gensalt "$y$", cost 5) for the password "pw".
YESCRYPT_PW = "$y$j9T$LF/yjyfFlimWFaKZ20vkD/$aoYvOF2LkYxKnsc39WbeMBE4vYUMqA28Tm1pWn8uwZ4"


# ------------------------------------------------------------------------------------------------
# helpers


def ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode("ascii")


def public_line(key, comment: str = "") -> str:
    openssh = serialization.Encoding.OpenSSH
    line = key.public_key().public_bytes(openssh, serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}" if comment else line


def sk_ed25519_line(comment: str = "me@fido", *, pk: bytes | None = None, app: bytes = b"ssh:") -> str:
    pk = os.urandom(32) if pk is None else pk
    blob = ssh_string(sshkeys._SK_ED25519.encode()) + ssh_string(pk) + ssh_string(app)
    return f"{sshkeys._SK_ED25519} {b64(blob)} {comment}".rstrip()


def sk_ecdsa_line(comment: str = "you@fido", *, point: bytes | None = None, app: bytes = b"ssh:") -> str:
    if point is None:
        point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    blob = ssh_string(sshkeys._SK_ECDSA.encode()) + ssh_string(b"nistp256") + ssh_string(point) + ssh_string(app)
    return f"{sshkeys._SK_ECDSA} {b64(blob)} {comment}".rstrip()


def refusal(text: str, source: str = "keys.pub") -> str:
    with pytest.raises(UsageError) as info:
        sshkeys.parse_authorized_keys(text, source)
    return str(info.value)


def ssh_keygen_l(tmp_path: Path, text: str) -> list[str]:
    f = tmp_path / "keys"
    f.write_text(text)
    out = subprocess.run([SSH_KEYGEN, "-lf", str(f)], capture_output=True, text=True, check=True).stdout
    return out.splitlines()


@pytest.fixture(scope="module")
def keys():
    """One private key per accepted classic type (RSA generation is the slow part: done once)."""
    return {
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "p256": ec.generate_private_key(ec.SECP256R1()),
        "p384": ec.generate_private_key(ec.SECP384R1()),
        "p521": ec.generate_private_key(ec.SECP521R1()),
        "rsa2048": rsa.generate_private_key(65537, 2048),
        "rsa3072": rsa.generate_private_key(65537, 3072),
    }


@pytest.fixture(scope="module")
def lines(keys):
    return {name: public_line(key, f"{name}@test") for name, key in keys.items()}


# ------------------------------------------------------------------------------------------------
# passwords


def test_import_is_lazy():
    """--help must stay fast: importing the module must not pull in passlib or cryptography."""
    code = (
        "import sys, provision.core.credentials.passwords, provision.core.credentials.sshkeys,"
        " provision.core.credentials.hostkeys, provision.core.credentials.netbird, provision.core.credentials.identity;"
        "print(sorted(m for m in ('passlib', 'cryptography') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert out.stdout.strip() == "[]"


def test_hash_password_verifies_with_libxcrypt():
    hashed = passwords.hash_password(PASSWORD, rounds=1000)
    assert isinstance(hashed, Secret)
    value = hashed.reveal()
    assert value.startswith("$6$rounds=1000$")
    salt = value.split("$")[3]
    assert len(salt) == 16
    assert libxcrypt.crypt(PASSWORD, value) == value
    assert libxcrypt.crypt("wrong", value) != value
    assert passwords.hash_password(PASSWORD, rounds=1000).reveal() != value  # fresh salt every time


def test_hash_password_default_rounds_verifies_with_libxcrypt():
    value = passwords.hash_password(PASSWORD).reveal()
    assert value.startswith(f"$6$rounds={passwords.SHA512_DEFAULT_ROUNDS}$")
    assert passwords.SHA512_DEFAULT_ROUNDS == 656000
    assert libxcrypt.crypt(PASSWORD, value) == value


@pytest.mark.parametrize("rounds", [999, 1_000_000_000, 0, -5])
def test_hash_password_refuses_rounds_out_of_range(rounds):
    with pytest.raises(UsageError, match=r"rounds must be 1000\.\.999999999"):
        passwords.hash_password(PASSWORD, rounds=rounds)


@pytest.mark.parametrize(
    "password, reason",
    [
        ("", "empty"),
        ("a\x00b", "NUL"),
        ("a\nb", "line break"),
        ("a\rb", "line break"),
        ("trailing\n", "line break"),
        ("é" * 2049, "4096 bytes"),  # 4098 bytes in UTF-8, though only 2049 characters
        ("x\udcff", "UTF-8"),  # a lone surrogate from surrogateescape-decoded input
    ],
)
def test_check_password_refusals(password, reason):
    with pytest.raises(UsageError, match=reason) as info:
        passwords.check_password(password)
    if len(password) > 2:
        assert password not in str(info.value)


def test_check_password_wants_8_characters_counted_as_characters_not_bytes():
    for short in ("x", "seven 7", "ééééééé"):
        with pytest.raises(UsageError, match="at least 8 characters"):
            passwords.check_password(short)
        with pytest.raises(UsageError, match="at least 8 characters"):
            passwords.hash_password(short, rounds=1000)
    passwords.check_password("eight 88")
    passwords.check_password("éééééééé")


def test_check_password_accepts_the_limit():
    passwords.check_password("x" * passwords.MAX_PASSWORD_BYTES)
    passwords.check_password("é" * (passwords.MAX_PASSWORD_BYTES // 2))
    passwords.check_password(" spaces and\ttabs ")


def test_validate_accepts_hashes_made_by_libxcrypt():
    explicit_default = "$6$rounds=5000$" + libxcrypt.gensalt("$6$").split("$")[2]
    for salt in (libxcrypt.gensalt("$6$"), explicit_default, libxcrypt.gensalt("$6$", 1000)):
        made = libxcrypt.crypt("pw", salt)
        assert passwords.validate_password_hash(made).reveal() == made
    assert libxcrypt.crypt("pw", YESCRYPT_PW) == YESCRYPT_PW  # the fixture is what libxcrypt computes
    assert passwords.validate_password_hash(YESCRYPT_PW).reveal() == YESCRYPT_PW


def test_validate_accepts_fresh_yescrypt_from_libxcrypt():
    for cost in (1, 5, 11):
        made = libxcrypt.crypt("pw", libxcrypt.gensalt("$y$", cost))
        assert made.startswith("$y$")
        assert passwords.validate_password_hash(made + "\n").reveal() == made


def test_validate_strips_one_line_ending():
    made = libxcrypt.crypt("pw", libxcrypt.gensalt("$6$", 1000))
    assert passwords.validate_password_hash(made + "\n").reveal() == made
    assert passwords.validate_password_hash(made + "\r\n").reveal() == made


SHA_BODY = "A" * 86
BAD_HASHES = [
    ("$1$abcdefgh$0123456789012345678901", "not a sha-512"),
    ("$2b$12$" + "a" * 53, "not a sha-512"),
    ("$5$salt$" + "a" * 43, "not a sha-512"),
    ("*0", "not a sha-512"),
    ("!", "not a sha-512"),
    ("", "not a sha-512"),
    ("plain text password", "not a sha-512"),
    (f"$6$rounds=999$salt${SHA_BODY}", "rounds must be 1000..999999999"),
    (f"$6$rounds=0999$salt${SHA_BODY}", "rounds must be 1000..999999999"),
    (f"$6$rounds=1000000000$salt${SHA_BODY}", "rounds must be 1000..999999999"),
    (f"$6$rounds=$salt${SHA_BODY}", "malformed sha-512"),
    (f"$6$rounds=5000x$salt${SHA_BODY}", "malformed sha-512"),
    (f"$6${'s' * 17}${SHA_BODY}", "salt must be 1..16"),
    (f"$6$${SHA_BODY}", "salt must be 1..16"),
    (f"$6$salt${SHA_BODY[:-1]}", "86 characters"),
    (f"$6$salt${SHA_BODY}A", "86 characters"),
    (f"$6$sa:t${SHA_BODY}", "malformed sha-512"),
    (f"$6$salt${SHA_BODY[:-1]}*", "malformed sha-512"),
    (f"$6$salt${SHA_BODY}\n\n", "exactly one line"),
    (f"$6$salt${SHA_BODY}\r", "exactly one line"),
    (f"$6$salt${SHA_BODY}\nsecond", "exactly one line"),
    (f" $6$salt${SHA_BODY}", "whitespace"),
    (YESCRYPT_PW[:-1], "malformed yescrypt"),
    (YESCRYPT_PW + "x", "malformed yescrypt"),
    (YESCRYPT_PW.replace("$LF/yjyfFlimWFaKZ20vkD/$", "$$"), "malformed yescrypt"),  # empty salt
    (YESCRYPT_PW.replace("$j9T$", "$$"), "malformed yescrypt"),  # no parameters
    (YESCRYPT_PW.replace("LF/y", "LF:y"), "malformed yescrypt"),
]


@pytest.mark.parametrize("text, reason", BAD_HASHES)
def test_validate_refusals_never_echo_the_hash(text, reason):
    with pytest.raises(UsageError) as info:
        passwords.validate_password_hash(text)
    message = str(info.value)
    assert reason in message
    if len(text.strip()) > 3:
        assert text.strip() not in message
        assert SHA_BODY not in message and YESCRYPT_PW[-43:] not in message


@pytest.mark.parametrize("rounds", ["999", "0999", "1000000000"])
def test_refused_rounds_are_what_libxcrypt_refuses(rounds):
    """Our range matches libxcrypt's: it answers '*0' (a lock-out) for these."""
    assert libxcrypt.crypt("pw", f"$6$rounds={rounds}$salt$").startswith("*")


YESCRYPT_HASH_PART = YESCRYPT_PW.rsplit("$", 1)[1]
# yescrypt settings libxcrypt answers with "*0" (found by test_properties_credentials.py): PAM could never
# verify a password against them, so the account would be locked.
YESCRYPT_REFUSED_BY_LIBXCRYPT = [
    ("$y$A/Lfu$lwb9ZS42113.k/UOmC1h.0$", "parameters"),  # parameters that do not decode
    ("$y$zzz$LF/yjyfFlimWFaKZ20vkD/$", "parameters"),
    ("$y$j9T.$LF/yjyfFlimWFaKZ20vkD/$", "parameters"),
    ("$y$j9T$A$", "salt"),  # a salt that is not a whole number of bytes
    ("$y$j9T$AAAAB$", "salt"),
    ("$y$j9T$AB$", "salt"),  # bits left over in the last salt character
    ("$y$j9T$AAz$", "salt"),
    ("$y$j9T$" + "A" * 86 + "$", "salt"),
]


@pytest.mark.parametrize(("setting", "reason"), YESCRYPT_REFUSED_BY_LIBXCRYPT)
def test_yescrypt_settings_libxcrypt_refuses_are_refused(setting, reason):
    assert libxcrypt.crypt("pw", setting) == "*0"  # what PAM would get
    with pytest.raises(UsageError, match=f"yescrypt {reason}"):
        passwords.validate_password_hash(setting + YESCRYPT_HASH_PART)
    assert passwords.describe_password_file((setting + YESCRYPT_HASH_PART).encode()).state == "invalid"


@pytest.mark.parametrize("params", ["jZT", "jzT", "j9z", "j9U"])
def test_yescrypt_parameters_mkpasswd_never_writes_are_refused(params):
    """Some decode (j9U: r = 33), but a hand-made parameter can ask for any amount of memory at every login."""
    with pytest.raises(UsageError, match="yescrypt parameters other than those mkpasswd writes"):
        passwords.validate_password_hash(f"$y${params}$LF/yjyfFlimWFaKZ20vkD/$" + YESCRYPT_HASH_PART)


@pytest.mark.parametrize("cost", range(1, 12))
def test_yescrypt_settings_of_every_mkpasswd_cost_are_accepted(cost):
    setting = libxcrypt.gensalt("$y$", cost)
    assert passwords.validate_password_hash(setting + "$" + YESCRYPT_HASH_PART).reveal().startswith(setting)
    for salt in ("AAA", "AAAA", "A" * 85 + "1", "A" * 84 + "11"):  # decodable salts of other lengths
        other = setting.rsplit("$", 1)[0] + f"${salt}$"
        passwords.validate_password_hash(other + YESCRYPT_HASH_PART)
        if cost <= 5:  # (cost 11 takes 1 GiB and seconds)
            assert not libxcrypt.crypt("pw", other).startswith("*")


def test_describe_password_file():
    explicit = libxcrypt.crypt("pw", libxcrypt.gensalt("$6$", 12345))
    implicit = libxcrypt.crypt("pw", "$6$saltsalt$")
    sha512 = passwords.PasswordInfo("set", "sha512-crypt", 12345)
    assert passwords.describe_password_file((explicit + "\n").encode()) == sha512
    assert passwords.describe_password_file(implicit.encode()) == passwords.PasswordInfo("set", "sha512-crypt", 5000)
    assert passwords.describe_password_file((YESCRYPT_PW + "\n").encode()) == passwords.PasswordInfo("set", "yescrypt", None)
    locked = passwords.PasswordInfo("locked", None, None)
    assert passwords.LOCKED_PASSWORD_LINE == "!"
    written = (passwords.LOCKED_PASSWORD_LINE + "\n").encode()
    locked_lines = (b"!", b"*", b"*\n", b"!!", f"!{implicit}\n".encode(), written)
    for content in locked_lines:
        assert passwords.describe_password_file(content) == locked, content
    invalid = passwords.PasswordInfo("invalid", None, None)
    for content in (b"", b"\n", b"\xff\xfe\x00", b"hunter2\n", (implicit + "\n" + implicit).encode(),
                    (implicit + "\n\n").encode(), b"*0", b"$6$" + b"A" * 100_000, (" " + implicit).encode()):
        assert passwords.describe_password_file(content) == invalid, content[:20]


def test_describe_password_file_never_raises_on_garbage():
    rng = random.Random(1)
    for _ in range(300):
        content = bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
        assert passwords.describe_password_file(content).state in ("invalid", "locked", "set")


# ------------------------------------------------------------------------------------------------
# authorized keys: acceptance and ssh-keygen agreement


def test_parse_each_accepted_type(keys, lines):
    expected = {"ed25519": ("ssh-ed25519", 256, "ED25519"), "p256": ("ecdsa-sha2-nistp256", 256, "ECDSA"),
                "p384": ("ecdsa-sha2-nistp384", 384, "ECDSA"), "p521": ("ecdsa-sha2-nistp521", 521, "ECDSA"),
                "rsa2048": ("ssh-rsa", 2048, "RSA"), "rsa3072": ("ssh-rsa", 3072, "RSA")}
    for name, (key_type, bits, label) in expected.items():
        [key] = sshkeys.parse_authorized_keys(lines[name] + "\n", f"{name}.pub")
        assert (key.key_type, key.bits, key.type_label) == (key_type, bits, label)
        assert key.line == lines[name] and key.comment == f"{name}@test" and key.options is None
        assert key.blob == base64.b64decode(lines[name].split()[1])


@needs_ssh_keygen
def test_describe_matches_ssh_keygen(tmp_path, lines):
    text = "".join(lines[name] + "\n" for name in lines) + sk_ed25519_line() + "\n"
    parsed = sshkeys.parse_authorized_keys(text, "k")
    assert [k.describe() for k in parsed] == ssh_keygen_l(tmp_path, text)


@needs_ssh_keygen
def test_describe_matches_ssh_keygen_for_generated_files(tmp_path):
    """Keys made by ssh-keygen itself (its own encoding), including the no-comment case."""
    text = ""
    kinds = ((["-t", "ed25519"], ""), (["-t", "ecdsa", "-b", "384"], "e c"), (["-t", "rsa"], "r"))
    for args, comment in kinds:
        f = tmp_path / f"id{len(text)}"
        subprocess.run([SSH_KEYGEN, "-q", *args, "-N", "", "-C", comment, "-f", str(f)], check=True)
        pub = (tmp_path / (f.name + ".pub")).read_text()
        [key] = sshkeys.parse_authorized_keys(pub, "pub")
        assert [key.describe()] == ssh_keygen_l(tmp_path, pub)
        assert sshkeys.public_key_fingerprint(pub) == ssh_keygen_l(tmp_path, pub)[0].split()[1]
        text += pub


@needs_ssh_keygen
def test_sk_fingerprints_match_ssh_keygen(tmp_path):
    for line in (sk_ed25519_line("a@b"), sk_ecdsa_line("c@d")):
        [key] = sshkeys.parse_authorized_keys(line, "sk.pub")
        assert [key.describe()] == ssh_keygen_l(tmp_path, line + "\n")


def test_sk_keys_parse_from_wire_format():
    ed = sshkeys.parse_authorized_keys(sk_ed25519_line(), "sk.pub")[0]
    assert (ed.key_type, ed.bits, ed.type_label, ed.comment) == (sshkeys._SK_ED25519, 256, "ED25519-SK", "me@fido")
    ecd = sshkeys.parse_authorized_keys(sk_ecdsa_line(app=b"ssh:work"), "sk.pub")[0]
    assert (ecd.key_type, ecd.bits, ecd.type_label) == (sshkeys._SK_ECDSA, 256, "ECDSA-SK")
    assert ecd.fingerprint.startswith("SHA256:") and not ecd.fingerprint.endswith("=")


@pytest.mark.parametrize(
    "line, reason",
    [
        (lambda: sk_ed25519_line(pk=b"\x01" * 31), "not 32 bytes"),
        (lambda: sk_ed25519_line(app=b""), "application"),
        (lambda: sk_ed25519_line(app=b"ssh:\x01"), "application"),
        (lambda: sk_ecdsa_line(point=b"\x04" + b"\x01" * 64), "not a point on nistp256"),
        (lambda: sk_ecdsa_line(point=b"\x02" + b"\x01" * 32), "uncompressed"),
        (lambda: sk_ecdsa_line(app=b""), "application"),
    ],
)
def test_bad_sk_keys_refused(line, reason):
    assert reason in refusal(line())


def test_options_with_quoted_commas_and_spaces(lines):
    opts = 'restrict,from="10.0.0.0/8,192.168.1.1",command="echo \\"hi, there\\" now",environment="A=b c"'
    line = f"{opts} {lines['ed25519']}"
    [key] = sshkeys.parse_authorized_keys(line + "\r\n", "ak")
    assert key.options == opts
    assert key.line == line  # verbatim, CR removed
    assert key.key_type == "ssh-ed25519" and key.comment == "ed25519@test"
    for simple in (
        "no-pty",
        "NO-PTY,No-Agent-Forwarding",
        'permitopen="192.0.2.1:80",permitopen="192.0.2.2:25"',
        'cert-authority,no-touch-required,principals="user_a"',
        'expiry-time="20300101",tunnel="1"',
    ):
        assert sshkeys.parse_authorized_keys(f"{simple} {lines['p256']}", "ak")[0].options == simple
    # a lone backslash is literal
    backslash = sshkeys.parse_authorized_keys(f'command="echo a\\b c" {lines["p384"]}', "ak")[0]
    assert backslash.options == 'command="echo a\\b c"'
    # a lone quote in the comment is not part of the options
    odd = sshkeys.parse_authorized_keys(f'restrict {lines["p384"]} say "hi', "ak")[0]
    assert (odd.options, odd.comment) == ("restrict", 'p384@test say "hi')


@pytest.mark.parametrize(
    "options, reason",
    [
        ("bogus-option", "not a known authorized_keys option"),
        ('restrict,command="unterminated', "unterminated quoted string"),
        ("no-pty=1", "takes no value"),
        ("command=ls", "needs a value in double quotes"),
        ("from", "needs a value in double quotes"),
        ("restrict,,no-pty", "malformed"),
        ('command="a"x"b"', "needs a value in double quotes"),
        ('from="a",', "malformed"),
        ('command="a\\\\" no-pty', "unterminated quoted string"),  # \\" is a backslash then an escaped quote
    ],
)
def test_bad_options_refused(lines, options, reason):
    message = refusal(f"{options} {lines['ed25519']}", "ak")
    assert message.startswith("ak:1: ") and reason in message


def test_comments_blank_lines_and_line_numbers(lines):
    text = f"# header\n\n   \n{lines['ed25519']}\n  # indented comment\n{lines['p256']}\nssh-dss AAAA\n"
    assert refusal(text, "ak") == "ak:7: ssh-dss (DSA) keys are not accepted"
    assert len(sshkeys.parse_authorized_keys(text.rsplit("ssh-dss", 1)[0], "ak")) == 2


# ------------------------------------------------------------------------------------------------
# authorized keys: refusals


def test_refuses_dsa():
    fields = (b"ssh-dss", b"\x00" * 129, b"\x01" * 21, b"\x02" * 128, b"\x03" * 128)
    blob = b"".join(ssh_string(x) for x in fields)
    assert refusal(f"ssh-dss {b64(blob)} old@key") == "keys.pub:1: ssh-dss (DSA) keys are not accepted"


def test_refuses_small_rsa():
    small = rsa.generate_private_key(65537, 1024)
    message = refusal(public_line(small, "old"))
    assert message == "keys.pub:1: RSA key of 1024 bits: at least 2048 are required"


def test_refuses_bad_base64():
    assert refusal("ssh-ed25519 AAAAC3Nza!!notbase64 x") == "keys.pub:1: bad base64 in the key"
    bad_padding = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI x"
    assert refusal(bad_padding) == "keys.pub:1: bad base64 in the key"


def test_refuses_type_mismatch(lines):
    ed_b64 = lines["ed25519"].split()[1]
    rsa_b64 = lines["rsa2048"].split()[1]
    mismatch = "the key type in the line does not match the key data"
    assert refusal(f"ssh-rsa {ed_b64}").endswith(mismatch)
    assert refusal(f"ssh-ed25519 {rsa_b64}").endswith(mismatch)
    assert refusal(f"ecdsa-sha2-nistp384 {lines['p256'].split()[1]}").endswith(mismatch)
    # the outer type says nistp384, the curve name inside the blob says nistp256
    p256 = base64.b64decode(lines["p256"].split()[1])
    swapped = p256.replace(b"ecdsa-sha2-nistp256", b"ecdsa-sha2-nistp384", 1)
    assert refusal(f"ecdsa-sha2-nistp384 {b64(swapped)}").endswith(mismatch)
    assert refusal(f"{sshkeys._SK_ED25519} {ed_b64}").endswith(mismatch)


def test_refuses_unknown_types(lines):
    blob = b64(ssh_string(b"ssh-mldsa44-ed25519@openssh.com") + ssh_string(b"\x00" * 32))
    pq = f"ssh-mldsa44-ed25519@openssh.com {blob} pq"
    for line in (pq, "ssh-foo AAAA", "hello", "restrict ssh-foo AAAA"):
        assert "unknown key type" in refusal(line)
    cert = "ssh-ed25519-cert-v01@openssh.com " + b64(ssh_string(b"ssh-ed25519-cert-v01@openssh.com"))
    assert "certificates are not accepted" in refusal(cert)


def test_refuses_corrupt_key_data(lines):
    ed = base64.b64decode(lines["ed25519"].split()[1])
    assert "trailing bytes" in refusal(f"ssh-ed25519 {b64(ed + b'x')}")
    assert "truncated" in refusal(f"ssh-ed25519 {b64(ed[:-1])}")
    assert "no key data" in refusal("ssh-ed25519")
    rsa_blob = base64.b64decode(lines["rsa2048"].split()[1])
    _, off = sshkeys._read_string(rsa_blob, 0)
    _, off = sshkeys._read_string(rsa_blob, off)
    no_modulus = rsa_blob[:off] + ssh_string(b"")
    assert "not a valid ssh-rsa key" in refusal(f"ssh-rsa {b64(no_modulus)}")


def test_fields_are_separated_by_space_or_tab_only(lines):
    key_type, data, comment = lines["ed25519"].split(" ")
    assert sshkeys.parse_authorized_keys(f"{key_type}\t{data}\t \t{comment}", "x")[0].comment == comment
    assert "unknown key type" in refusal(f"{key_type}\u00a0{data}")


def test_refuses_nul_and_overlong_lines(lines):
    assert "NUL" in refusal(lines["ed25519"] + "\x00")
    for control in ("\x1b[31m", "\r", "\x7f", "\x9b"):
        assert refusal(lines["ed25519"] + control + "x").endswith("the line contains control characters")
    long_comment = lines["ed25519"] + " " + "c" * sshkeys.MAX_KEY_LINE_BYTES
    assert "longer than 8192 bytes" in refusal(long_comment)


def test_a_lone_surrogate_is_refused_not_accepted_then_unwritable(lines):
    """Found by test_properties_credentials.py: such a line was accepted, then render_authorized_keys raised
    UnicodeEncodeError when the key was written."""
    line = lines["ed25519"] + " me\udcfflaptop"  # what surrogateescape makes of an invalid UTF-8 byte
    assert refusal(line).endswith("the line is not valid UTF-8")
    keys, problems = sshkeys.parse_authorized_keys_lenient(line + "\n" + lines["p256"])
    assert [k.line for k in keys] == [lines["p256"]] and problems == ["line 1: the line is not valid UTF-8"]


def compressed_point_line(key, comment: str = "p256@test") -> str:
    """An ECDSA key line whose point is in compressed form (0x02/0x03 and x alone): sshd refuses it."""
    name = b"ecdsa-sha2-nistp256"
    point = key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
    blob = ssh_string(name) + ssh_string(b"nistp256") + ssh_string(point)
    return f"{name.decode()} {b64(blob)} {comment}"


def test_a_compressed_ecdsa_point_is_refused_not_an_internal_error(keys):
    """Found by test_properties_credentials.py: cryptography raises NotImplementedError for it, which escaped
    both parsers (the lenient one said 'unreadable (NotImplementedError)')."""
    line = compressed_point_line(keys["p256"])
    assert refusal(line).endswith("the key data is not a valid ecdsa-sha2-nistp256 key")
    assert sshkeys.parse_authorized_keys_lenient(line)[1] == ["line 1: the key data is not a valid ecdsa-sha2-nistp256 key"]


def test_empty_input_holds_no_public_key():
    for text in ("", "\n\n", "# only a comment\n   \n"):
        assert refusal(text, "me.pub") == "me.pub holds no public key"


def _private_key_texts(keys):
    fmt = serialization.PrivateFormat
    pem, none = serialization.Encoding.PEM, serialization.NoEncryption()
    return {
        "openssh": keys["ed25519"].private_bytes(pem, fmt.OpenSSH, none).decode(),
        "pkcs8": keys["p256"].private_bytes(pem, fmt.PKCS8, none).decode(),
        "traditional-rsa": keys["rsa2048"].private_bytes(pem, fmt.TraditionalOpenSSL, none).decode(),
        "traditional-ec": keys["p384"].private_bytes(pem, fmt.TraditionalOpenSSL, none).decode(),
        "putty": "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: me\nPublic-Lines: 2\n"
        "AAAAC3NzaC1lZDI1NTE5AAAAIDvSHD1ZjC3x1n1IdIrvgHb6SfNmBXyj1Fbxmll6o5PQ\nPrivate-Lines: 1\n"
        "AAAAIFEmBDjNxuZ0jbLtOMv1FpH5O9Fk7OoGqeRfZ8eXzfEs\nPrivate-MAC: 0123456789abcdef\n",
    }


def test_private_keys_are_refused_without_echo(keys, lines):
    for name, text in _private_key_texts(keys).items():
        for given in (text, lines["ed25519"] + "\n" + text):  # also when pasted after a valid key
            message = refusal(given, "id_test")
            assert message == "id_test is a private key; give the public key (.pub) instead", name
            for secret_line in text.splitlines()[1:-1]:
                assert secret_line not in message


def test_rfc4716_public_key_gets_a_conversion_hint():
    text = (
        '---- BEGIN SSH2 PUBLIC KEY ----\nComment: "x"\n'
        "AAAAC3NzaC1lZDI1NTE5AAAAI\n---- END SSH2 PUBLIC KEY ----\n"
    )
    assert "ssh-keygen -i" in refusal(text)


# ------------------------------------------------------------------------------------------------
# lenient parsing, merge, render


def test_lenient_keeps_good_keys_and_reports_bad_lines(keys, lines):
    private = _private_key_texts(keys)["pkcs8"].splitlines()[0]
    text = "\n".join([
        lines["ed25519"],
        "garbage here",
        "ssh-dss AAAA",
        "",
        "# comment",
        f'restrict,command="a, b" {lines["p256"]}',
        private,
        "x" * (3 * sshkeys.MAX_KEY_LINE_BYTES),
        "ssh-ed25519 @@@",
    ])
    good, problems = sshkeys.parse_authorized_keys_lenient(text)
    assert [k.key_type for k in good] == ["ssh-ed25519", "ecdsa-sha2-nistp256"]
    assert problems[0].startswith("line 2: unknown key type")
    assert problems[1] == "line 3: ssh-dss (DSA) keys are not accepted"
    assert problems[2] == "line 7: a private key, not a public key"
    assert problems[3].startswith("line 8: the line is longer")
    assert problems[4] == "line 9: bad base64 in the key"
    assert len(problems) == 5


def test_lenient_caps_the_number_of_lines(lines):
    good, problems = sshkeys.parse_authorized_keys_lenient((lines["ed25519"] + "\n") * 1500)
    assert len(good) == 1000
    assert problems == ["more than 1000 lines: the rest was not read"]


def test_lenient_never_raises_on_garbage(lines):
    rng = random.Random(7)
    sample = lines["ed25519"] + "\n" + sk_ecdsa_line() + "\n"
    assert len(sshkeys.parse_authorized_keys_lenient(sample)[0]) == 2
    for _ in range(300):
        data = bytearray(sample.encode())
        for _ in range(rng.randrange(1, 8)):  # mutate a valid file, then pure noise
            data[rng.randrange(len(data))] = rng.randrange(256)
        sshkeys.parse_authorized_keys_lenient(data.decode("utf-8", "replace"))
        noise = bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
        sshkeys.parse_authorized_keys_lenient(noise.decode("utf-8", "surrogateescape"))
    assert sshkeys.parse_authorized_keys_lenient("") == ([], [])


def test_merge_deduplicates_by_blob(lines):
    a, b, d = (sshkeys.parse_authorized_keys(lines[n], n)[0] for n in ("ed25519", "p256", "rsa2048"))
    a_again = sshkeys.parse_authorized_keys(f'no-pty {lines["ed25519"].rsplit(" ", 1)[0]} other comment', "x")[0]
    assert a_again.blob == a.blob and a_again.line != a.line
    assert sshkeys.merge_keys([a, b], [a_again, d], replace=False) == [a, b, d]  # first occurrence wins
    assert sshkeys.merge_keys([a, b], [d, a_again], replace=True) == [d, a_again]
    assert sshkeys.merge_keys([], [a, a_again, b, b], replace=False) == [a, b]
    assert sshkeys.merge_keys([a, a], [], replace=False) == [a]


def test_render_authorized_keys(lines):
    parsed = sshkeys.parse_authorized_keys(f"{lines['ed25519']}\r\n{sk_ed25519_line()}\n", "x")
    rendered = sshkeys.render_authorized_keys(parsed)
    assert rendered == (parsed[0].line + "\n" + parsed[1].line + "\n").encode()
    assert b"\r" not in rendered
    assert sshkeys.render_authorized_keys([]) == b""
    # what we write parses back to the same keys (sk lines are never re-serialised)
    assert sshkeys.parse_authorized_keys(rendered.decode(), "x") == parsed


# ------------------------------------------------------------------------------------------------
# host keys, key pairs, fingerprints


def test_generate_host_key():
    host = hostkeys.generate_host_key()
    pem = host.private_openssh.reveal()
    assert pem.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
    assert pem.endswith("-----END OPENSSH PRIVATE KEY-----\n")
    assert "PRIVATE" not in repr(host) and pem not in repr(host)
    loaded = serialization.load_ssh_private_key(pem.encode(), password=None)  # unencrypted, as sshd needs
    assert host.public_line == public_line(loaded, "root@zvm")
    assert host.fingerprint == sshkeys.public_key_fingerprint(host.public_line)
    assert hostkeys.generate_host_key("root@other").public_line.endswith(" root@other")
    assert hostkeys.generate_host_key().public_line != host.public_line


@needs_ssh_keygen
def test_host_key_agrees_with_ssh_keygen(tmp_path):
    host = hostkeys.generate_host_key()
    key_file = tmp_path / "ssh_host_ed25519_key"
    hostfiles.write_key_pair(key_file, host.private_openssh.reveal().encode(), host.public_line)
    derived = subprocess.run(
        [SSH_KEYGEN, "-y", "-f", str(key_file)], capture_output=True, text=True, check=True
    )
    assert derived.stdout.split()[:2] == host.public_line.split()[:2]
    assert ssh_keygen_l(tmp_path, host.public_line + "\n") == [f"256 {host.fingerprint} root@zvm (ED25519)"]


def test_public_key_fingerprint_and_known_hosts(lines):
    for line in lines.values():
        blob = base64.b64decode(line.split()[1])
        digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
        assert sshkeys.public_key_fingerprint(line) == f"SHA256:{digest}"
        assert sshkeys.known_hosts_line("zvm.example", line) == "zvm.example " + " ".join(line.split()[:2])
    bracketed = sshkeys.known_hosts_line("[10.0.0.5]:2222", lines["ed25519"] + "\n")
    assert bracketed.startswith("[10.0.0.5]:2222 ssh-ed25519 ")
    for host in ("", "a b", "a\nb"):
        with pytest.raises(UsageError):
            sshkeys.known_hosts_line(host, lines["ed25519"])
    with pytest.raises(UsageError, match="bad public key line: bad base64"):
        sshkeys.public_key_fingerprint("ssh-ed25519 !!!")
    for bad in ("", "\n", lines["ed25519"] + "\n" + lines["p256"]):
        with pytest.raises(UsageError):
            sshkeys.public_key_fingerprint(bad)


def test_generate_user_keypair_unencrypted():
    private, line = hostkeys.generate_user_keypair(comment="zvm@laptop")
    key = serialization.load_ssh_private_key(private, password=None)
    assert line == public_line(key, "zvm@laptop")
    assert hostkeys.generate_user_keypair(comment="x", passphrase=Secret(""))[0].startswith(b"-----BEGIN OPENSSH")
    with pytest.raises(UsageError, match="comment"):
        hostkeys.generate_user_keypair(comment="bad\ncomment")


def test_generate_user_keypair_encrypted():
    private, line = hostkeys.generate_user_keypair(comment="me", passphrase=Secret("s3cret pass"))
    with pytest.raises(TypeError):
        serialization.load_ssh_private_key(private, password=None)
    key = serialization.load_ssh_private_key(private, password=b"s3cret pass")
    assert line == public_line(key, "me")


# ------------------------------------------------------------------------------------------------
# Netbird, management URL, machine-id

KEY = "A1B2C3D4-E5F6-4789-ABCD-0123456789EF"


def test_netbird_setup_key():
    assert netbird.validate_netbird_setup_key(KEY).reveal() == KEY
    assert netbird.validate_netbird_setup_key(f"  {KEY}\n").reveal() == KEY
    assert repr(netbird.validate_netbird_setup_key(KEY)) == "Secret('***')"


@pytest.mark.parametrize("text", [KEY.lower(), KEY[:13].lower() + KEY[13:], f" {KEY.lower()}\r\n"])
def test_netbird_setup_key_in_any_letter_case_is_stored_upper_case(text):
    assert netbird.validate_netbird_setup_key(text).reveal() == KEY


@pytest.mark.parametrize(
    "text", [KEY[:-1], KEY + "0", KEY.replace("-", ""), "{" + KEY + "}", f"{KEY[:8]}\n{KEY[9:]}",
             "G" + KEY[1:], "g" + KEY[1:].lower(), "", "not-a-key-at-all"],
)
def test_netbird_setup_key_refusals_never_echo(text):
    with pytest.raises(UsageError, match="must be a UUID such as XXXXXXXX-XXXX-") as info:
        netbird.validate_netbird_setup_key(text)
    message = str(info.value)
    if text:
        assert text not in message and text.upper() not in message and text[:8] not in message


def test_management_url():
    ok = "https://netbird.example.com:33073/api"
    assert netbird.validate_management_url(f"  {ok}\n") == ok
    assert netbird.validate_management_url("HTTPS://nb.example") == "HTTPS://nb.example"
    assert netbird.validate_management_url("https://[2001:db8::1]:443") == "https://[2001:db8::1]:443"


@pytest.mark.parametrize(
    "url, reason",
    [
        ("http://nb.example.com", "plain http, which anyone on the way can change"),
        ("ftp://nb.example.com", "https://"),
        ("nb.example.com", "https://"),
        ("https://", "no host"),
        ("https:///path", "no host"),
        ("https://admin:pa55word@nb.example.com", "user name or password"),
        ("https://admin@nb.example.com", "user name or password"),
        ("https://nb.example.com/a b", "without spaces"),
        ("https://nb.example.com/\nX-Injected: 1", "without spaces"),
        ("https://nb.exämple.com", "plain ASCII"),
        ("https://nb.example.com:99999", "malformed"),
        ("https://nb.example.com:port", "malformed"),
        ("https://nb.example.com/" + "a" * 2100, "longer than 2048"),
    ],
)
def test_management_url_refusals(url, reason):
    with pytest.raises(UsageError, match=reason) as info:
        netbird.validate_management_url(url)
    assert "pa55word" not in str(info.value)


def test_machine_id(monkeypatch):
    ids = {identity.new_machine_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(identity.is_valid_machine_id(m) and identity.is_valid_machine_id(m + "\n") for m in ids)
    answers = iter(["0" * 32, "0" * 32, "ab" * 16])
    monkeypatch.setattr(identity.secrets, "token_hex", lambda n: next(answers))
    assert identity.new_machine_id() == "ab" * 16


@pytest.mark.parametrize(
    "text", ["0" * 32, "0" * 32 + "\n", "A" * 32, "a" * 31, "a" * 33, "a" * 32 + "\n\n", "a" * 32 + "\r\n",
             " " + "a" * 31, "g" * 32, "", "a" * 32 + " ", "\n" + "a" * 32],
)
def test_invalid_machine_ids(text):
    assert not identity.is_valid_machine_id(text)


def test_no_test_imports_the_crypt_module_gone_in_python_3_13():
    """Hashes are verified with libxcrypt through ctypes (tests/support/libxcrypt.py), which every Python has."""
    import re

    for path in sorted(Path(__file__).resolve().parents[1].rglob("*.py")):
        assert not re.search(r"^\s*(import crypt\b|from crypt import)", path.read_text(), re.MULTILINE), path.name
