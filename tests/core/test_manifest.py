"""The batch manifest without the appliance: parsing, every bad row named, nothing written on refusal."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from provision.commands.batch import outputs
from provision.commands.batch.run import plan_chunks
from provision.core.credentials.passwords import generate_password
from provision.commands.batch.manifest import load_manifest
from provision.core.manifest import ManifestError, named_keys, parse_shard, read_rows, validate_rows
from provision.errors import UsageError
from tests.support.keyfactory import private_pem, public_line

HASH = "$6$rounds=1000$saltsalt$" + "a" * 86
SETUP_KEY = "0B1C2D3E-4F50-6172-8394-A5B6C7D8E9F0"
HEADER = "name,ssh_keys,password_hash,netbird_setup_key,netbird_management_url\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    keys.mkdir()
    for name in ("alice", "bob", "carol"):
        (keys / f"{name}.pub").write_text(public_line(comment=f"{name}@laptop") + "\n")
    (keys / "bob2.pub").write_text(public_line("ecdsa", comment="bob@phone") + "\n")
    (keys / "id_ed25519").write_text(private_pem())
    return tmp_path


def write(folder: Path, text: str, name: str = "staff.csv", mode: int = 0o600) -> Path:
    path = folder / name
    path.write_text(text)
    path.chmod(mode)
    return path


def test_a_good_csv_gives_one_user_per_row_with_keys_hash_and_netbird(folder: Path):
    path = write(folder, HEADER
                 + "alice,keys/alice.pub,,,\n"
                 + "\n# a comment row\n"
                 + f"bob, keys/bob.pub ; keys/bob2.pub ,{HASH},{SETUP_KEY},https://nb.example.com\n")
    manifest = load_manifest(path)
    alice, bob = manifest.users
    assert (alice.name, alice.password_hash, alice.netbird_setup_key) == ("alice", None, None)
    assert bob.name == "bob"
    assert [k.comment for k in bob.keys] == ["bob@laptop", "bob@phone"]
    assert bob.password_hash.reveal() == HASH
    assert bob.netbird_setup_key.reveal() == SETUP_KEY
    assert bob.netbird_management_url == "https://nb.example.com"
    assert SETUP_KEY not in repr(bob) and HASH not in repr(bob)
    assert alice.image_name == "alice.qcow2"


def test_only_name_and_ssh_keys_columns_are_required(folder: Path):
    manifest = load_manifest(write(folder, "ssh_keys,name\nkeys/carol.pub,carol\n"))
    assert [u.name for u in manifest.users] == ["carol"]


def test_every_bad_row_is_named_by_line_with_its_reason(folder: Path):
    path = write(folder, HEADER
                 + "alice,keys/alice.pub,,,\n"  # 2: good
                 + "mallory,keys/id_ed25519,,,\n"  # 3: a private key
                 + "alice,keys/bob.pub,,,\n"  # 4: duplicate name
                 + "dave,keys/nope.pub,,,\n"  # 5: missing key file
                 + "erin,keys/carol.pub,$6$bad,,\n"  # 6: bad hash
                 + "bad name,keys/carol.pub,,,\n"  # 7: bad name
                 + "frank,,,,\n"  # 8: no key
                 + "gina,keys/carol.pub,,not-a-key,http://x\n"  # 9: bad setup key and URL
                 + "too,many,fields,,,,\n")  # 10: wrong field count
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    error = caught.value
    where = [w for w, _ in error.problems]
    assert "line 2" not in where
    assert where == ["line 3", "line 4", "line 5", "line 6", "line 7", "line 8", "line 9", "line 9", "line 10"]
    message = error.message
    assert "8 bad rows" in message
    assert "line 3: " in message and "private key" in message
    assert "line 4: duplicate name 'alice' (first used at line 2)" in message
    assert "line 5: " in message and "no such file" in message
    assert "line 6: password_hash:" in message
    assert "line 7: name 'bad name'" in message
    assert "line 8: ssh_keys is empty" in message
    assert "line 9: netbird_setup_key:" in message and "line 9: netbird_management_url:" in message
    assert "not-a-key" not in message  # a secret column's value is never echoed
    assert error.exit_code == 2


def test_names_differing_only_in_case_are_duplicates(folder: Path):
    with pytest.raises(ManifestError, match="duplicate name 'Alice'"):
        load_manifest(write(folder, HEADER + "alice,keys/alice.pub,,,\nAlice,keys/bob.pub,,,\n"))


@pytest.mark.parametrize("name", ["../etc", ".hidden", "a/b", "é"])
def test_names_that_are_not_plain_file_names_are_refused(folder: Path, name: str):
    with pytest.raises(ManifestError, match="may only hold"):
        load_manifest(write(folder, HEADER + f"{name},keys/alice.pub,,,\n"))


def test_header_problems_stop_at_once(folder: Path):
    with pytest.raises(UsageError, match="unknown column.*'password'"):
        load_manifest(write(folder, "name,ssh_keys,password\nalice,keys/alice.pub,hunter2\n"))
    with pytest.raises(UsageError, match="missing column.*ssh_keys"):
        load_manifest(write(folder, "name\nalice\n"))
    with pytest.raises(UsageError, match="empty"):
        load_manifest(write(folder, ""))
    with pytest.raises(ManifestError, match="no users"):
        load_manifest(write(folder, HEADER))


@pytest.mark.parametrize("header", ["username", "User", "LOGIN"])
@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_a_username_user_or_login_column_is_read_as_name(folder: Path, header: str, delimiter: str):
    csv_path = write(folder, f"ssh_keys{delimiter}{header}\nkeys/alice.pub{delimiter}alice\n")
    assert [u.name for u in load_manifest(csv_path).users] == ["alice"]
    toml_path = write(folder, f'[[user]]\n{header.lower()} = "bob"\nssh_keys = "keys/bob.pub"\n', "staff.toml")
    assert [u.name for u in load_manifest(toml_path).users] == ["bob"]


def test_a_name_column_beside_a_username_column_is_a_column_twice(folder: Path):
    with pytest.raises(UsageError, match="a column appears twice"):
        load_manifest(write(folder, "name,username,ssh_keys\nalice,alice,keys/alice.pub\n"))


@pytest.mark.parametrize("row", [f"alice,keys/alice.pub,,{SETUP_KEY},\n", f"alice,keys/alice.pub,{HASH},,\n",
                                 "alice,keys/alice.pub,$6$not-even-valid,,\n"],
                         ids=["setup-key", "password-hash", "bad-hash"])
@pytest.mark.parametrize(("mode", "readers"), [(0o644, "every user"), (0o640, "its group"), (0o604, "every user")])
def test_a_manifest_with_secrets_others_can_read_is_refused_with_the_chmod_to_run(folder: Path, row, mode, readers):
    path = write(folder, HEADER + row, mode=mode)
    with pytest.raises(ManifestError, match=f"{readers}.*can read it.*chmod go-rwx {path}"):
        load_manifest(path)
    assert load_manifest(write(folder, HEADER + row.replace("$6$not-even-valid", ""), mode=0o600)).users


def test_a_manifest_without_secrets_may_be_readable(folder: Path):
    assert load_manifest(write(folder, HEADER + "alice,keys/alice.pub,,,\n", mode=0o644)).users


def test_toml_manifest_with_the_same_fields(folder: Path):
    path = write(folder, f"""
