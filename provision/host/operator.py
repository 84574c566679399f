"""Who runs the tool on this machine: `user@host`, for the seeding record (--operator's default)."""

from __future__ import annotations

from provision.core.record import operator_from, validate_operator


def operator(given: str | None) -> str:
    """Who seeds, for the seeding record: --operator TEXT (checked), else `user@host` of this machine."""
    if given is not None:
        return validate_operator(given)
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # no name for this uid (a container): the record says so
        user = "unknown"
    return operator_from(user, socket.gethostname())
