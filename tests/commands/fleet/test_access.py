"""Who can get in, as sshd and NixOS decide it, through the real commands and appliance (issue 25): keys sshd
accepts are found and revoked whatever their comment, size or place in the file; a key is named by its
fingerprint (with or without SHA256:) or its public key line with any comment; a key no image holds is a
failure; and the lock-out rule counts only real ways in.

Launches (15-60 s each under TCG), shared by the tests below: batch makes six images in ONE launch; ONE
writable launch puts in each the authorized_keys and password file a case needs; then the command runs, the
read-only ones side by side: `inspect --check`, `inspect --find-key`, a refused `keys`, a `keys` that names a
key no image holds; then the revocation, and `inspect --find-key` once more on what it left.

- odd: line 1 a key whose comment holds DEL, ESC and a bidi control, line 2 an RSA-1024 key (sshd takes RSA
  from 1024 bits), line 3 a key that stays, 1100 comment lines, then a key past line 1000.
- expired: alice@laptop and an `expiry-time="19700102"` key, the password locked.
- crlf: alice@laptop, and a valid hash whose line ends in CRLF (NixOS keeps the "\\r": it never matches).
- expired_only, crlf_only: what those two would be left with once alice@laptop went: `inspect --check`
  must call them "no way in".
- plain: as batch made it.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from provision.core.credentials.passwords import LOCKED_PASSWORD_LINE, hash_password
from provision.core.credentials.sshkeys import read_image_keys
from provision.core.layout import load_layout
from provision.guest.appliance import Appliance
from provision.guest.diskformat import probe_image
from tests.conftest import TEST_ACCEL
from tests.support.command import zvm
from tests.support.files import sha256
from tests.support.keyfactory import public_line
from tests.support.persist import write_file

pytestmark = pytest.mark.appliance

LAYOUT = load_layout()
NAMES = ("odd", "expired", "crlf", "expired_only", "crlf_only", "plain")
KEYS_PATH = LAYOUT.role("authorized-keys").path
PASSWORD_PATH = LAYOUT.role("password-hash").path
ODD_COMMENT = b"eve\x7f@lap\x1b[31mtop\xe2\x80\xaeevil"  # DEL, ESC, U+202E (right-to-left override)


def _fingerprint(line: str) -> str:
    """As the commands read it from an image (sshd's rules: RSA from 1024 bits, which seed would not write)."""
    (key,), _ = read_image_keys(line.encode(), time.time())
    return key.fingerprint


def _bare(line: str) -> str:
    return " ".join(line.split()[:2])


@pytest.fixture(scope="module")
def access(sample_disk_template: Path, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("access")
    keys = {"odd": public_line(comment="eve"), "rsa1024": public_line("rsa", comment="old@box", bits=1024),
            "stays": public_line(comment="dave@keep"), "late": public_line(comment="carol@desk"),
            "alice": public_line(comment="alice@laptop"), "old": public_line(comment="old@key"),
            "nowhere": public_line(comment="nobody@nowhere")}
    fp = {name: _fingerprint(line) for name, line in keys.items()}
    for name in NAMES:
        (folder / f"{name}.pub").write_text(keys["stays"] + "\n")
    (folder / "rsa1024.pub").write_text(keys["rsa1024"] + "\n")
    manifest = folder / "staff.csv"
    manifest.write_text("name,ssh_keys,password_hash,netbird_setup_key,netbird_management_url,hostname\n"
                        + "".join(f"{name},{name}.pub,,,,{name.replace('_', '-')}\n" for name in NAMES))
    out = folder / "images"
    made = zvm("batch", manifest, "--base", sample_disk_template, "--out-dir", out, "--jobs", "1")
    assert made.returncode == 0, made.stderr
    images = {name: out / f"{name}.qcow2" for name in NAMES}

    expired = b'expiry-time="19700102" ' + keys["old"].encode()
    crlf_hash = (hash_password("a good password", rounds=1000).reveal() + "\r\n").encode()
    locked = (LOCKED_PASSWORD_LINE + "\n").encode()
    odd = b"".join([_bare(keys["odd"]).encode() + b" " + ODD_COMMENT + b"\n", keys["rsa1024"].encode() + b"\n",
                    keys["stays"].encode() + b"\n", b"# filler\n" * 1100, keys["late"].encode() + b"\n"])
    files = {"odd": (odd, None), "expired": (keys["alice"].encode() + b"\n" + expired + b"\n", locked),
             "crlf": (keys["alice"].encode() + b"\n", crlf_hash), "expired_only": (expired + b"\n", locked),
             "crlf_only": (b"", crlf_hash)}
    with Appliance([probe_image(images[name]) for name in NAMES], readonly=False, accel=TEST_ACCEL) as appliance:
        appliance.launch()
        for index, name in enumerate(NAMES):
            if name not in files:
                continue
            authorized, password = files[name]
            with appliance.mount_persist(index, writable=True) as fs:
                write_file(fs, KEYS_PATH, authorized, 1000, 100, 0o600)
                if password is not None:
                    write_file(fs, PASSWORD_PATH, password, 0, 0, 0o600)
        appliance.close()

    before = {name: sha256(path) for name, path in images.items()}
    late_other_comment = _bare(keys["late"]) + " carol@another-name"
    first = {
        "check": ("inspect", images["odd"], images["expired_only"], images["crlf_only"], "--check"),
        "find": ("inspect", images["odd"], "--find-key", fp["odd"], "--find-key", fp["rsa1024"].removeprefix("SHA256:"),
                 "--find-key", late_other_comment),
        "refused": ("keys", images["expired"], images["crlf"], "--remove-key", "alice@laptop"),
        "nowhere": ("keys", images["plain"], "--remove-key", fp["nowhere"]),
    }
    with ThreadPoolExecutor(max_workers=len(first)) as pool:
        runs = dict(zip(first, pool.map(lambda args: zvm(*args), first.values())))
    runs["after_first"] = {name: sha256(path) for name, path in images.items()}
    runs["revoke"] = zvm("keys", images["odd"], "--remove-key", fp["odd"], "--remove-key",
                         (folder / "rsa1024.pub").read_text(), "--remove-key", fp["late"].removeprefix("SHA256:"))
    runs["find_after"] = zvm("inspect", images["odd"], "--find-key", fp["odd"], "--find-key", fp["rsa1024"],
                             "--find-key", fp["late"], "--find-key", fp["stays"], "--json")
    return {"images": images, "fp": fp, "runs": runs, "before": before}


def test_check_calls_an_expired_key_and_a_crlf_hash_no_way_in(access):
    check = access["runs"]["check"]
    assert check.returncode == 1, check.stderr
    out = check.stdout
    assert "1 of 3 images meet the contract" in out, out
    assert "expired_only" in out and "crlf_only" in out
    assert out.count("no way in") == 2, out


def test_find_key_finds_keys_sshd_accepts_by_fingerprint_bare_fingerprint_or_line(access):
    find, fp = access["runs"]["find"], access["fp"]
    assert find.returncode == 0, find.stderr
    for name in ("odd", "rsa1024", "late"):
        assert fp[name] in find.stdout, (name, find.stdout)
    assert "1 of 1 image hold" in find.stdout
    # the comment read from the image is printed escaped: no DEL, ESC or bidi control reaches the terminal
    assert "\x7f" not in find.stdout and "\x1b" not in find.stdout and "\u202e" not in find.stdout
    assert "\\x7f" in find.stdout and "\\x1b" in find.stdout and "\\u202e" in find.stdout


def test_the_last_real_way_in_is_never_removed(access):
    refused = access["runs"]["refused"]
    assert refused.returncode == 1, refused.stderr
    assert refused.stdout.count("refused") >= 2 and refused.stdout.count("no way in") == 2, refused.stdout
    said = refused.stdout + refused.stderr
    assert "--ssh-key" not in said and "--password-stdin" not in said  # seed's flags: keys has none of them
    assert "--add-key" in said
    images, before, after = access["images"], access["before"], access["runs"]["after_first"]
    assert after["expired"] == before["expired"] and after["crlf"] == before["crlf"]


def test_a_key_no_image_holds_is_a_failure_not_unchanged(access):
    nowhere = access["runs"]["nowhere"]
    assert nowhere.returncode == 1, (nowhere.stdout, nowhere.stderr)
    assert "no image holds that key" in nowhere.stderr
    assert access["runs"]["after_first"]["plain"] == access["before"]["plain"]


def test_revocation_reaches_keys_sshd_accepts_and_find_key_then_fails(access):
    revoke, fp = access["runs"]["revoke"], access["fp"]
    assert revoke.returncode == 0, (revoke.stdout, revoke.stderr)
    assert "1 image: 1 changed, 0 unchanged" in revoke.stdout, revoke.stdout
    for name in ("odd", "rsa1024", "late"):
        assert fp[name] in revoke.stdout, (name, revoke.stdout)
    after = access["runs"]["find_after"]
    assert after.returncode == 1, after.stderr  # three of the four keys: no image holds them any more
    found = [key for row in json.loads(after.stdout) for key in row["matched_keys"]]
    assert found == [fp["stays"]]
    assert "no image holds those keys" in after.stderr