[[user]]
name = "alice"
ssh_keys = ["keys/alice.pub", "keys/bob2.pub"]

[[user]]
name = "bob"
ssh_keys = "keys/bob.pub"
password_hash = "{HASH}"

[[user]]
name = "carol"
ssh_keys = "keys/id_ed25519"
shell = "/bin/zsh"
""", name="staff.toml")
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert [w for w, _ in caught.value.problems] == ["[[user]] #3"]
    assert "unknown field 'shell'" in caught.value.message
    path.write_text(path.read_text().replace('shell = "/bin/zsh"\n', "").replace("keys/id_ed25519", "keys/carol.pub"))
    manifest = load_manifest(path)
    assert [(u.name, len(u.keys)) for u in manifest.users] == [("alice", 2), ("bob", 1), ("carol", 1)]


def test_shards_split_the_manifest_into_contiguous_slices_that_cover_it_once(folder: Path):
    rows = "".join(f"u{i},keys/alice.pub,,,\n" for i in range(10))
    manifest = load_manifest(write(folder, HEADER + rows))
    slices = [[u.name for u in manifest.shard(k, 3)] for k in (1, 2, 3)]
    assert sum(slices, []) == [f"u{i}" for i in range(10)]
    assert [len(s) for s in slices] == [3, 3, 4]
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "1/0", "x", "1/2/3"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_chunks_put_many_disks_in_each_launch():
    assert plan_chunks(20, 1, 24) == (1, [(0, 20)])
    assert plan_chunks(20, 2, 24) == (2, [(0, 10), (10, 20)])
    assert plan_chunks(50, 1, 24) == (1, [(0, 17), (17, 34), (34, 50)])
    assert plan_chunks(3, 8, 24) == (3, [(0, 1), (1, 2), (2, 3)])
    jobs, chunks = plan_chunks(3, 0, 24)  # automatic: too few disks for a second appliance
    assert (jobs, chunks) == (1, [(0, 3)])


def test_generated_passwords_are_long_and_random():
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) >= 20 and len(p.replace("-", "")) == 25 for p in passwords)


def test_passwords_file_is_0600_from_creation_and_keeps_earlier_rows(tmp_path: Path):
    old_umask = os.umask(0)  # even with a permissive umask the file is never wider than 0600
    try:
        path = outputs.write_passwords(tmp_path, {"alice": "pw-a", "bob": "pw-b"})
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == "name,password\nalice,pw-a\nbob,pw-b\n"
    outputs.write_passwords(tmp_path, {"bob": "pw-b2"})
    assert path.read_text() == "name,password\nalice,pw-a\nbob,pw-b2\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["initial-passwords.csv"]


def test_batch_command_refuses_a_bad_manifest_with_exit_2_and_creates_nothing(folder: Path, tmp_path: Path):
    """The real command; no appliance: every row is checked before anything else happens."""
    manifest = write(folder, HEADER
                     + "alice,keys/alice.pub,,,\n"
                     + "bob,keys/id_ed25519,,,\n"  # a private key
                     + "alice,keys/bob.pub,,,\n"  # a duplicate name
                     + "carol,keys/missing.pub,,,\n"  # a missing key file
                     + "dave,keys/carol.pub,$6$rounds=5000$salt$tooshort,,\n")  # a bad hash
    out = tmp_path / "out"
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    before = sorted(p.name for p in tmp_path.iterdir())
    result = subprocess.run(
        [sys.executable, "-m", "provision", "batch", str(manifest), "--base", str(base), "--out-dir", str(out)],
        capture_output=True, text=True, env={**os.environ, "ZVM_PROVISION_ACCEL": "tcg"}, timeout=60,
    )
    assert result.returncode == 2, result.stderr
    for where, reason in (("line 3", "private key"), ("line 4", "duplicate name 'alice'"),
                          ("line 5", "no such file"), ("line 6", "password_hash")):
        assert any(line.strip().startswith(where) and reason in line for line in result.stderr.splitlines()), where
    assert not any(line.strip().startswith("line 2:") for line in result.stderr.splitlines())
    assert "tooshort" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before and not out.exists()


def test_a_batch_row_can_never_lock_everyone_out(folder: Path):
    """Why batch needs no lock-out check of its own: every row that could leave no way in is already a row
    error, before any copy (the batch command reads the whole manifest first, see the test above). A row must
    name at least one key file, each holding at least one key; password_hash takes a $6$/$y$ hash only, never
    a locked marker; an empty one generates a password. So every image gets keys and a usable password, and
    the seeding request the worker builds from a row (PasswordChoice.from_hash, the row's keys) passes the
    rule."""
    from provision.core.access import way_in

    (folder / "keys" / "empty.pub").write_text("")
    (folder / "keys" / "comments.pub").write_text("# no key here\n\n")
    path = write(folder, HEADER
                 + "nokey,,,,\n"  # 2
                 + "empty,keys/empty.pub,,,\n"  # 3
                 + "comments,keys/comments.pub,,,\n"  # 4
                 + "locked,keys/alice.pub,!,,\n"  # 5
                 + "star,keys/alice.pub,*,,\n")  # 6
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert [w for w, _ in caught.value.problems] == ["line 2", "line 3", "line 4", "line 5", "line 6"]
    good = load_manifest(write(folder, HEADER + f"alice,keys/alice.pub,,,\nbob,keys/bob.pub,{HASH},,\n"))
    for user in good.users:
        assert user.keys and way_in(len(user.keys), "set")


def test_hostname_column_defaults_to_zvm_name_made_valid_and_a_given_one_is_checked(folder: Path):
    path = write(folder, "name,ssh_keys,hostname\n"
                 + "Alice.Smith,keys/alice.pub,\n"  # default: zvm-alice-smith
                 + f"{'b' * 70},keys/bob.pub,\n"  # default cut to 63, no trailing hyphen
                 + "carol,keys/carol.pub,carols-vm\n")  # given: kept as it is
    alice, long_one, carol = load_manifest(path).users
    assert alice.hostname == "zvm-alice-smith"
    assert long_one.hostname == "zvm-" + "b" * 59 and len(long_one.hostname) == 63
    assert carol.hostname == "carols-vm"
    # TOML rows take the same field
    toml = write(folder, '[[user]]\nname = "dave"\nssh_keys = ["keys/alice.pub"]\nhostname = "dave-pc"\n',
                 name="staff.toml")
    assert [u.hostname for u in load_manifest(toml).users] == ["dave-pc"]


def test_a_bad_or_duplicate_hostname_is_a_row_error_before_anything(folder: Path):
    path = write(folder, "name,ssh_keys,hostname\n"
                 + "alice,keys/alice.pub,Alice_PC\n"  # 2: upper case and '_': refused, not changed
                 + "bob,keys/bob.pub,shared\n"  # 3: good
                 + "carol,keys/carol.pub,shared\n"  # 4: the same hostname as line 3
                 + "a.b,keys/alice.pub,\n"  # 5: default zvm-a-b
                 + "a_b,keys/bob.pub,\n"  # 6: default zvm-a-b too
                 + f"dave,keys/carol.pub,{'x' * 64}\n")  # 7: too long
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    problems = dict(caught.value.problems)
    assert [w for w, _ in caught.value.problems] == ["line 2", "line 4", "line 6", "line 7"]
    assert "lower-case letters" in problems["line 2"] and "'Alice_PC'" in problems["line 2"]
    assert problems["line 4"] == "duplicate hostname 'shared' (first used at line 3)"
    assert problems["line 6"] == "duplicate hostname 'zvm-a-b' (first used at line 5)"
    assert "1 to 63 characters" in problems["line 7"]
    assert "nothing was created" in caught.value.message


class RecordingFetcher:
    """A stand-in KeyFetcher: serves one key per source and records what load_manifest asked of it."""

    def __init__(self) -> None:
        self.prefetched: list[str] = []
        self.fetched: list[str] = []

    def prefetch(self, sources) -> None:
        self.prefetched += [source.spec for source in sources]

    def fetch(self, source):
        from provision.core.credentials.keysources import FetchedKeys
        from provision.core.credentials.sshkeys import parse_authorized_keys

        self.fetched.append(source.spec)
        keys = parse_authorized_keys(public_line(comment=source.spec), source.spec)
        return FetchedKeys(source=source, final_url=source.url, keys=tuple(keys))


def test_a_manifest_read_for_a_shard_fetches_that_slices_sources_and_serves_that_slice_only(folder: Path):
    (folder / "keys" / "dave.pub").write_text(public_line(comment="dave@laptop") + "\n")
    rows = "".join(f"{name},keys/{name}.pub;gh:{name}-gh,,,\n" for name in ("alice", "bob", "carol", "dave"))
    path = write(folder, HEADER + rows + "erin,keys/alice.pub;gh:bob-gh,,,\n")  # bob-gh: also slice 1's
    fetcher = RecordingFetcher()
    manifest = load_manifest(path, fetcher, shard=(1, 2))
    assert fetcher.prefetched == ["gh:alice-gh", "gh:bob-gh"]  # rows 1-2 of 5: the first half
    assert sorted(set(fetcher.fetched)) == ["gh:alice-gh", "gh:bob-gh"]
    assert [[k.comment for k in user.keys] for user in manifest.shard(1, 2)] == [
        ["alice@laptop", "gh:alice-gh"], ["bob@laptop", "gh:bob-gh"]]
    assert [user.name for user in manifest.users] == ["alice", "bob", "carol", "dave", "erin"]
    with pytest.raises(ValueError, match="read for shard"):
        manifest.shard(2, 2)  # its users' remote keys were not fetched: never seeded from this reading
    whole = load_manifest(path, RecordingFetcher())
    assert [len(user.keys) for user in whole.shard(2, 2)] == [2, 2, 2]


def test_core_checks_the_rows_against_what_it_is_handed_and_reads_nothing(tmp_path: Path):
    """core.manifest names the key files and sources the rows need (named_keys) and checks the rows against
    what batch/manifest.py read and fetched: no file is opened and nothing fetched here (none of these exist)."""
    from provision.core.credentials.sshkeys import parse_authorized_keys

    text = HEADER + "alice,keys/alice.pub;gh:alice,,,\nbob,keys/gone.pub,,,\ncarol,gh:carol,,,\n"
    rows = read_rows(tmp_path / "staff.csv", text)
    files, sources = named_keys(tmp_path, rows)
    assert files == [tmp_path / "keys/alice.pub", tmp_path / "keys/gone.pub"]
    assert [source.spec for source in sources] == ["gh:alice", "gh:carol"]
    key = parse_authorized_keys(public_line(comment="alice@laptop"), "test")
    read = {files[0]: key, files[1]: UsageError("SSH key file keys/gone.pub: no such file")}
    fetched = {sources[0].identity: parse_authorized_keys(public_line(comment="alice@gh"), "test"),
               sources[1].identity: UsageError("gh:carol: no such user")}
    users, problems = validate_rows(tmp_path, rows, read, fetched)
    assert [(user.name, [k.comment for k in user.keys]) for user in users] == [("alice", ["alice@laptop", "alice@gh"])]
    assert [reason for _, reason in problems] == ["SSH key file keys/gone.pub: no such file", "gh:carol: no such user"]
    _, problems = validate_rows(tmp_path, rows, read, None)  # nothing may be fetched: the rows say so
    assert "gh:alice: keys cannot be fetched here; give a key file" in [reason for _, reason in problems]
