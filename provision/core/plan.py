"""Turn a request and the image's current state into an ordered list of operations. Pure: no I/O.

Each contract path gets exactly one operation, parents before children:
  create   the path is absent: make it
  replace  a file's content changes (or an entry with no data of its own, a symlink or fifo, is swapped
           for a real one)
  fix      the content stays, owner or mode are brought back to the contract
  keep     nothing to do
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from provision.core.access import PasswordOutcome, lockout_message
from provision.core.credentials.hostkeys import HostKey
from provision.core.credentials.keysources import FetchedKeys
from provision.core.credentials.passwords import LOCKED_PASSWORD_LINE
from provision.core.credentials.sshkeys import AuthorizedKey, merge_keys, render_authorized_keys
from provision.core.fs import Stat, StatKind
from provision.core.keyremoval import edit_authorized_keys, select_keys_to_remove
from provision.core.layout import Entry, Layout
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
    """Random material the plan may need, made by the caller so planning stays pure."""

    host_key: HostKey
    machine_id: str


@dataclass(frozen=True)
class Plan:
    operations: tuple[Operation, ...]
    authorized_keys: tuple[AuthorizedKey, ...]  # what authorized_keys holds after the plan
    host_public_line: str | None  # the host key after the plan
    machine_id: str | None
    stale_temps: tuple[str, ...] = ()  # temporary files of an interrupted run, removed first
    fetched: tuple[FetchedKeys, ...] = ()  # keys fetched from gh:/gl:/https sources, shown with their source
    removed_keys: tuple[AuthorizedKey, ...] = ()  # the image's keys this plan takes out (--remove-key)

    def key_source(self, key: AuthorizedKey) -> str | None:
        """The source a key was fetched from, as the person wrote it (gh:alice), or None (a file, the image)."""
        for fetched in self.fetched:
            if any(k.blob == key.blob for k in fetched.keys):
                return fetched.source.spec
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
        raise UsageError(
            "the image has no password yet: give --password-stdin, --password-file, "
            "--password-hash-file or --no-password"
        )

    # Authorized keys: existing ones stay unless --replace-keys or --remove-key; de-duplicated by key blob.
    if request.replace_keys and request.remove_keys:
        raise UsageError("--replace-keys already takes out every key the image holds; drop --remove-key")
    removed = select_keys_to_remove(state.authorized_keys, request.remove_keys, adding=request.keys)
    gone = {key.blob for key in removed}
    kept = [key for key in state.authorized_keys if key.blob not in gone]
    keys = tuple(merge_keys(kept, request.keys, replace=request.replace_keys))
    # Never lock everyone out: no key left and no usable password is refused, whatever led there.
    refusal = lockout_message(len(keys), _password_after(request, state), removing=bool(removed))
    if refusal is not None:
        raise UsageError(refusal)
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

    operations = []
    made_afresh: set[str] = set()  # directories this plan creates: whatever lstat saw below them was elsewhere
    for entry in layout.entries:
        # Below a directory that is absent or a link, lstat looked through that link: treat it as empty.
        stat = None if entry.parent in made_afresh and entry.path != "/" else state.stat(entry.path)
        op = _plan_entry(entry, stat, contents.get(entry.role or ""))
        if entry.kind == StatKind.DIR and op.action == Action.CREATE:
            made_afresh.add(entry.path)
        operations.append(op)
    return Plan(tuple(operations), keys, host_public, machine_id, state.stale_temps, request.fetched,
                removed_keys=removed)


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
