"""Turn a request and the image's current state into an ordered list of operations. Pure: no I/O.

Each contract path gets exactly one operation, parents before children:
  create   the path is absent: make it
  replace  a file's content changes (or an entry with no data of its own, a symlink or fifo, is swapped
           for a real one)
  fix      the content stays, owner or mode are brought back to the contract
  keep     nothing to do
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from provision.core.access import NoPasswordYet, PasswordOutcome, count_ways_in, lockout
from provision.core.credentials.certificates import (
    DEFAULT_PRINCIPALS,
    cert_authority_line,
    host_principals,
    render_principals,
    render_user_ca_keys,
    sign_host_certificate,
    user_ca_way_in,
)
from provision.core.credentials.hostkeys import HostKey
from provision.core.credentials.identity import booted_name, hostname_file_content
from provision.core.credentials.signers import render_allowed_signers, signers_from_keys
from provision.core.credentials.keysources import FetchedKeys
from provision.core.credentials.passwords import LOCKED_PASSWORD_LINE
from provision.core.credentials.sshkeys import (
    AuthorizedKey,
    merge_keys,
    public_key_fingerprint,
    render_authorized_keys,
)
from provision.core.fs import Stat, StatKind
from provision.core.keyremoval import KeySelector, edit_authorized_keys, select_keys_to_remove
from provision.core.layout import Entry, Layout
from provision.core.record import PlannedRecord, RecordEntry, SeedRecord, append_entry, utc_time
from provision.core.request import PasswordKind, SeedRequest
from provision.core.state import ImageState
from provision.core.text import plural
from provision.errors import UnsafeEntryError, UsageError
from provision.secret import Secret

# Entries that hold no data of their own can be swapped for a real one without losing anything.
_REPLACEABLE_KINDS = {StatKind.SYMLINK, StatKind.FIFO, StatKind.SOCKET, StatKind.CHAR, StatKind.BLOCK}


class Action(StrEnum):
    CREATE = "create"
    REPLACE = "replace"
    FIX = "fix"
    KEEP = "keep"


@dataclass(frozen=True)
class Operation:
    action: Action
    entry: Entry
    content: bytes | Secret | None = None  # new content for create/replace of a file
    summary: str = ""  # what the content is, safe to show: "2 keys", "set", a fingerprint
    remove_first: bool = False  # an entry of the wrong kind (a symlink...) is removed before

    @property
    def changes(self) -> bool:
        return self.action != Action.KEEP

    def content_bytes(self) -> bytes:
        if isinstance(self.content, Secret):
            return self.content.reveal().encode("utf-8")
        return self.content or b""


@dataclass(frozen=True)
class FreshMaterial:
    """What the plan needs from outside the request, made by the caller so planning stays pure: random
    material, the clock and the tool's version (for the seeding record)."""

    host_key: HostKey
    machine_id: str
    now: datetime
    tool_version: str
    cert_serial: int = 1  # a host certificate's serial (random, so unique across a fleet)


@dataclass(frozen=True)
class Plan:
    operations: tuple[Operation, ...]
    authorized_keys: tuple[AuthorizedKey, ...]  # what authorized_keys holds after the plan
    host_public_line: str | None  # the host key after the plan
    machine_id: str | None
    stale_temps: tuple[str, ...] = ()  # temporary files of an interrupted run, removed first
    fetched: tuple[FetchedKeys, ...] = ()  # keys fetched from gh:/gl:/https sources, shown with their source
    removed_keys: tuple[AuthorizedKey, ...] = ()  # the image's keys this plan takes out (--remove-key)
    hostname: str | None = None  # the seeded hostname after the plan (None: none, the VM keeps zvm)
    record: PlannedRecord | None = None  # the record entry this plan appends (None: the plan changes nothing)
    netbird_setup_key: bool = False  # a Netbird setup key waits for first boot after the plan (never the key)
    netbird_management_url: str | None = None  # the management server after the plan (None: Netbird's own)
    host_certificate: str | None = None  # the host certificate line this plan writes (None: none signed)
    cert_authority: str | None = None  # its `@cert-authority` known_hosts line, for the hand-over

    def key_source(self, key: AuthorizedKey) -> str | None:
        """The source a key was fetched from, as the person wrote it (gh:alice), or None (a file, the image)."""
        for fetched in self.fetched:
            if any(k.blob == key.blob for k in fetched.keys):
                return fetched.source.shown  # never a URL's query: it may hold a token
        return None

    @property
    def changes(self) -> bool:
        return bool(self.stale_temps) or any(op.changes for op in self.operations)

    def operation(self, path: str) -> Operation:
        for op in self.operations:
            if op.entry.path == path:
                return op
        raise KeyError(path)


