"""What the plan, the summary and the JSON say of keys fetched from gh:/gl:/https sources (no network: the
fetched keys are made here; fetching is tested in tests/fetch and through the command in tests/commands)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from provision.commands.seed.apply import SeedOutcome, fresh_material
from provision.core.credentials.keysources import FetchedKeys, parse_key_source
from provision.core.credentials.sshkeys import parse_authorized_keys
from provision.core.layout import load_layout
from provision.core.plan import build_plan
from provision.core.request import PasswordChoice, SeedRequest
from provision.core.state import ImageState
from provision.ui import render
from tests.support.keyfactory import public_line


def outcome_with(fetched: FetchedKeys | None, own: str) -> SeedOutcome:
    keys = (*(fetched.keys if fetched else ()), *parse_authorized_keys(own, "own.pub"))
    request = SeedRequest(password=PasswordChoice.locked(), keys=keys, fetched=(fetched,) if fetched else ())
    plan = build_plan(request, ImageState(stats={}), load_layout(), fresh_material())
    info = SimpleNamespace(path=Path("/images/disk.qcow2"), format="qcow2")
    return SeedOutcome(info, plan, applied=False)


def test_fetched_keys_are_shown_with_their_source_and_fingerprint():
    source = parse_key_source("gh:alice", environ={})
    served = parse_authorized_keys(public_line(comment="") + "\n" + public_line("ecdsa"), "served")
    fetched = FetchedKeys(source, "https://github.com/alice.keys?redirected=token", tuple(served))
    own = public_line(comment="own@laptop")
    outcome = outcome_with(fetched, own)

    plan = render.render_plan(outcome, dry_run=True)
    assert "SSH keys fetched from gh:alice (https://github.com/alice.keys?...)" in plan  # the query not shown
    for key in served:
        assert f"  {key.describe()}" in plan
    summary = render.render_summary(outcome)
    assert [line for line in summary.splitlines() if line.startswith("  ") and "SHA256:" in line][:3] == [
        f"  {served[0].describe()}, from gh:alice", f"  {served[1].describe()}, from gh:alice",
        f"  {parse_authorized_keys(own, 'own')[0].describe()}",
    ]
    data = json.loads(render.render_seed(outcome, dry_run=True, json_out=True)[0])
    assert [(k["fingerprint"], k["source"]) for k in data["authorized_keys"]] == [
        (served[0].fingerprint, "gh:alice"), (served[1].fingerprint, "gh:alice"),
        (parse_authorized_keys(own, "own")[0].fingerprint, None),
    ]


def test_a_plan_without_fetched_keys_says_nothing_of_fetching():
    outcome = outcome_with(None, public_line())
    assert "fetched" not in render.render_plan(outcome, dry_run=True)
    assert ", from " not in render.render_summary(outcome)
    assert json.loads(render.render_seed(outcome, dry_run=True, json_out=True)[0])["authorized_keys"][0]["source"] is None
