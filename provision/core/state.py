"""What an image's persist filesystem holds now, read through a PersistFS into plain data.

Everything read here comes from an image that may be hostile: sizes are capped, nothing is followed
through a link, and contents are parsed leniently (a bad line is a problem to report, not a crash);
authorized_keys as sshd reads it (core.credentials.authorizedkeys: every line, any bytes, no cap on lines).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from provision.core.credentials.certificates import parse_principals
from provision.core.credentials.identity import is_valid_machine_id, parse_hostname_file
from provision.core.credentials.signers import UpdateSigner, parse_allowed_signers
from provision.core.credentials.passwords import PasswordInfo, describe_password_file
from provision.core.credentials.authorizedkeys import read_authorized_keys
from provision.core.credentials.sshkeys import (
    AuthorizedKey,
    from_key_line,
    public_key_fingerprint,
    read_image_keys,
)
from provision.core.fs import TEMP_PREFIX, ReadableFS, Stat, StatKind
from provision.core.layout import Entry, Layout
from provision.core.record import MAX_RECORD_BYTES, SeedRecord, parse_record
from provision.errors import UnsafeEntryError

# Small caps: every contract file is tiny, and an image may hold a huge file to slow us down.
_FILE_LIMITS = {
    "password-hash": 4096,
    "authorized-keys": 1 << 20,
    "host-key": 64 * 1024,
    "host-key-public": 64 * 1024,
    "host-certificate": 64 * 1024,
    "trusted-user-ca-keys": 1 << 20,
    "authorized-principals": 64 * 1024,
    "machine-id": 1024,
    "netbird-setup-key": 1024,
    "netbird-management-url": 4096,
    "hostname": 4096,
    "update-signers": 256 * 1024,
    "seed-record": MAX_RECORD_BYTES,
}


@dataclass(frozen=True)
class ImageState:
    stats: dict[str, Stat | None]  # lstat of every contract path
    unreadable: dict[str, str] = field(default_factory=dict)  # contract file -> why it could not be read
    password: PasswordInfo | None = None
    authorized_keys: tuple[AuthorizedKey, ...] = ()  # every line holding a key sshd reads, in the file's order
    authorized_keys_raw: bytes | None = None
    authorized_keys_problems: tuple[str, ...] = ()
    host_public_line: str | None = None
    host_private_present: bool = False
    host_certificate_line: str | None = None  # the certificate file's first line, as read (inspect judges it)
    user_cas: tuple[AuthorizedKey, ...] = ()  # the trusted user CA keys
    user_cas_raw: bytes | None = None
    principals: tuple[str, ...] = ()  # who a user CA's certificate may name to log in as zvm
    principals_raw: bytes | None = None
    machine_id: str | None = None  # the valid id, or None when absent or malformed
    machine_id_raw: bytes | None = None
    netbird_setup_key_present: bool = False
    netbird_management_url: str | None = None
    hostname: str | None = None  # the valid seeded hostname, or None when absent or not valid
    hostname_raw: bytes | None = None
    # the release signers the VM's update verifies against; None: no list (updates are not verified)
    update_signers: tuple[UpdateSigner, ...] | None = None
    update_signers_raw: bytes | None = None
    update_signers_problems: tuple[str, ...] = ()
    record: SeedRecord | None = None  # None: no record file (an image never seeded by this tool, or by hand)
    # temporary files (fs.TEMP_PREFIX) that a killed run left next to contract files; the next run removes them
    stale_temps: tuple[str, ...] = ()
    read_at: float = field(default_factory=time.time)  # when it was read: the keys' expiry-time is judged then

    def stat(self, path: str) -> Stat | None:
        return self.stats.get(path)

    @property
    def has_host_key(self) -> bool:
        return self.host_private_present and self.host_public_line is not None

    @property
    def is_blank(self) -> bool:
        """Nothing of the contract's files is there yet: a first seeding."""
        return self.password is None and not self.authorized_keys and not self.has_host_key


def is_safe_to_read(stats: dict[str, Stat | None], entry: Entry) -> bool:
    """A contract file is read only if it and every parent are what the contract says (no links on the way)."""
    stat = stats.get(entry.path)
    if stat is None or stat.kind != StatKind.FILE:
        return False
    return _real_directory(stats, entry.parent)


def _real_directory(stats: dict[str, Stat | None], path: str) -> bool:
    """`path` and every parent below / are real directories (lstat: no link on the way)."""
    while path != "/":
        stat = stats.get(path)
        if stat is None or stat.kind != StatKind.DIR:
            return False
        path = path.rsplit("/", 1)[0] or "/"
    return True