def build_plan(request: SeedRequest, state: ImageState, layout: Layout, fresh: FreshMaterial) -> Plan:
    contents: dict[str, tuple[bytes | Secret | None, str]] = {}  # role -> (new content or None to keep, summary)

    # Password
    password = request.password
    if password.kind == PasswordKind.HASH:
        assert password.hash is not None
        contents["password-hash"] = (Secret(password.hash.reveal() + "\n"), "set")
    elif password.kind == PasswordKind.LOCKED:
        contents["password-hash"] = ((LOCKED_PASSWORD_LINE + "\n").encode(), "locked")
    elif state.password is None:
        raise NoPasswordYet()

    # Authorized keys: existing ones stay unless --replace-keys or --remove-key; de-duplicated by key blob.
    keys, removed = keys_after(state.authorized_keys, request.keys, request.remove_keys,
                               replace=request.replace_keys)
    gone = {key.blob for key in removed}
    # Never lock everyone out: no key left that sshd lets in, no trusted user CA with principals and no usable
    # password is refused, whatever led there (every line of a key, not only its first: sshd tries them all).
    left = [*(() if request.replace_keys else (k for k in state.authorized_keys if k.blob not in gone)), *request.keys]
    user_cas = state.user_cas if request.user_cas is None else request.user_cas
    principals = _principals_after(request, state)
    ways = count_ways_in(left, fresh.now.timestamp()) + int(user_ca_way_in(user_cas, principals))
    refusal = lockout(ways, _password_after(request, state), removing=bool(removed), held=len(keys))
    if refusal is not None:
        raise refusal
    if request.replace_keys:
        rendered = render_authorized_keys(keys)
    else:  # every other line of the file (comments too) stays as it was
        rendered = edit_authorized_keys(state.authorized_keys_raw, state.authorized_keys, gone, request.keys)
    if rendered != state.authorized_keys_raw:
        went = f", {plural(len(removed), 'key')} removed" if removed else ""
        contents["authorized-keys"] = (rendered, plural(len(keys), "key") + went)

    # Host key: generated when absent (unless --no-host-keys), replaced with --new-host-keys.
    host_public = state.host_public_line
    if request.new_host_keys or (request.host_keys and not state.has_host_key):
        host_public = fresh.host_key.public_line
        fingerprint = fresh.host_key.fingerprint
        contents["host-key"] = (Secret(fresh.host_key.private_openssh.reveal()), f"new ed25519 {fingerprint}")
        contents["host-key-public"] = ((host_public + "\n").encode(), fingerprint)

    # machine-id: unique per copy.
    machine_id = state.machine_id
    if request.new_machine_id or machine_id is None:
        machine_id = fresh.machine_id
        contents["machine-id"] = ((machine_id + "\n").encode(), machine_id)

    if request.netbird_setup_key is not None:
        contents["netbird-setup-key"] = (Secret(request.netbird_setup_key.reveal() + "\n"), "set")
    if request.netbird_management_url is not None:
        url = request.netbird_management_url
        if url != state.netbird_management_url:
            contents["netbird-management-url"] = ((url + "\n").encode(), url)

    # Hostname: written only when asked for; without it the image keeps what it has (absent: the VM is zvm).
    hostname = state.hostname
    if request.hostname is not None:
        hostname = request.hostname
        wanted = hostname_file_content(hostname)
        if wanted != state.hostname_raw:
            contents["hostname"] = (wanted, hostname)

    # Release signers: the list given replaces the image's; without one the image keeps what it has.
    if request.update_signers is not None:
        signers = signers_from_keys(request.update_signers)
        wanted = render_allowed_signers(signers)
        if wanted != state.update_signers_raw:
            contents["update-signers"] = (wanted, plural(len(signers), "release signer"))
    certificate, authority = _certificates(request, state, contents, host_public, hostname, machine_id, fresh)

    # The seeding record: appended when anything else changes, so a run with nothing to do writes nothing.
    record_entry = layout.role("seed-record")
    operations = _plan_entries(layout, state, contents, skip={record_entry.path})
    record_dir = record_entry.parent
    record_dir_absent = state.stat(record_dir) is None
    changes = bool(state.stale_temps) or _needs_rewrite(state.stat(record_entry.path), record_entry) or any(
        op.changes for op in operations if not (op.entry.path == record_dir and record_dir_absent)
    )
    planned_record = None
    if changes:
        entry = RecordEntry(
            version=fresh.tool_version,
            time=utc_time(fresh.now),
            operator=request.operator,
            authorized_keys=tuple(key.fingerprint for key in keys),
            host_key=public_key_fingerprint(host_public) if host_public else None,
            machine_id=machine_id,
            password={PasswordKind.HASH: "set", PasswordKind.LOCKED: "locked"}.get(password.kind, "kept"),
            netbird_setup_key=request.netbird_setup_key is not None,
            hostname=hostname,
            batch_row=request.batch_row,
            change=_key_change(removed, request.keys, state.authorized_keys) if request.record_change else None,
        )
        planned_record = append_entry(state.record or SeedRecord(), entry)
        contents["seed-record"] = (planned_record.content, planned_record.summary)
        operations = _plan_entries(layout, state, contents)
    else:
        operations = _plan_entries(layout, state, contents, leave_absent={record_dir} if record_dir_absent else set())
    return Plan(tuple(operations), keys, host_public, machine_id, state.stale_temps, request.fetched,
                removed_keys=removed, hostname=hostname, record=planned_record,
                netbird_setup_key=request.netbird_setup_key is not None or state.netbird_setup_key_present,
                netbird_management_url=request.netbird_management_url or state.netbird_management_url,
                host_certificate=certificate, cert_authority=authority)


