"""Taking keys out of authorized_keys (`--remove-key`, the wizard's unticked keys), and editing the file so that
every other line stays as it was. Pure: no I/O.

A key is named by its blob, whatever the comment or options of the line that holds it: its SHA256
fingerprint (`SHA256:...`, the same without `SHA256:`, or the whole line `ssh-keygen -l` prints), or the
public key line itself (`"$(cat bob.pub)"`, with any comment or options: read as sshd reads a line); or else
by its exact comment. Text that looks like a fingerprint or a key line but is not a whole one is refused, as
is one holding control characters. A comment that several different keys share is refused as ambiguous
rather than taking them all: a comment is free text (`alice@laptop` on two machines), so removing by it must
name exactly one key; the refusal lists their fingerprints to give instead.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from provision.core.credentials.authorizedkeys import read_authorized_keys
from provision.core.credentials.sshkeys import AuthorizedKey, merge_keys
from provision.core.text import shown
from provision.errors import UsageError

_FINGERPRINT = r"SHA256:[A-Za-z0-9+/]{43}"  # 32 bytes of SHA-256 in base64, without padding
_FINGERPRINT_RE = re.compile(_FINGERPRINT, re.ASCII)
_BARE_FINGERPRINT_RE = re.compile(r"[A-Za-z0-9+/]{43}", re.ASCII)  # what ssh-keygen -l prints after SHA256:
# text that means to be a key line: a key type sshd knows, or options, then base64 (a mistyped paste)
_KEYISH_RE = re.compile(r"(?:\S+[ \t]+)?(?:ssh-|ecdsa-|sk-|rsa-)\S*[ \t]+AAAA", re.ASCII)
# what `ssh-keygen -lf FILE` prints for one key: bits, fingerprint, comment (or "no comment"), (TYPE)
_KEYGEN_LINE_RE = re.compile(rf"[0-9]+ ({_FINGERPRINT}) .* \([A-Z0-9-]+\)", re.ASCII)


@dataclass(frozen=True)
class KeySelector:
    """One `--remove-key` (or `--find-key`) argument: a key (its fingerprint or its blob) or an exact comment."""

    text: str  # as given, for messages
    fingerprint: str | None = None
    comment: str | None = None
    blob: bytes | None = None  # a pasted key line: its key, whatever its comment and options

    def matches(self, key: AuthorizedKey) -> bool:
        if self.blob is not None:
            return key.blob == self.blob
        if self.fingerprint is not None:
            return key.fingerprint == self.fingerprint
        return key.comment == self.comment


def parse_selector(text: str, option: str = "--remove-key") -> KeySelector:
    """`SHA256:...` (or without `SHA256:`), a whole `ssh-keygen -l` line, a public key line, or an exact
    comment; UsageError for anything else, naming `option` (--remove-key, or inspect's --find-key)."""
    given = text.strip(" \t\r\n")
    if not given:
        raise UsageError(f"{option} needs a key's SHA256 fingerprint (ssh-keygen -l prints it), "
                         "its public key line or its comment")
    if "\n" in given:
        raise UsageError(f"{option} holds several lines; give one key per {option}")
    if any(not c.isprintable() for c in given):
        raise UsageError(f"{option} holds control characters; give a SHA256 fingerprint, a key line or a comment")
    if _FINGERPRINT_RE.fullmatch(given):
        return KeySelector(given, fingerprint=given)
    if _BARE_FINGERPRINT_RE.fullmatch(given):
        return KeySelector(given, fingerprint="SHA256:" + given)
    line = _KEYGEN_LINE_RE.fullmatch(given)
    if line:
        return KeySelector(given, fingerprint=line.group(1))
    pasted = read_authorized_keys(given.encode("utf-8"))[0].key
    if pasted is not None:
        return KeySelector(given, blob=pasted.blob)
    if _KEYISH_RE.match(given):
        raise UsageError(f"{option} {shown(given, 60)}: not a whole public key line (sshd would not read it); "
                         "give the line as the .pub file holds it, or its SHA256 fingerprint")
    if given.upper().startswith(("SHA256:", "MD5:")):
        raise UsageError(
            f"{option} {shown(given)}: not a SHA256 fingerprint (SHA256: and 43 characters, as "
            "ssh-keygen -l prints it by default)"
        )
    return KeySelector(given, comment=given)


def list_keys(keys: Sequence[AuthorizedKey]) -> str:
    """The image's keys, one `fingerprint comment` each, for an error message."""
    if not keys:
        return "the image holds no SSH key"
    listed = "; ".join(f"{key.fingerprint} {shown(key.comment) or '(no comment)'}" for key in _distinct(keys))
    return f"the image holds: {listed}"


def select_keys_to_remove(
    existing: Sequence[AuthorizedKey], selectors: Sequence[KeySelector], *, adding: Sequence[AuthorizedKey] = ()
) -> tuple[AuthorizedKey, ...]:
    """The image's keys that `selectors` name, once each, in the image's order.

    Refused (UsageError): a selector that names no key of the image (the message lists what is there), a
    comment shared by several different keys, and a key that `adding` gives again (remove it or add it)."""
    chosen: set[bytes] = set()
    for selector in selectors:
        matches = _distinct([key for key in existing if selector.matches(key)])
        if not matches:
            raise UsageError(f"--remove-key {shown(selector.text)}: no such key in the image; {list_keys(existing)}")
        if len(matches) > 1:
            fingerprints = ", ".join(key.fingerprint for key in matches)
            raise UsageError(
                f"--remove-key {shown(selector.text)}: {len(matches)} different keys have that comment "
                f"({fingerprints}); name the ones to remove by fingerprint"
            )
        chosen.add(matches[0].blob)
    added_again = [key for key in _distinct(adding) if key.blob in chosen]
    if added_again:
        raise UsageError(
            f"{added_again[0].fingerprint} is both removed (--remove-key) and added (--ssh-key); keep one of the two"
        )
    return tuple(key for key in _distinct(existing) if key.blob in chosen)


def edit_authorized_keys(
    raw: bytes | None, existing: Sequence[AuthorizedKey], removed: Collection[bytes], added: Sequence[AuthorizedKey]
) -> bytes:
    """The file with every line that holds a removed key (by key blob) taken out, and the added keys the image
    does not hold yet appended. Every other line (comments, blank lines, lines sshd would skip) stays byte for
    byte, in its order."""
    kept_lines = []
    for line in _lines(raw or b""):
        if removed and _line_key_blob(line) in removed:
            continue
        kept_lines.append(line)
    text = b"".join(kept_lines)
    present = {key.blob for key in existing if key.blob not in removed}
    new_lines = []
    for key in added:
        if key.blob not in present:
            present.add(key.blob)
            new_lines.append(key.line.encode("utf-8") + b"\n")
    if new_lines and text and not text.endswith(b"\n"):
        text += b"\n"
    return text + b"".join(new_lines)


def _lines(raw: bytes) -> list[bytes]:
    """The file's lines with their "\\n" (sshd splits at "\\n" only; a "\\r" stays part of its line)."""
    lines = [line + b"\n" for line in raw.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    return [line for line in lines if line]


def _line_key_blob(line: bytes) -> bytes | None:
    """The key sshd reads on the line (core.credentials.authorizedkeys), or None."""
    key = read_authorized_keys(line.rstrip(b"\n"))[0].key if line.strip(b"\n") else None
    return key.blob if key is not None else None


def _distinct(keys: Sequence[AuthorizedKey]) -> list[AuthorizedKey]:
    """One per key blob, the first occurrence (a key may sit on two lines with other comments or options)."""
    return merge_keys(keys, (), replace=False)
