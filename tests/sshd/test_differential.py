"""The model of access (core.credentials.authorizedkeys) against a real OpenSSH 9.2 sshd, line for line: for every
key of a generated authorized_keys file, a real login says whether sshd lets it in, and the model must say the
same. Where they differ, sshd is right.

Files mix key types (ed25519, ECDSA on each curve, RSA of 1024 and 2048 bits, DSA, sk- keys, certificates and
a certificate authority), options (expiry-time past and future, cert-authority, from=, command=, restrict,
no-pty, quoted values, names in other case, bad options), odd comments (DEL, ESC, bidi, UTF-8, invalid UTF-8,
a NUL, very long), comment lines, blank lines, CRLF, and mangled key data. One sshd serves every file (it reads
the file at each login). A bounded number of files here; `scripts/sshd_differential.py` runs many more.

What cannot be asked of sshd: sk- keys log in only with their hardware token, which no test has. The model
counts them as ways in (the person holding the token gets in); here they only ride along, and every key after
them must still be judged right. A certificate logs in through a cert-authority line: tried for real, with
certificates the pool's CA signed.
"""

from __future__ import annotations

import base64
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provision.core.credentials.authorizedkeys import KeyLine, read_authorized_keys
from tests.support import sshd as judge
from tests.support.keylines import sk_ecdsa_line, sk_ed25519_line

pytestmark = pytest.mark.skipif(judge.available() is not None, reason=str(judge.available()))

EXAMPLES = int(os.environ.get("ZVM_SSHD_EXAMPLES", "4"))  # scripts/sshd_differential.py raises it

GOOD_OPTIONS = ['restrict', 'no-pty', 'No-Pty', 'no-agent-forwarding', 'port-forwarding', 'no-X11-forwarding',
                'command="true"', 'COMMAND="true"', 'command="echo \\"a, b\\" >/dev/null"', 'from="127.0.0.1"',
                'from="127.0.0.0/8,10.1.2.3"', 'from="*"', 'expiry-time="20991231"', 'expiry-time="209912312359Z"',
                'Expiry-Time="20991231235959UTC"', 'environment="A_B=1"', 'permitopen="localhost:80"',
                'permitlisten="8080"', 'no-touch-required', 'no-user-rc', 'tunnel="1"']
BAD_OPTIONS = ['expiry-time="19700102"', 'expiry-time="20200101"', 'cert-authority', 'foo', 'restrictx',
               'command=true', 'expiry-time="2099"', 'environment="1-A=b"', 'from="127.0.0.1",from="*"',
               'no-pty,x', 'expiry-time="20991301"', 'command=""', ',', 'no-pty,']
COMMENTS = [b"", b"alice@laptop", b"del\x7fhere", b"esc\x1b[31mred", "j\u00f6rg@laptop \u2603".encode(),
            b"\xff\xfe not utf-8", "bidi\u202eevil".encode(), b"nul\x00then junk", b"c" * 5000, b"zero\xe2\x80\x8bwidth"]
FILLER = [b"# a comment", b"", b"   ", b"\t# indented comment", b"\r", b"not a key at all", b"ssh-ed25519",
          b"ssh-ed25519 AAAA", b'command="unterminated ssh-ed25519 AAAA']


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory):
    return judge.make_pool(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory):
    with judge.running_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server


def _mangled_blob(draw, key: judge.PoolKey) -> bytes:
    text = key.blob_b64
    how = draw(st.sampled_from(["none"] * 6 + ["cr-inside", "unpadded", "trailing", "truncated"]))
    if how == "cr-inside":  # b64_pton skips white space inside the token
        at = draw(st.integers(1, len(text) - 1))
        return (text[:at] + "\r" + text[at:]).encode()
    if how == "unpadded" and text.endswith("="):
        return text.rstrip("=").encode()
    if how == "trailing":
        return base64.b64encode(base64.b64decode(text) + b"\0\0\0\0")
    if how == "truncated":
        return text[:-4].encode()
    return text.encode()


def _type_name(draw, key: judge.PoolKey) -> bytes:
    name = key.type_name
    if name == "ssh-rsa":
        name = draw(st.sampled_from(["ssh-rsa", "ssh-rsa", "rsa-sha2-256", "rsa-sha2-512", "RSA"]))
    elif draw(st.integers(0, 12)) == 0:
        name = draw(st.sampled_from(["ssh-rsa", "ED25519", "ssh-ed25519-cert-v01@openssh.com"]))
    return name.encode()


@st.composite
def key_line(draw, key_text: bytes, key: judge.PoolKey | None = None, *, ca: bool = False) -> bytes:
    """One line for a key: leading blanks, options, the key (its type name and base64 perhaps mangled), a
    comment."""
    lead = draw(st.sampled_from([b"", b"", b" ", b"\t", b"  \t"]))
    options = draw(st.lists(st.sampled_from(GOOD_OPTIONS + BAD_OPTIONS), max_size=3))
    if ca:
        options = ["cert-authority", *[o for o in options if o != "cert-authority"]]
    opts = b",".join(o.encode() for o in options)
    sep = draw(st.sampled_from([b" ", b"\t", b"  "]))
    if key is not None:
        key_text = _type_name(draw, key) + b" " + _mangled_blob(draw, key)
    comment = draw(st.sampled_from(COMMENTS))
    return lead + (opts + sep if opts else b"") + key_text + (draw(st.sampled_from([b" ", b"\t"])) + comment
                                                               if comment else b"")