def _principals_after(request: SeedRequest, state: ImageState) -> tuple[str, ...]:
    if request.user_principals is not None:
        return request.user_principals
    if request.user_cas is not None and not state.principals:
        return DEFAULT_PRINCIPALS  # a user CA with nobody to let in would be no way in at all
    return state.principals


def _certificates(request: SeedRequest, state: ImageState, contents: dict[str, tuple[bytes | Secret | None, str]],
                  host_public: str | None, hostname: str | None, machine_id: str | None,
                  fresh: FreshMaterial) -> tuple[str | None, str | None]:
    """The host certificate (--host-ca) and the trusted user CAs with their principals, into `contents`;
    returns the certificate line and its `@cert-authority` line (None, None when none is signed)."""
    if request.user_cas is not None:
        rendered = render_user_ca_keys(request.user_cas)
        if rendered != state.user_cas_raw:
            contents["trusted-user-ca-keys"] = (rendered, plural(len(request.user_cas), "user CA"))
    if request.user_cas is not None or request.user_principals is not None:
        principals = _principals_after(request, state)
        rendered = render_principals(principals)
        if rendered != state.principals_raw:
            contents["authorized-principals"] = (rendered, ", ".join(principals))
    cert_request = request.host_cert
    if cert_request is None:
        return None, None
    if host_public is None:
        raise UsageError("the image holds no host key to certify", hint="drop --no-host-keys, so one is made")
    name = booted_name(hostname)
    line = sign_host_certificate(cert_request, host_public, hostname=name, key_id=f"{name} {machine_id or ''}".strip(),
                                 serial=fresh.cert_serial, now=fresh.now)
    contents["host-certificate"] = ((line + "\n").encode("ascii"),
                                    f"serial {fresh.cert_serial}, {' '.join(host_principals(name, cert_request.domain))}")
    return line, cert_authority_line(cert_request.ca.public_line, name, cert_request.domain)


def refuse_replace_with_remove(replace: bool, remove: Sequence[object]) -> None:
    """--replace-keys with --remove-key says one thing twice, or something else: refused, whoever asks."""
    if replace and remove:
        raise UsageError("--replace-keys already takes out every key the image holds; drop --remove-key")


def keys_after(held: Sequence[AuthorizedKey], adding: Sequence[AuthorizedKey], remove: Sequence[KeySelector], *,
               replace: bool) -> tuple[tuple[AuthorizedKey, ...], tuple[AuthorizedKey, ...]]:
    """The keys an image holding `held` lets in once `adding` is added and `remove` taken out (or, with
    `replace`, `adding` alone), de-duplicated by key blob; and the held keys taken out."""
    refuse_replace_with_remove(replace, remove)
    removed = select_keys_to_remove(held, remove, adding=adding)
    gone = {key.blob for key in removed}
    kept = [key for key in held if key.blob not in gone]
    return tuple(merge_keys(kept, adding, replace=replace)), removed