def find_stale_temps(fs: ReadableFS, stats: dict[str, Stat | None], layout: Layout) -> tuple[str, ...]:
    """Temporary files left by a run killed between writing a file and renaming it into place.

    Only the folders the tool writes files into are listed, and only regular files with the tool's own prefix
    count: a directory or a link with that name is not something the tool made.
    """
    found = []
    for folder in sorted({entry.parent for entry in layout.files}):
        if not _real_directory(stats, folder):
            continue
        for name in fs.listdir(folder):
            if name.startswith(TEMP_PREFIX):
                path = f"{folder.rstrip('/')}/{name}"
                stat = fs.lstat(path)
                if stat is not None and stat.kind == StatKind.FILE:
                    found.append(path)
    return tuple(found)


def read_state(fs: ReadableFS, layout: Layout) -> ImageState:
    stats = fs.lstat_many([entry.path for entry in layout.entries])
    contents: dict[str, bytes] = {}
    unreadable: dict[str, str] = {}
    for entry in layout.files:
        if not is_safe_to_read(stats, entry):
            continue
        try:
            contents[entry.role or entry.path] = fs.read_file(entry.path, _FILE_LIMITS.get(entry.role or "", 1 << 20))
        except UnsafeEntryError as exc:
            unreadable[entry.path] = exc.message

    password = None
    if "password-hash" in contents:
        password = describe_password_file(contents["password-hash"])

    keys: tuple[AuthorizedKey, ...] = ()
    problems: tuple[str, ...] = ()
    read_at = time.time()
    keys_raw = contents.get("authorized-keys")
    if keys_raw is not None:
        parsed, found_problems = read_image_keys(keys_raw, read_at)  # as sshd reads it, now
        keys, problems = tuple(parsed), tuple(found_problems)

    host_public = _first_line(contents.get("host-key-public"))
    if host_public is not None:
        try:
            public_key_fingerprint(host_public)
        except Exception:  # a malformed public key is reported as absent; a new one will be made
            host_public = None

    user_cas: tuple[AuthorizedKey, ...] = ()
    if "trusted-user-ca-keys" in contents:  # sshd skips a line it cannot parse; so does this
        # TrustedUserCAKeys lines are bare keys (sshkey_in_file: no options), never certificates
        user_cas = tuple(from_key_line(line) for line in read_authorized_keys(contents["trusted-user-ca-keys"])
                         if line.key is not None and line.problem is None and line.options.text is None
                         and not line.key.certificate)

    machine_id_raw = contents.get("machine-id")
    machine_id = None
    if machine_id_raw is not None:
        text = machine_id_raw.decode("ascii", "replace")
        if is_valid_machine_id(text):
            machine_id = text.strip()

    hostname_raw = contents.get("hostname")
    signers_raw = contents.get("update-signers")
    signers, signer_problems = (None, ())
    if signers_raw is not None:
        signers, signer_problems = parse_allowed_signers(signers_raw.decode("utf-8", "replace"))
    record = None
    if "seed-record" in contents:
        record = parse_record(contents["seed-record"])
    else:
        record_path = layout.role("seed-record").path
        if record_path in unreadable or (stats.get(record_path) is not None and record_path not in contents):
            why = unreadable.get(record_path) or "not a regular file reached through real directories"
            record = SeedRecord(unreadable=why)

    return ImageState(
        stats=stats,
        unreadable=unreadable,
        password=password,
        authorized_keys=keys,
        authorized_keys_raw=keys_raw,
        authorized_keys_problems=problems,
        host_public_line=host_public,
        host_private_present="host-key" in contents and bool(contents["host-key"].strip()),
        host_certificate_line=_first_line(contents.get("host-certificate")),
        user_cas=user_cas,
        user_cas_raw=contents.get("trusted-user-ca-keys"),
        principals=parse_principals(contents["authorized-principals"]) if "authorized-principals" in contents else (),
        principals_raw=contents.get("authorized-principals"),
        machine_id=machine_id,
        machine_id_raw=machine_id_raw,
        netbird_setup_key_present="netbird-setup-key" in contents,
        netbird_management_url=_first_line(contents.get("netbird-management-url")),
        hostname=parse_hostname_file(hostname_raw) if hostname_raw is not None else None,
        hostname_raw=hostname_raw,
        update_signers=signers,
        update_signers_raw=signers_raw,
        update_signers_problems=signer_problems,
        record=record,
        stale_temps=find_stale_temps(fs, stats, layout),
        read_at=read_at,
    )


def _first_line(content: bytes | None) -> str | None:
    if content is None:
        return None
    text = content.decode("utf-8", "replace").strip()
    return text.splitlines()[0] if text else None
