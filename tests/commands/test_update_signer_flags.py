"""--update-signer's file is read and checked before any image is opened, for seed, batch and keys alike: a
private key, or a key with authorized_keys options, is a usage error (exit 2) naming the file. The
appliance runs are in tests/commands/seed/test_update_signers.py."""

from __future__ import annotations

import contextlib

import pytest

from tests.support.command import in_process
from tests.support.keyfactory import public_line

PRIVATE = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"


@pytest.mark.parametrize("command", ["seed", "batch", "keys"])
@pytest.mark.parametrize(("content", "words"), [
    (PRIVATE, "private key"),
    ('restrict,from="10.0.0.0/8" ' + public_line(comment="release") + "\n", "authorized_keys options"),
], ids=["private-key", "key-with-options"])  # fixed ids: a generated key in an id differs between xdist workers
def test_a_bad_signer_file_is_refused_before_any_image_is_opened(tmp_path, command, content, words):
    signer = tmp_path / "signer"
    signer.write_text(content)
    image = tmp_path / "a.qcow2"
    image.write_bytes(b"")  # never opened: the refusal comes first
    key = tmp_path / "it.pub"
    key.write_text(public_line(comment="it@desk") + "\n")
    args = {
        "seed": ["seed", str(image), "--no-password", "--ssh-key", str(key)],
        "batch": ["batch", str(tmp_path / "m.csv"), "--base", str(image), "--out-dir", str(tmp_path / "out")],
        "keys": ["keys", str(image), "--add-key", str(key)],
    }[command]
    with contextlib.chdir(tmp_path):
        result = in_process(*args, "--update-signer", str(signer))
    assert result.returncode == 2, result
    assert words in result.stderr and str(signer) in result.stderr
    assert image.read_bytes() == b"" and not (tmp_path / "out").exists()