def _key_change(removed: Sequence[AuthorizedKey], adding: Sequence[AuthorizedKey],
                existing: Sequence[AuthorizedKey]) -> str:
    """The seeding record's words for a key change: the fingerprints taken out and put in."""
    held = {key.blob for key in existing}
    added = [key.fingerprint for key in adding if key.blob not in held]
    parts = [f"removed {', '.join(key.fingerprint for key in removed)}" if removed else "",
             f"added {', '.join(dict.fromkeys(added))}" if added else ""]
    return "keys: " + ("; ".join(p for p in parts if p) or "none")


def _plan_entries(
    layout: Layout, state: ImageState, contents: dict[str, tuple[bytes | Secret | None, str]], *,
    skip: AbstractSet[str] = frozenset(), leave_absent: AbstractSet[str] = frozenset(),
) -> list[Operation]:
    """One operation per contract path (but `skip`), parents first; a directory of `leave_absent` that is
    absent stays so."""
    operations = []
    made_afresh: set[str] = set()  # directories this plan creates: whatever lstat saw below them was elsewhere
    for entry in layout.entries:
        if entry.path in skip:
            continue
        # Below a directory that is absent or a link, lstat looked through that link: treat it as empty.
        stat = None if entry.parent in made_afresh and entry.path != "/" else state.stat(entry.path)
        if stat is None and entry.path in leave_absent:
            operations.append(Operation(Action.KEEP, entry, summary="absent"))
            continue
        op = _plan_entry(entry, stat, contents.get(entry.role or ""))
        if entry.kind == StatKind.DIR and op.action == Action.CREATE:
            made_afresh.add(entry.path)
        operations.append(op)
    return operations


def _needs_rewrite(stat: Stat | None, entry: Entry) -> bool:
    """A file that is there but not as the contract wants it (so that planning must write it again)."""
    if stat is None:
        return False
    return stat.kind != entry.kind or stat.nlink > 1 or (stat.uid, stat.gid, stat.mode) != (entry.uid, entry.gid, entry.mode)


def _password_after(request: SeedRequest, state: ImageState) -> PasswordOutcome:
    """What /passwords/zvm will hold once the plan is applied."""
    if request.password.kind == PasswordKind.HASH:
        return "set"
    if request.password.kind == PasswordKind.LOCKED:
        return "locked"
    return state.password.state if state.password is not None else "missing"


def _plan_entry(entry: Entry, stat: Stat | None, new: tuple[bytes | Secret | None, str] | None) -> Operation:
    content, summary = new if new is not None else (None, "")
    if stat is None:
        if entry.kind == StatKind.DIR:
            return Operation(Action.CREATE, entry)
        if content is None:
            return Operation(Action.KEEP, entry, summary="absent")  # optional file nobody asked for
        return Operation(Action.CREATE, entry, content, summary)

    if stat.kind in _REPLACEABLE_KINDS:
        if entry.kind == StatKind.FILE and content is None:
            # A link where a contract file belongs, and nothing new to put there: drop the link rather than
            # leave something that redirects a later write.
            raise UnsafeEntryError(
                f"{entry.path} is a {stat.kind}, not a regular file; refusing to keep it. "
                "Seed that item again (for example give the password or key) so it is replaced by a real file"
            )
        action = Action.REPLACE if entry.kind == StatKind.FILE else Action.CREATE
        return Operation(action, entry, content, summary, remove_first=True)

    if stat.kind != entry.kind:
        what = "a directory" if stat.kind == StatKind.DIR else f"a {stat.kind}"
        # Refused: it holds data of its own, and removing it could lose that data.
        raise UnsafeEntryError(
            f"{entry.path} is {what} where the contract expects a {'directory' if entry.kind == StatKind.DIR else 'file'}; "
            "move it away and run again"
        )

    if entry.kind == StatKind.FILE and (content is not None or stat.nlink > 1):
        # A hard-linked file shares its inode with another path: writing a new file breaks the link.
        if content is None:
            raise UnsafeEntryError(
                f"{entry.path} is hard-linked ({stat.nlink} links); seed that item again so a fresh file replaces it"
            )
        return Operation(Action.REPLACE, entry, content, summary)

    if (stat.uid, stat.gid, stat.mode) != (entry.uid, entry.gid, entry.mode):
        return Operation(Action.FIX, entry, summary=f"was {stat.uid}:{stat.gid} {stat.mode:04o}")
    return Operation(Action.KEEP, entry)
