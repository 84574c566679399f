"""provision.core.credentials.sshkeys: authorized keys, accepted and refused, lenient parsing, merging,
rendering, fingerprints. Key material is generated at run time; descriptions and fingerprints are compared with
`ssh-keygen -lf` where it is installed.
"""

from __future__ import annotations

import base64
import hashlib
import random
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from provision.core.credentials import sshkeys
from provision.errors import UsageError
from tests.support.keylines import (

    SSH_KEYGEN, b64, compressed_point_line, needs_ssh_keygen, openssh_line, sk_ecdsa_line, sk_ed25519_line,
    ssh_keygen_l, ssh_string,
)


def image_keys(text: str):
    """An image's file as the commands read it (core.credentials.authorizedkeys, sshd's rules), now."""
    return sshkeys.read_image_keys(text.encode("utf-8", "surrogateescape"), time.time())


def refusal(text: str, source: str = "keys.pub") -> str:
    with pytest.raises(UsageError) as info:
        sshkeys.parse_authorized_keys(text, source)
    return str(info.value)


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
    message = refusal(openssh_line(small, "old"))
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
    """Found by test_properties.py: such a line was accepted, then render_authorized_keys raised
    UnicodeEncodeError when the key was written."""
    line = lines["ed25519"] + " me\udcfflaptop"  # what surrogateescape makes of an invalid UTF-8 byte
    assert refusal(line).endswith("the line is not valid UTF-8")
    keys, problems = image_keys(line + "\n" + lines["p256"])  # sshd reads any bytes in a comment
    assert [k.key_type for k in keys] == ["ssh-ed25519", "ecdsa-sha2-nistp256"] and problems == []


def test_a_compressed_ecdsa_point_is_refused_not_an_internal_error(keys):
    """Found by test_properties.py: cryptography raises NotImplementedError for it, which escaped
    both parsers (the lenient one said 'unreadable (NotImplementedError)')."""
    line = compressed_point_line(keys["p256"])
    assert refusal(line).endswith("the key data is not a valid ecdsa-sha2-nistp256 key")
    assert image_keys(line) == ([], ["line 1: no key sshd can read"])  # sshbuf_get_ec: uncompressed only


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


def test_an_image_file_keeps_good_keys_and_reports_bad_lines(keys, lines):
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
    good, problems = image_keys(text)
    assert [k.key_type for k in good] == ["ssh-ed25519", "ecdsa-sha2-nistp256"]
    assert problems == [f"line {n}: no key sshd can read" for n in (2, 3, 7, 8, 9)]


def test_an_image_file_is_read_to_its_end_as_sshd_reads_it(lines):
    good, problems = image_keys((lines["ed25519"] + "\n") * 1500)
    assert len(good) == 1500 and problems == []


def test_lenient_never_raises_on_garbage(lines):
    rng = random.Random(7)
    sample = lines["ed25519"] + "\n" + sk_ecdsa_line() + "\n"
    assert len(image_keys(sample)[0]) == 2
    for _ in range(300):
        data = bytearray(sample.encode())
        for _ in range(rng.randrange(1, 8)):  # mutate a valid file, then pure noise
            data[rng.randrange(len(data))] = rng.randrange(256)
        image_keys(data.decode("utf-8", "replace"))
        noise = bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
        image_keys(noise.decode("utf-8", "surrogateescape"))
    assert image_keys("") == ([], [])


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