@st.composite
def authorized_keys_file(draw, pool) -> bytes:
    keys, ca = pool
    lines: list[bytes] = []
    for key in keys:
        for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2]))):
            lines.append(draw(key_line(b"", key)))
        if key.certificate is not None and draw(st.booleans()):  # the certificate itself as a line
            lines.append(draw(key_line(key.certificate_line().encode())))
    for _ in range(draw(st.integers(0, 2))):
        lines.append(draw(key_line(ca.public_line.encode(), ca=True)))
    for _ in range(draw(st.integers(0, 3))):
        sk = draw(st.sampled_from([sk_ed25519_line, sk_ecdsa_line]))()
        lines.append(draw(key_line(" ".join(sk.split()[:2]).encode())))
    lines += draw(st.lists(st.sampled_from(FILLER), max_size=8))
    order = draw(st.permutations(range(len(lines))))
    ending = draw(st.sampled_from([b"\n", b"\r\n"]))
    return b"".join(lines[i] + ending for i in order)


def _model_lets_in(lines: tuple[KeyLine, ...], blob: bytes, now: float) -> bool:
    """A plain-key login: any line holding the key lets it in (sshd reads on after a line that refuses it)."""
    return any(line.logs_in(now) for line in lines if line.key is not None and line.key.blob == blob)


def _ca_lets_in(lines: tuple[KeyLine, ...], ca_blob: bytes, now: float) -> bool:
    return any(line.way_in(now) and line.options.cert_authority
               for line in lines if line.key is not None and line.key.blob == ca_blob)


def check_against_sshd(sshd: judge.Sshd, pool, content: bytes) -> None:
    keys, ca = pool
    sshd.write(content)
    now = time.time()
    lines = read_authorized_keys(content)
    tries = [(key, None) for key in keys] + [(ca, None)]
    tries += [(key, key.certificate) for key in keys if key.certificate is not None]
    said = sshd.logins(tries)
    ca_blob = base64.b64decode(ca.blob_b64)
    for (key, certificate), sshd_said in zip(tries, said):
        blob = base64.b64decode(key.blob_b64)
        model = _model_lets_in(lines, blob, now) or (certificate is not None and _ca_lets_in(lines, ca_blob, now))
        where = [line.number for line in lines if line.key is not None and line.key.blob == blob]
        assert model == sshd_said, (
            f"{key.name}{' with its certificate' if certificate else ''}: sshd says {sshd_said}, the model "
            f"{model}; its lines {where}: {[lines[n - 1].raw for n in where]!r}; CA lines: "
            f"{[line.raw for line in lines if line.key is not None and line.key.blob == ca_blob]!r}")


@settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=st.data())
def test_the_model_agrees_with_sshd_on_every_key_of_generated_files(sshd, pool, data):
    check_against_sshd(sshd, pool, data.draw(authorized_keys_file(pool)))


def test_a_long_crlf_file_is_read_to_its_end_as_sshd_reads_it(sshd, pool):
    """Thousands of lines, CRLF endings, keys after line 1000, comments with DEL and ESC, an RSA-1024 key,
    an expired key, a cert-authority key: each one judged as sshd judges it."""
    keys, ca = pool
    ed, rsa1024, p384 = keys[2], keys[12], keys[9]
    filler = [b"# filler %d" % n if n % 3 else b"" for n in range(2500)]
    wanted = [ed.public_line.encode() + b" del\x7fesc\x1b[0m", rsa1024.public_line.encode(),
              b'expiry-time="19700102" ' + p384.public_line.encode(),
              b'cert-authority,expiry-time="20991231" ' + ca.public_line.encode()]
    content = b"".join(line + b"\r\n" for line in filler + wanted)
    check_against_sshd(sshd, pool, content)
    lines = read_authorized_keys(content)
    assert [line.number for line in lines if line.key is not None] == [2501, 2502, 2503, 2504]
    assert [line.logs_in(time.time()) for line in lines[2500:]] == [True, True, False, False]
    assert lines[2503].way_in(time.time())  # certificates the CA signs


def test_sk_keys_are_ways_in_that_do_not_hide_the_keys_after_them(sshd, pool):
    """sshd needs the hardware token to let an sk- key in, which no test has; the model counts them (the person
    with the token gets in), and the key after them is judged as sshd judges it."""
    keys, _ = pool
    sk_lines = [sk_ed25519_line("fido@desk"), 'no-touch-required ' + sk_ecdsa_line("fido2@desk")]
    content = "".join(line + "\n" for line in [*sk_lines, keys[3].public_line]).encode()
    lines = read_authorized_keys(content)
    assert [line.way_in(time.time()) for line in lines] == [True, True, True]
    assert [line.key.kind for line in lines if line.key] == ["ED25519-SK", "ECDSA-SK", "ED25519"]
    check_against_sshd(sshd, pool, content)


def test_the_suite_logs_in_for_real(sshd, pool, tmp_path: Path):
    """The judge can say both words: an empty file lets nobody in, the key's own line lets it in."""
    keys, _ = pool
    sshd.write(b"")
    assert sshd.logs_in(keys[0]) is False
    sshd.write(keys[0].public_line.encode() + b"\n")
    assert sshd.logs_in(keys[0]) is True
