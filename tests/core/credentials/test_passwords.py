"""provision.core.credentials.passwords: hashing, checks and the password file's description.

Hashes are verified with libxcrypt (through ctypes, tests/support/libxcrypt.py), not passlib, so a passlib bug
cannot hide itself.
"""

from __future__ import annotations

import random

import pytest

from provision.core.credentials import passwords
from provision.errors import UsageError
from provision.secret import Secret
from tests.support import libxcrypt  # the implementation PAM uses in the VM: the independent verifier


PASSWORD = "correct horse battery staple ü"
# Made by libxcrypt (crypt_gensalt "$y$", cost 5) for the password "pw".
YESCRYPT_PW = "$y$j9T$LF/yjyfFlimWFaKZ20vkD/$aoYvOF2LkYxKnsc39WbeMBE4vYUMqA28Tm1pWn8uwZ4"


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
# yescrypt settings libxcrypt answers with "*0" (found by test_properties.py): PAM could never
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


def test_generated_passwords_are_what_readme_says():
    """README (batch's password_hash column): 29 characters, five groups of five random letters and digits joined
    by hyphens, no 0, O, 1, l or I, about 146 bits."""
    import math
    import re
    from pathlib import Path

    from provision.core.credentials.passwords import PASSWORD_ALPHABET, generate_password

    readme = " ".join((Path(__file__).resolve().parents[3] / "README.md").read_text().split())
    assert ("generates a password: 29 characters, five groups of five random letters and digits joined by hyphens "
            "(`xK7pq-...`; no `0`, `O`, `1`, `l` or `I`; about 146 bits)") in readme
    shape = re.compile(rf"[{PASSWORD_ALPHABET}]{{5}}(-[{PASSWORD_ALPHABET}]{{5}}){{4}}")
    passwords = [generate_password() for _ in range(200)]
    assert all(len(p) == 29 and shape.fullmatch(p) for p in passwords)
    assert not set("".join(passwords)) & set("0O1lI")
    assert set("".join(passwords)) - {"-"} == set(PASSWORD_ALPHABET)  # 5000 draws from 57: every character comes up
    assert round(25 * math.log2(len(PASSWORD_ALPHABET))) == 146
