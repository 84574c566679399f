"""The machine's identity: /etc/machine-id, unique per copy of an image, and /etc/hostname, the VM's name."""

from __future__ import annotations

import re
import secrets

from provision.errors import UsageError

_MACHINE_ID_RE = re.compile(r"[0-9a-f]{32}\n?", re.ASCII)

# The name the image boots as when persist holds no valid hostname (networking.hostName in the flake).
BUILT_IN_HOSTNAME = "zvm"
MAX_HOSTNAME_CHARS = 63
# The very check the VM makes (nix/modules/seeded-hostname.sh): an RFC 1123 label in lower case.
_HOSTNAME_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
HOSTNAME_RULE = (
    "a hostname is 1 to 63 characters: lower-case letters a-z, digits and hyphens, "
    "not starting or ending with a hyphen (an RFC 1123 label, e.g. zvm-alice)"
)
_NOT_IN_LABEL_RE = re.compile(r"[^a-z0-9-]", re.ASCII)
# systemd's is_localhost (hostname_is_useful is "not empty and not localhost"), with the localhost6 names
# Red Hat's /etc/hosts gives ::1: a VM so named has no name of its own, DHCP does not send it, and Netbird would
# list it as "localhost".
_LOCALHOST_NAMES = ("localhost", "localhost.localdomain", "localhost6", "localhost6.localdomain6")
_LOCALHOST_SUFFIXES = (".localhost", ".localhost.localdomain")
LOCALHOST_RULE = (
    "localhost (any case, also localhost.localdomain, localhost6, localhost6.localdomain6 and NAME.localhost) "
    "is no name for a VM: systemd treats it as none (hostname_is_useful), DHCP does not send it, and Netbird "
    "would list the VM as localhost; give it a name of its own, e.g. zvm-alice"
)


def new_machine_id() -> str:
    """32 lowercase hex, unique per image (systemd forbids all zeros)."""
    while True:
        mid = secrets.token_hex(16)
        if mid.strip("0"):
            return mid


def is_valid_machine_id(text: str) -> bool:
    return bool(_MACHINE_ID_RE.fullmatch(text)) and bool(text.rstrip("\n").strip("0"))


def is_valid_hostname(text: str) -> bool:
    return bool(_HOSTNAME_RE.fullmatch(text))


def is_localhost(text: str) -> bool:
    """systemd's is_localhost, case-blind, a trailing dot allowed, plus the localhost6 names."""
    name = text.lower().removesuffix(".")
    return name in _LOCALHOST_NAMES or name.endswith(_LOCALHOST_SUFFIXES)


def hostname_problem(text: str) -> str | None:
    """The rule `text` breaks as a hostname (localhost's, or the label's), None when it is a valid name."""
    if is_localhost(text):
        return LOCALHOST_RULE
    return None if is_valid_hostname(text) else HOSTNAME_RULE


def validate_hostname(text: str, what: str = "the hostname") -> str:
    """`text` if it is a valid hostname and not localhost; otherwise a UsageError that states the rule (the
    value is shown escaped: a hostname is no secret, and seeing it helps)."""
    if (problem := hostname_problem(text)) is None:
        return text
    shown = text if len(text) <= 80 else text[:80] + "..."
    shown = shown.encode("unicode_escape").decode("ascii")
    raise UsageError(f"{what} {shown!r} is refused: {problem}")


def hostname_from_name(name: str, prefix: str = "zvm-") -> str | None:
    """A valid hostname made from a manifest row's name: `prefix` + name, lower-cased, every other character
    than a-z, 0-9 and '-' turned into '-', cut to 63 characters, hyphens trimmed from both ends. None when
    nothing valid is left."""
    text = _NOT_IN_LABEL_RE.sub("-", (prefix + name).lower())[:MAX_HOSTNAME_CHARS].strip("-")
    return text if is_valid_hostname(text) else None


def hostname_file_content(name: str) -> bytes:
    """What /etc/hostname on persist holds: the name and a newline (the VM accepts exactly that)."""
    return (validate_hostname(name) + "\n").encode("ascii")


def parse_hostname_file(data: bytes) -> str | None:
    """The hostname in a persist /etc/hostname as the VM reads it: exactly one valid label and a newline,
    else None (the VM then keeps its built-in name)."""
    if len(data) > MAX_HOSTNAME_CHARS + 1 or not data.endswith(b"\n"):
        return None
    try:
        name = data[:-1].decode("ascii")
    except UnicodeDecodeError:
        return None
    return name if is_valid_hostname(name) else None


def booted_name(hostname: str | None) -> str:
    """The name the VM boots as: the seeded hostname, else the built-in one (the known_hosts line names it)."""
    return hostname or BUILT_IN_HOSTNAME
