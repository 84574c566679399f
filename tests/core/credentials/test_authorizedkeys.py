"""provision.core.credentials.authorizedkeys, the model of access by key, rule by rule (the whole is judged against
a real sshd in tests/sshd), and the consumers that ask it: selectors, the lock-out count, the password rule."""

from __future__ import annotations

import base64
import time

import pytest

from provision.core.access import count_ways_in, no_way_in_reason
from provision.core.credentials.authorizedkeys import parse_options, read_authorized_keys
from provision.core.credentials.passwords import describe_password_file, hash_password
from provision.core.credentials.sshkeys import read_image_keys
from provision.core.fleetkeys import NoSuchKey, unmatched
from provision.core.keyremoval import parse_selector
from provision.errors import ExitCode, UsageError
from tests.support.keyfactory import public_line
from tests.support.keylines import sk_ecdsa_line, sk_ed25519_line

NOW = time.time()


def one(line: bytes):
    (read,) = read_authorized_keys(line)
    return read


@pytest.fixture(scope="module")
def ed() -> str:
    return public_line(comment="alice@laptop")


def test_a_comment_may_hold_any_bytes(ed):
    bare = " ".join(ed.split()[:2]).encode()
    for comment in (b"del\x7f", b"esc\x1b[31m", b"\xff\xfe", "\u202e".encode(), b"x" * 20000, b"cr\r"):
        line = one(bare + b" " + comment)
        assert line.key is not None and line.logs_in(NOW) and line.key.comment == comment


def test_rsa_from_1024_bits_is_a_key():
    line = one(public_line("rsa", bits=1024).encode())
    assert line.key is not None and line.key.bits == 1024 and line.logs_in(NOW)


def test_the_type_name_must_be_a_full_name(ed):
    blob = ed.split()[1]
    assert one(f"ED25519 {blob}".encode()).key is None  # sshd refuses short names (tests/sshd)
    assert one(f"ssh-rsa {blob}".encode()).key is None  # the blob is not of the line's type
    rsa = public_line("rsa", bits=1024).split()[1]
    assert one(f"rsa-sha2-512 {rsa}".encode()).logs_in(NOW)  # an RSA key under its signature name


def test_base64_as_b64_pton_reads_it(ed):
    kind, blob = ed.split()[:2]
    assert one(f"{kind} {blob[:10]}\r{blob[10:]}".encode()).key is not None  # white space inside: skipped
    stripped = blob.rstrip("=")
    if stripped != blob:
        assert one(f"{kind} {stripped}".encode()).key is None  # padding is required
    trailing = base64.b64encode(base64.b64decode(blob) + b"\0\0\0\0").decode()
    assert one(f"{kind} {trailing}".encode()).key is None


def test_a_nul_ends_the_line_and_a_lone_cr_is_blank(ed):
    assert one(ed.encode() + b"\0garbage").logs_in(NOW)
    assert one(b"\r").key is None and one(b"\r").problem is None


def test_options_as_sshauthopt_parse_reads_them(ed):
    assert one(b'No-Pty,COMMAND="true" ' + ed.encode()).logs_in(NOW)
    assert one(b'restrict,from="10.0.0.0/8" ' + ed.encode()).restriction() == "restricted (from=, restrict)"
    for empty in (b",no-pty", b"no-pty,,pty", b"no-pty,", b","):  # sshd passes over empty options
        assert one(empty + b" " + ed.encode()).logs_in(NOW), empty
    for bad in (b"restrictx", b"command=true", b'expiry-time="2099"', b"no-pty,x", b'from="a",from="b"',
                b'environment="1-A=b"', b"foo"):
        line = one(bad + b" " + ed.encode())
        assert line.key is not None and not line.way_in(NOW) and line.problem.startswith("bad options")
    assert one(b'command="unterminated ' + ed.encode()).key is None


def test_expiry_time_past_is_no_way_in_and_the_earliest_counts(ed):
    assert not one(b'expiry-time="19700102" ' + ed.encode()).way_in(NOW)
    assert one(b'expiry-time="20991231" ' + ed.encode()).way_in(NOW)
    assert not one(b'expiry-time="20991231",expiry-time="20200101" ' + ed.encode()).way_in(NOW)
    assert parse_options(b'expiry-time="202001011200Z"').expires == 1577880000
    with pytest.raises(Exception, match="invalid expires time"):
        parse_options(b'expiry-time="19700101000000UTC"')  # 0: refused by sshd


def test_cert_authority_admits_certificates_only(ed):
    line = one(b"cert-authority " + ed.encode())
    assert line.way_in(NOW) and not line.logs_in(NOW)
    assert line.restriction() == "cert-authority: only certificates this key signs"


def test_sk_keys_are_ways_in():
    assert one(sk_ed25519_line().encode()).way_in(NOW) and one(sk_ecdsa_line().encode()).way_in(NOW)


def test_an_image_file_keeps_every_key_line_and_names_lines_that_let_nobody_in(ed):
    text = "\n".join(["# c", "", ed, 'expiry-time="19700102" ' + public_line(), "garbage"]).encode()
    keys, problems = read_image_keys(text, NOW)
    assert len(keys) == 2 and count_ways_in(keys, NOW) == 1
    assert problems == ["line 4: expired (expiry-time is past)", "line 5: no key sshd can read"]


def test_a_key_counts_once_and_any_of_its_lines_lets_it_in(ed):
    keys, _ = read_image_keys(f'expiry-time="19700102" {ed}\n{ed}\n'.encode(), NOW)
    assert count_ways_in(keys, NOW) == 1
    keys, _ = read_image_keys(f'expiry-time="19700102" {ed}\n'.encode(), NOW)
    assert count_ways_in(keys, NOW) == 0
    assert no_way_in_reason(0, "locked", held=1).startswith("no SSH key sshd lets in")


def test_a_crlf_hash_is_no_password_nixos_would_accept():
    hashed = hash_password("a good password", rounds=1000).reveal()
    assert describe_password_file((hashed + "\n").encode()).state == "set"
    assert describe_password_file(hashed.encode()).state == "set"
    assert describe_password_file((hashed + "\r\n").encode()).state == "invalid"
    assert describe_password_file((hashed + "\n\n").encode()).state == "invalid"


def test_selectors_name_a_key_by_its_blob(ed):
    keys, _ = read_image_keys(f'restrict {ed}\n'.encode(), NOW)
    fingerprint = keys[0].fingerprint
    for text in (fingerprint, fingerprint.removeprefix("SHA256:"), ed, " ".join(ed.split()[:2]) + " other@name",
                 ed + "\n", f"256 {fingerprint} alice@laptop (ED25519)", "alice@laptop"):
        assert parse_selector(text).matches(keys[0]), text
    assert not parse_selector("alice@other").matches(keys[0])


def test_text_that_means_a_key_but_is_not_one_is_a_usage_error(ed):
    kind, blob = ed.split()[:2]
    for bad in (f"{kind} {blob[:-8]}", "SHA256:short", "", "a\x1bb", f"{ed}\n{ed}"):
        with pytest.raises(UsageError):
            parse_selector(bad)


def test_a_selector_no_image_holds_is_a_failure(ed):
    keys, _ = read_image_keys(ed.encode(), NOW)
    named = [parse_selector("alice@laptop"), parse_selector("bob@laptop")]
    left = unmatched(named, [(), keys])
    assert [s.text for s in left] == ["bob@laptop"]
    failure = NoSuchKey("--remove-key", left)
    assert failure.exit_code == ExitCode.FAILURE and "no image holds that key" in failure.message
