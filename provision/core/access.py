"""Never lock everyone out: the one rule on whether an image lets anybody in. Pure: no I/O.

zvm has two ways in: SSH with a key from authorized_keys (sshd takes keys only), and the console with the
password of the user zvm. What counts is what the judges accept, not what the files hold:

- a key counts where sshd lets it in now (core.credentials.authorizedkeys, OpenSSH 9.2's rules): not an
  expired one (expiry-time past), not a certificate line, not a line sshd cannot read; a cert-authority line
  counts for the certificates it signs; from=/command=/restrict keys count (restricted, but a way in);
- the password counts where NixOS would accept the file as written (credentials.passwords: its
  update-users-groups.pl strips one "\\n" and nothing else, so a hash line ending in "\\r" never matches).

An image is reachable when it has at least one of them; one with neither is a locked door nobody can open.
Seeding and `keys` refuse a plan that would end there, and `inspect --check` calls an image that is there
"no way in". Password-only (console) and key-only (locked password) are both fine: only neither is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from provision.errors import UsageError

if TYPE_CHECKING:
    from provision.core.credentials.sshkeys import AuthorizedKey

# What /passwords/zvm holds, as inspect reports it: only "set" lets anybody log in.
PasswordOutcome = Literal["set", "locked", "invalid", "missing", "unreadable"]

_PASSWORD_WORDS = {
    "locked": "the password is locked",
    "invalid": "the password file holds no hash NixOS would accept",
    "missing": "there is no password",
    "unreadable": "the password file cannot be read",
}


def count_ways_in(keys: Iterable[AuthorizedKey], now: float) -> int:
    """How many different keys sshd lets somebody in with now (any of a key's lines will do: sshd tries
    every line until one lets the key in)."""
    return len({key.blob for key in keys if key.way_in(now)})


def way_in(ways_in: int, password: PasswordOutcome) -> bool:
    """Whether anybody can log in: a key sshd accepts, over SSH, or the password on the console."""
    return ways_in > 0 or password == "set"


def no_way_in_reason(ways_in: int, password: PasswordOutcome, *, held: int = 0) -> str | None:
    """None when the image lets somebody in; else why not, in words (no advice: the caller knows its flags).
    `held`: the keys the file holds, sshd letting none of them in."""
    if way_in(ways_in, password):
        return None
    keys = "no SSH key" if not held else f"no SSH key sshd lets in ({held} in the file: expired, or not read)"
    return f"{keys} and {_PASSWORD_WORDS[password]}: nobody could log in (no way in)"


class LockedOut(UsageError):
    """A plan refused: it would leave nobody a way in. The command, which knows its flags, says how to give one
    (commands.flagwords.lockout_message); `removing`: keys named for removal led there."""

    def __init__(self, reason: str, *, removing: bool) -> None:
        super().__init__(f"refused: after this the image would hold {reason}")
        self.reason = reason
        self.removing = removing


class NoPasswordYet(UsageError):
    """A plan that keeps the password of an image that has no password file: seed says which flags give one,
    `keys` (which sets no password) says so in its own words (commands.flagwords)."""

    def __init__(self) -> None:
        super().__init__("the image has no password yet: give --password-stdin, --password-file, "
                         "--password-hash-file or --no-password")


def lockout(ways_in: int, password: PasswordOutcome, *, removing: bool, held: int = 0) -> LockedOut | None:
    """The refusal of a plan that leaves nobody a way in; None when the plan leaves one."""
    reason = no_way_in_reason(ways_in, password, held=held)
    return None if reason is None else LockedOut(reason, removing=removing)
