"""Who runs the tool on this machine: `user@host`, for the seeding record (--operator's default) and a new key
pair's comment. One fallback for both: a user with no name (a container's uid) is "unknown", as the record
says it; not "zvm", the VM's own user, which a key's comment would then seem to name."""

from __future__ import annotations

from provision.core.record import operator_from, validate_operator


def user_and_host() -> tuple[str, str]:
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # no name for this uid (a container): the record says so
        user = "unknown"
    return user or "unknown", socket.gethostname() or "unknown"


def operator(given: str | None) -> str:
    """Who seeds, for the seeding record: --operator TEXT (checked), else `user@host` of this machine."""
    if given is not None:
        return validate_operator(given)
    return operator_from(*user_and_host())


def key_comment() -> str:
    """A new key pair's comment: who made it, where, with what."""
    user, host = user_and_host()
    return f"{user}@{host} (zvm-provision)"
