"""Keys across a fleet of images: which keys `inspect --find-key` finds in an image, and what `keys` asks of
one image (take a key out where it is, add a key everywhere, or put key Y where key X was). Pure: no I/O.

The selectors are `--remove-key`'s (core.keyremoval): a key (fingerprint, key line) or an exact comment. Over
a fleet, one image that does not hold the key is not an error (it is left unchanged), where `seed
--remove-key` on one image refuses a key it does not find; but a selector that no image holds is a failure
(`NoSuchKey`, exit 1): a revocation that revoked nothing must never look like a success. Everything else is seed's: the request goes through core.plan, so
the rule that nobody is locked out, the ambiguous-comment refusal and the seeding record all apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from provision.core.credentials.signers import render_allowed_signers, signers_from_keys
from provision.core.credentials.sshkeys import AuthorizedKey, merge_keys
from provision.core.keyremoval import KeySelector
from provision.core.request import PasswordChoice, SeedRequest
from provision.core.text import shown
from provision.errors import ExitCode, ProvisionError, UsageError


class NoSuchKey(ProvisionError):
    """Keys named (--remove-key, --find-key) that no image read holds."""

    exit_code = ExitCode.FAILURE

    def __init__(self, option: str, selectors: Sequence[KeySelector]) -> None:
        named = ", ".join(shown(s.text, 80) for s in selectors)
        super().__init__(f"{option} {named}: no image holds {'that key' if len(selectors) == 1 else 'those keys'}",
                         hint="inspect IMAGE... lists each image's keys with their fingerprints")
        self.selectors = tuple(selectors)


def unmatched(selectors: Sequence[KeySelector], keysets: Iterable[Sequence[AuthorizedKey]]) -> tuple[KeySelector, ...]:
    """The selectors that name no key of any of the key sets (each image's keys, as read)."""
    left = list(selectors)
    for keys in keysets:
        left = [s for s in left if not any(s.matches(key) for key in keys)]
        if not left:
            break
    return tuple(left)


def matching_keys(keys: Sequence[AuthorizedKey], selectors: Sequence[KeySelector]) -> tuple[AuthorizedKey, ...]:
    """The image's keys that any selector names, once each, in the image's order."""
    return tuple(merge_keys([key for key in keys if any(s.matches(key) for s in selectors)], (), replace=False))


@dataclass(frozen=True)
class KeyChange:
    """What `keys` was asked: `remove` alone revokes, `add` alone adds to every image, both rotate (the added
    keys go only to the images that held a removed one)."""

    remove: tuple[KeySelector, ...] = ()
    add: tuple[AuthorizedKey, ...] = ()
    signers: tuple[AuthorizedKey, ...] | None = None  # --update-signer: every image's release signers become these

    def __post_init__(self) -> None:
        if not self.remove and not self.add and self.signers is None:
            raise UsageError("nothing to change: give --remove-key FINGERPRINT|COMMENT, --add-key KEY "
                             "and/or --update-signer KEY.pub")
        both = [key for key in self.add if any(s.matches(key) for s in self.remove)]
        if both:
            raise UsageError(f"{both[0].fingerprint} is both removed (--remove-key) and added (--add-key); "
                             "keep one of the two")

    @property
    def rotate(self) -> bool:
        return bool(self.remove and self.add)


def request_for(change: KeyChange, existing: Sequence[AuthorizedKey], operator: str | None,
                signers_held: bytes | None = None) -> SeedRequest | None:
    """The seed request for one image, or None when the image is left as it is (it holds none of the keys
    to remove, and already holds the keys to add, or is not one a rotation touches; and already holds the
    release signers asked for, the file's bytes SIGNERS_HELD)."""
    selected = tuple(s for s in change.remove if any(s.matches(key) for key in existing))
    adding = change.add if (not change.remove or selected) else ()
    held = {key.blob for key in existing}
    signers_change = change.signers is not None and (
        render_allowed_signers(signers_from_keys(change.signers)) != signers_held)
    if not selected and all(key.blob in held for key in adding) and not signers_change:
        return None
    return SeedRequest(
        update_signers=change.signers if signers_change else None,
        password=PasswordChoice.keep(),
        keys=adding,
        remove_keys=selected,
        host_keys=False,  # a key change touches keys only: no host key is made where the VM makes its own
        operator=operator,
        record_change=True,
    )


def unchanged_reason(change: KeyChange) -> str:
    """Why `request_for` left an image alone, in words for the report."""
    if change.signers is not None and not (change.remove or change.add):
        return "already has these release signers"
    if change.rotate:
        return "holds none of the keys to replace"
    if change.remove:
        return "does not hold the key(s)"
    return "already holds the key(s)"
