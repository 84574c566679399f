"""Never lock everyone out: the one rule on whether an image lets anybody in. Pure: no I/O.

zvm has two ways in: SSH with a key from authorized_keys (sshd takes keys only), and the console with the
password of the user zvm. An image is reachable when it holds at least one key or a usable password; one with
neither is a locked door nobody can open. Seeding refuses a plan that would end there, and `inspect --check`
calls an image that is there "no way in". Password-only (console) and key-only (locked password) are both
fine: only neither is refused.
"""

from __future__ import annotations

from typing import Literal

from provision.errors import UsageError

# What /passwords/zvm holds, as inspect reports it: only "set" lets anybody log in.
PasswordOutcome = Literal["set", "locked", "invalid", "missing", "unreadable"]

_PASSWORD_WORDS = {
    "locked": "the password is locked",
    "invalid": "the password file holds no valid hash",
    "missing": "there is no password",
    "unreadable": "the password file cannot be read",
}


def way_in(key_count: int, password: PasswordOutcome) -> bool:
    """Whether anybody can log in: a key over SSH, or the password on the console."""
    return key_count > 0 or password == "set"


def no_way_in_reason(key_count: int, password: PasswordOutcome) -> str | None:
    """None when the image lets somebody in; else why not, in words (no advice: the caller knows its flags)."""
    if way_in(key_count, password):
        return None
    return f"no SSH key and {_PASSWORD_WORDS[password]}: nobody could log in (no way in)"


class LockedOut(UsageError):
    """A plan refused: it would leave nobody a way in. The command, which knows its flags, says how to give one
    (commands.flagwords.lockout_message); `removing`: keys named for removal led there."""

    def __init__(self, reason: str, *, removing: bool) -> None:
        super().__init__(f"refused: after this the image would hold {reason}")
        self.reason = reason
        self.removing = removing


def lockout(key_count: int, password: PasswordOutcome, *, removing: bool) -> LockedOut | None:
    """The refusal of a plan that leaves nobody a way in; None when the plan leaves one."""
    reason = no_way_in_reason(key_count, password)
    return None if reason is None else LockedOut(reason, removing=removing)
