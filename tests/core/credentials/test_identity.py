"""provision.core.credentials.identity: machine-ids."""

from __future__ import annotations

import pytest

from provision.core.credentials import identity


def test_machine_id(monkeypatch):
    ids = {identity.new_machine_id() for _ in range(50)}
    assert len(ids) == 50
    assert all(identity.is_valid_machine_id(m) and identity.is_valid_machine_id(m + "\n") for m in ids)
    answers = iter(["0" * 32, "0" * 32, "ab" * 16])
    monkeypatch.setattr(identity.secrets, "token_hex", lambda n: next(answers))
    assert identity.new_machine_id() == "ab" * 16


@pytest.mark.parametrize(
    "text", ["0" * 32, "0" * 32 + "\n", "A" * 32, "a" * 31, "a" * 33, "a" * 32 + "\n\n", "a" * 32 + "\r\n",
             " " + "a" * 31, "g" * 32, "", "a" * 32 + " ", "\n" + "a" * 32],
)
def test_invalid_machine_ids(text):
    assert not identity.is_valid_machine_id(text)
