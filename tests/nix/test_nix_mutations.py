"""nix/tests/mutations.py: its one-line breakages of nix/ still apply to this tree, there are at least 20 the
checks must catch, every one they cannot is named in nix/README.md, and (run here, about 10 s) the two
blockers of issue 19 put back are each caught. The whole run: `.venv/bin/python nix/tests/mutations.py`
(about 2-3 minutes), or ZVM_NIX_MUTATIONS=1 for test_every_mutation_is_caught_as_expected."""

from __future__ import annotations

import importlib.util
import os
import sys

import pytest

from tests.nix.support import NIX_DIR, require_inputs

pytestmark = pytest.mark.nix

spec = importlib.util.spec_from_file_location("zvm_nix_mutations", NIX_DIR / "tests" / "mutations.py")
assert spec is not None and spec.loader is not None
mutations = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = mutations  # dataclasses look their module up there
spec.loader.exec_module(mutations)

inside_a_mutation_run = pytest.mark.skipif(
    "ZVM_NIX_MUTATION" in os.environ, reason="inside a mutation run: no mutation runs of its own"
)


def test_every_mutation_applies_to_exactly_one_place() -> None:
    for m in mutations.MUTATIONS:
        assert (NIX_DIR / m.file).read_text().count(m.old) == 1, m.name
    names = [m.name for m in mutations.MUTATIONS]
    assert len(names) == len(set(names))
    assert len([n for n in names if n not in mutations.UNCATCHABLE]) >= 20


def test_the_uncatchable_ones_are_in_the_connected_machine_list() -> None:
    readme = (NIX_DIR / "README.md").read_text()
    connected = readme[readme.index("### Checked only on a connected machine"):]
    for name in mutations.UNCATCHABLE:
        assert f"`{name}`" in connected, name


@inside_a_mutation_run
@pytest.mark.parametrize("name", mutations.BLOCKERS)
def test_each_blocker_put_back_is_caught(name: str) -> None:
    require_inputs()
    (mutation,) = [m for m in mutations.MUTATIONS if m.name == name]
    assert mutations.caught(mutation), f"tests/nix passes with {name} applied"


@inside_a_mutation_run
@pytest.mark.skipif(os.environ.get("ZVM_NIX_MUTATIONS") != "1", reason="the full mutation run: set ZVM_NIX_MUTATIONS=1")
def test_every_mutation_is_caught_as_expected() -> None:
    require_inputs()
    assert mutations.main([]) == 0
