"""host.operator: who runs the tool on this machine, one `user@host` for the seeding record's operator and a new
key pair's comment, with one fallback for a user with no name (a container's uid): "unknown"."""

from __future__ import annotations

import getpass
import socket

import pytest

from provision.errors import UsageError
from provision.host.operator import key_comment, operator


def test_the_default_operator_and_a_new_keys_comment_are_this_machines_user_at_host():
    here = f"{getpass.getuser()}@{socket.gethostname()}"
    assert operator(None) == here
    assert key_comment() == f"{here} (zvm-provision)"


def test_a_user_with_no_name_is_unknown_in_both(monkeypatch):
    def no_name() -> str:
        raise OSError("No username set in the environment")  # what getpass says for a uid without a name

    monkeypatch.setattr(getpass, "getuser", no_name)
    assert operator(None) == f"unknown@{socket.gethostname()}"
    assert key_comment() == f"unknown@{socket.gethostname()} (zvm-provision)"


def test_a_given_operator_is_checked_and_kept():
    assert operator("  it@desk  ") == "it@desk"
    with pytest.raises(UsageError, match="--operator is empty"):
        operator(" ")
