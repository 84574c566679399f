"""How the seed command's flags are spelled in its messages: core decides what is missing or refused, in its
own terms (`core.request.Missing`, `core.access.LockedOut`), and knows no flag; the words that name the flags
are here, with the commands that have them."""

from __future__ import annotations

from collections.abc import Sequence

from provision.core.access import LockedOut, NoPasswordYet
from provision.errors import UsageError
from provision.core.request import Missing

PASSWORD_FLAGS = "--password-stdin, --password-file F, --password-hash-file F or --no-password"
KEY_FLAGS = "--ssh-key F"
SET_PASSWORD_FLAGS = "--password-stdin, --password-file F or --password-hash-file F"

_MISSING_WORDS = {
    Missing.PASSWORD: f"a password source ({PASSWORD_FLAGS})",
    Missing.KEY: f"an SSH public key ({KEY_FLAGS})",
}


def missing_words(missing: Sequence[Missing]) -> list[str]:
    """What a run without a terminal lacks, as the flags to give."""
    return [_MISSING_WORDS[item] for item in missing]


def missing_flags_message(missing: Sequence[Missing], *, image_read: bool) -> str:
    head = "the image does not hold it yet" if len(missing) == 1 else "the image holds neither"
    if not image_read:
        head = "nothing to seed"
    return f"no terminal to ask on, and {head}: give {' and '.join(missing_words(missing))}"


def lockout_message(refusal: LockedOut) -> str:
    """The seed command's refusal of a plan that leaves nobody a way in, saying how to give one."""
    keep = "remove fewer keys (--remove-key), " if refusal.removing else ""
    return (f"{refusal.message}. Give a way in: {keep}add a key ({KEY_FLAGS}), "
            f"or set a password ({SET_PASSWORD_FLAGS})")


def keys_refusal(refusal: UsageError) -> str:
    """The `keys` command's words for an image it refuses to change: its own flags, never seed's (`keys` takes
    no --ssh-key and sets no password)."""
    if isinstance(refusal, LockedOut):
        keep = "remove fewer keys, " if refusal.removing else ""
        return (f"{refusal.message}. Give a way in: {keep}add a key with --add-key (a rotation), or set a "
                "password with zvm-provision seed")
    if isinstance(refusal, NoPasswordYet):
        return ("the image has no password file: it was never seeded; seed it first (zvm-provision seed), "
                "then change its keys")
    return refusal.message
