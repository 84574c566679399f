"""host.reading: what the person gives on this machine, read through real files. Each read is capped, a line is
one line, a secret file others can read is refused (judged by the file opened, so a link to it is judged by
its target), and no error repeats what the file holds."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from provision.errors import UsageError
from provision.host.reading import (
    read_key_file,
    read_key_files,
    read_netbird_setup_key_file,
    read_password_file,
    read_password_hash_file,
    read_password_stream,
    read_small_file,
    single_line,
)
from tests.support.keyfactory import public_line

PASSWORD = "correct horse battery staple"
SETUP_KEY = "A1B2C3D4-0000-4000-8000-0123456789AB"


def private(path: Path, data: str | bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(mode)
    return path


def test_a_private_password_file_gives_its_one_line(tmp_path):
    assert read_password_file(private(tmp_path / "pw", PASSWORD + "\n")) == PASSWORD
    assert read_password_file(private(tmp_path / "crlf", PASSWORD + "\r\n")) == PASSWORD


@pytest.mark.parametrize("mode, who", [(0o640, "its group"), (0o604, "every user"), (0o644, "its group and every user")])
def test_a_secret_file_others_can_read_is_refused_with_the_chmod_that_fixes_it(tmp_path, mode, who):
    path = private(tmp_path / "pw", PASSWORD + "\n", mode)
    with pytest.raises(UsageError) as caught:
        read_password_file(path)
    assert f"{who} can read it (mode {mode:04o})" in caught.value.message
    assert f"chmod go-rwx {path}" in caught.value.message
    assert PASSWORD not in caught.value.message


def test_every_secret_reader_refuses_a_file_others_can_read(tmp_path):
    hash_file = private(tmp_path / "hash", "$6$salt$" + "x" * 86 + "\n", 0o644)
    setup_key = private(tmp_path / "setup", SETUP_KEY + "\n", 0o644)
    for read, path in ((read_password_hash_file, hash_file), (read_netbird_setup_key_file, setup_key)):
        with pytest.raises(UsageError, match="holds a secret, but its group and every user can read it"):
            read(path)


def test_a_link_to_a_secret_file_is_judged_by_the_file_it_opens(tmp_path):
    """The mode checked is the opened file's: a link (whose own mode says nothing) to an open file is refused,
    a link to a private one is read (~/.ssh and password stores are often links, e.g. home-manager's)."""
    open_target = private(tmp_path / "shown", PASSWORD + "\n", 0o644)
    private_target = private(tmp_path / "kept", PASSWORD + "\n", 0o600)
    (tmp_path / "to-shown").symlink_to(open_target)
    (tmp_path / "to-kept").symlink_to(private_target)
    with pytest.raises(UsageError, match="every user can read it"):
        read_password_file(tmp_path / "to-shown")
    assert read_password_file(tmp_path / "to-kept") == PASSWORD


def test_a_key_file_is_no_secret_and_may_be_read_by_all(tmp_path):
    line = public_line(comment="alice@laptop")
    path = private(tmp_path / "id.pub", line + "\n", 0o644)
    assert [key.comment for key in read_key_file(path)] == ["alice@laptop"]


def test_too_big_a_file_is_refused_without_reading_past_its_limit(tmp_path):
    path = private(tmp_path / "big", b"x" * 101)
    assert read_small_file(path, 101, "the file") == b"x" * 101
    with pytest.raises(UsageError, match=r"^the file .*big is larger than 100 bytes; is it the right file\?$"):
        read_small_file(path, 100, "the file")
    with pytest.raises(UsageError, match="larger than 65536 bytes"):
        read_password_file(private(tmp_path / "huge", b"p" * (64 * 1024 + 1)))


def test_what_is_no_regular_file_is_refused_by_name(tmp_path):
    with pytest.raises(UsageError, match=r"password file .*missing: no such file$"):
        read_password_file(tmp_path / "missing")
    with pytest.raises(UsageError, match=r"password file .*: not a regular file$"):
        read_password_file(tmp_path)
    os.mkfifo(tmp_path / "fifo")  # would block a read forever: refused before it is opened
    with pytest.raises(UsageError, match="not a regular file"):
        read_password_file(tmp_path / "fifo")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(UsageError, match="no such file"):
        read_key_file(tmp_path / "dangling")


@pytest.mark.parametrize("data", [PASSWORD + "\nsecond line\n", PASSWORD + "\n\n", PASSWORD + "\rmore"])
def test_a_password_file_holds_exactly_one_line(tmp_path, data):
    with pytest.raises(UsageError) as caught:
        read_password_file(private(tmp_path / "pw", data))
    assert PASSWORD not in caught.value.message


def test_one_line_is_utf8_and_says_so_when_it_is_not():
    assert single_line("naïve\n".encode(), "the line") == "naïve"
    with pytest.raises(UsageError, match="^the line is not valid UTF-8 text$"):
        single_line(b"\xff\xfe", "the line")


def test_a_password_on_a_stream_is_capped_and_one_line():
    assert read_password_stream(io.BytesIO(PASSWORD.encode() + b"\n")) == PASSWORD
    with pytest.raises(UsageError, match="is longer than"):
        read_password_stream(io.BytesIO(b"p" * 5000))
    with pytest.raises(UsageError):
        read_password_stream(io.BytesIO(PASSWORD.encode() + b"\nmore\n"))


def test_key_files_are_merged_first_occurrence_first_and_a_bad_line_is_refused_without_its_text(tmp_path):
    alice, bob = public_line(comment="alice@laptop"), public_line(comment="bob@desk")
    first = private(tmp_path / "a.pub", alice + "\n" + bob + "\n", 0o644)
    second = private(tmp_path / "b.pub", bob + "\n", 0o644)
    assert [key.comment for key in read_key_files([first, second])] == ["alice@laptop", "bob@desk"]
    bad = private(tmp_path / "bad.pub", alice + "\nnot-a-key-but-a-secret\n", 0o644)
    with pytest.raises(UsageError) as caught:
        read_key_file(bad)
    assert "not-a-key-but-a-secret" not in caught.value.message
    assert str(bad) in caught.value.message
