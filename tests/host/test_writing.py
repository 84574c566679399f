"""host.writing: every file the tool writes on the host is private from its first instant, never written through a
link, and replaced whole."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from provision.core.credentials import hostkeys
from provision.errors import UsageError
from provision.host import writing as hostfiles


def test_write_private_key_file_modes_and_refusals(tmp_path):
    private, line = hostkeys.generate_user_keypair(comment="me")
    target = tmp_path / "id_ed25519"
    old = os.umask(0)  # even a permissive umask must not widen the private key
    try:
        hostfiles.write_key_pair(target, private, line)
    finally:
        os.umask(old)
    assert target.read_bytes() == private
    assert (tmp_path / "id_ed25519.pub").read_text() == line + "\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "id_ed25519.pub").stat().st_mode) == 0o644
    with pytest.raises(UsageError, match="already exists"):
        hostfiles.write_key_pair(target, b"other", line)
    assert target.read_bytes() == private

    only_pub = tmp_path / "second"
    (tmp_path / "second.pub").write_text("keep me\n")
    with pytest.raises(UsageError, match=r"second\.pub already exists"):
        hostfiles.write_key_pair(only_pub, private, line)
    assert not only_pub.exists() and (tmp_path / "second.pub").read_text() == "keep me\n"

    victim = tmp_path / "victim"
    victim.write_text("untouched")
    link = tmp_path / "link"
    link.symlink_to(victim)
    with pytest.raises(UsageError, match="already exists"):
        hostfiles.write_key_pair(link, private, line)
    assert victim.read_text() == "untouched"
    with pytest.raises(UsageError, match="cannot write"):
        hostfiles.write_key_pair(tmp_path / "missing-dir" / "id", private, line)


def test_write_atomic_replaces_whole_private_files_and_leaves_no_temporary_file(tmp_path: Path):
    target = tmp_path / "report.json"
    target.write_text("old")
    (tmp_path / ".report.json.tmp").write_text("left by a killed run")  # removed, never renamed into place
    old = os.umask(0)
    try:
        hostfiles.write_atomic(target, b"new")
    finally:
        os.umask(old)
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    hostfiles.write_atomic(target, b"shown to all", mode=0o644)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]


def test_write_atomic_never_writes_through_a_link_at_its_temporary_name(tmp_path: Path):
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / ".out.tmp").symlink_to(victim)  # unlinked first: the link goes, its target stays
    hostfiles.write_atomic(tmp_path / "out", b"data")
    assert victim.read_text() == "untouched" and (tmp_path / "out").read_bytes() == b"data"


@pytest.mark.parametrize("mask", [0o000, 0o022])
def test_create_private_is_0600_exclusive_and_never_through_a_link(tmp_path, mask):
    old = os.umask(mask)
    try:
        hostfiles.create_private(tmp_path / "image")
        hostfiles.make_private_dirs(tmp_path / "new" / "deeper")
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.lstat(tmp_path / "image").st_mode) == 0o600
    assert [stat.S_IMODE(os.lstat(p).st_mode) for p in (tmp_path / "new", tmp_path / "new" / "deeper")] == [
        0o700, 0o700]
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    (tmp_path / "planted").symlink_to(victim)
    for taken in (tmp_path / "image", tmp_path / "planted"):
        with pytest.raises(FileExistsError):
            hostfiles.create_private(taken)
    assert victim.read_text() == "untouched"


def test_make_private_dirs_under_a_file_names_it(tmp_path):
    (tmp_path / "a-file").write_text("not a folder\n")
    with pytest.raises(NotADirectoryError):
        hostfiles.make_private_dirs(tmp_path / "a-file" / "images")


def test_an_fsync_failure_of_a_written_image_is_an_error(tmp_path, monkeypatch):
    from provision.errors import ProvisionError

    image = tmp_path / "disk.qcow2"
    image.write_bytes(b"")

    def failing(path):
        raise OSError(5, os.strerror(5), str(path))

    monkeypatch.setattr(hostfiles, "fsync", failing)
    with pytest.raises(ProvisionError, match="could not be written out to the host disk"):
        hostfiles.sync_image(image)
