"""The inspect report: what persist holds (state and walk) compared with the contract. The verdict on it (`inspect --check`, and batch's
judgement of whether an image is complete) is core.contractcheck. Pure: no I/O.

Never a secret: the password hash, the host private key and the Netbird setup key are read (to describe them)
but no part of them reaches the report. Everything else read from the image is untrusted text: it is escaped
and capped before it is kept here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from provision.core.certinspection import CertificatesReport, certificates_report
from provision.core.credentials.hostkeys import host_key_summary
from provision.core.credentials.identity import BUILT_IN_HOSTNAME
from provision.core.credentials.sshkeys import AuthorizedKey
from provision.core.disk import ImageInfo, Partition
from provision.core.fs import Stat, StatKind
from provision.core.layout import Entry, Layout
from provision.core.record import RecordReport, record_report
from provision.core.state import ImageState
from provision.core.text import shown
from provision.core.walk import FILESYSTEM_DIRS, Walk

MAX_LISTED = 200  # entries listed one by one on screen; the rest are counted (every one is still judged)
_SPECIAL_KINDS = (StatKind.SYMLINK, StatKind.FIFO, StatKind.SOCKET, StatKind.CHAR, StatKind.BLOCK, StatKind.UNKNOWN)


class PathStatus(StrEnum):
    OK = "ok"
    MISSING = "missing"  # required, absent
    ABSENT = "absent"  # optional, absent
    DRIFT = "drift"


class Severity(StrEnum):
    """How much an unexpected entry weighs in the verdict. The check reads this, never the wording of `reason`."""

    UNSAFE = "unsafe"  # drift wherever it is: a symlink, a fifo, a socket, a device, a hard-linked file
    EXTRA = "extra"  # a plain file or directory the contract does not name, in a root-owned area: listed only


@dataclass(frozen=True)
class PathReport:
    entry: Entry
    stat: Stat | None  # None when absent (or not reachable through a real directory)
    status: PathStatus
    problems: tuple[str, ...] = ()
    required: bool = False  # a required file, or a directory on the way to one


@dataclass(frozen=True)
class PasswordReport:
    state: Literal["set", "locked", "invalid", "missing", "unreadable"]
    algorithm: str | None = None  # sha512-crypt | yescrypt
    rounds: int | None = None


@dataclass(frozen=True)
class HostKeyReport:
    state: Literal["present", "missing", "incomplete", "invalid"]  # incomplete: half a pair; invalid: no parse
    type: str | None = None
    fingerprint: str | None = None
    known_hosts: str | None = None


@dataclass(frozen=True)
class MachineIdReport:
    state: Literal["valid", "invalid", "missing"]
    value: str | None = None


@dataclass(frozen=True)
class NetbirdReport:
    setup_key: Literal["present", "missing"]  # nothing of the key itself is ever shown
    management_url: str | None = None


@dataclass(frozen=True)
class HostnameReport:
    state: Literal["seeded", "absent", "invalid", "unreadable"]
    value: str | None = None  # the seeded name (valid: no escaping needed)
    boots_as: str = BUILT_IN_HOSTNAME  # what the VM calls itself: the seeded name, else its built-in one


@dataclass(frozen=True)
class UpdatesReport:
    """The release signers the VM's hourly update verifies against (nix/modules/update-source.sh)."""

    state: Literal["verified", "not-verified", "unusable"]  # unusable: a list that names no signer
    signers: tuple[tuple[str, str], ...] = ()  # (principal, fingerprint)
    problems: tuple[str, ...] = ()

    @property
    def words(self) -> str:
        if self.state == "not-verified":
            return "updates are not verified (no release signers: the VM follows its flake URL as it is)"
        if self.state == "unusable":
            return "no update runs (the release signers file names no usable key)"
        return f"verified: only releases signed by {len(self.signers)} release signer(s)"


@dataclass(frozen=True)
class UnexpectedEntry:
    path: str
    kind: StatKind
    owner: str
    mode: str
    reason: str  # for people; the verdict uses `severity`
    target: str | None = None
    severity: Severity = Severity.EXTRA


@dataclass(frozen=True)
class InspectReport:
    image: str
    format: str
    virtual_size: int
    file_size: int
    partitions: tuple[Partition, ...]
    persist_device: str | None
    paths: tuple[PathReport, ...]
    password: PasswordReport
    authorized_keys: tuple[AuthorizedKey, ...]
    authorized_keys_problems: tuple[str, ...]
    host_key: HostKeyReport
    machine_id: MachineIdReport
    netbird: NetbirdReport
    hostname: HostnameReport
    record: RecordReport
    updates: UpdatesReport
    unexpected: tuple[UnexpectedEntry, ...]  # every one the walk saw: symlinks, special files, hard links,
    # unnamed root-area entries (only the screen cuts this list)
    other_entries: int  # user/system content below the home directory and similar: counted
    other_examples: tuple[str, ...]
    walk_entries: int
    walk_capped: str | None
    not_examined: tuple[str, ...]
    walk_errors: tuple[str, ...] = ()
    unreadable: dict[str, str] = field(default_factory=dict)
    read_at: float = field(default_factory=time.time)  # the time the keys were judged at (expiry-time)
    certificates: CertificatesReport = field(default_factory=CertificatesReport)

    def path(self, path: str) -> PathReport:
        for item in self.paths:
            if item.entry.path == path:
                return item
        raise KeyError(path)


def owner_text(uid: int, gid: int) -> str:
    return f"{uid}:{gid}"


def _required_paths(layout: Layout) -> set[str]:
    """Required files and every directory on the way to them."""
    required: set[str] = set()
    for entry in layout.entries:
        if entry.required:
            path = entry.path
            while True:
                required.add(path)
                if path == "/":
                    break
                path = path.rsplit("/", 1)[0] or "/"
    return required


def _path_report(entry: Entry, stat: Stat | None, required: bool, broken_parent: str | None) -> PathReport:
    if broken_parent is not None:
        return PathReport(
            entry, None, PathStatus.MISSING if required else PathStatus.ABSENT,
            (f"not reachable: {broken_parent} is not a real directory",) if required else (), required,
        )
    if stat is None:
        status = PathStatus.MISSING if required else PathStatus.ABSENT
        return PathReport(entry, None, status, ("missing",) if required else (), required)
    problems = []
    if stat.kind != entry.kind:
        problems.append(f"is a {stat.kind}, not a {entry.kind}")
    else:
        if (stat.uid, stat.gid) != (entry.uid, entry.gid):
            problems.append(f"owner {owner_text(stat.uid, stat.gid)}, expected {owner_text(entry.uid, entry.gid)}")
        if stat.mode != entry.mode:
            extra = []
            if stat.mode & 0o002:
                extra.append("world-writable")
            elif stat.mode & 0o020:
                extra.append("group-writable")
            if stat.mode & 0o7000:
                extra.append("setuid/setgid/sticky")
            note = f" ({', '.join(extra)})" if extra else ""
            problems.append(f"mode {stat.mode:04o}{note}, expected {entry.mode:04o}")
        if entry.kind == StatKind.FILE and stat.nlink > 1:
            problems.append(f"has {stat.nlink} hard links (another name shares its content)")
    return PathReport(entry, stat, PathStatus.DRIFT if problems else PathStatus.OK, tuple(problems), required)


def build_report(
    info: ImageInfo, partitions: list[Partition] | tuple[Partition, ...], state: ImageState, walk: Walk,
    layout: Layout, *, persist_device: str | None = None, now: datetime | None = None,
) -> InspectReport:
    """Compare what persist holds (`state`, `walk`) with the contract. Pure: no I/O."""
    required = _required_paths(layout)
    paths: list[PathReport] = []
    not_dir: dict[str, bool] = {}  # contract directory that is not a real directory -> is it there at all
    for entry in layout.entries:
        ancestor = entry.parent if entry.path != "/" else "/"
        while ancestor != "/" and ancestor not in not_dir:
            ancestor = ancestor.rsplit("/", 1)[0] or "/"
        if ancestor in not_dir and not not_dir[ancestor]:
            item = _path_report(entry, None, entry.path in required, None)  # below an absent directory
        elif ancestor in not_dir:
            item = _path_report(entry, None, entry.path in required, ancestor)  # below a link or a file
        else:
            item = _path_report(entry, state.stat(entry.path), entry.path in required, None)
        if entry.kind == StatKind.DIR and (item.stat is None or item.stat.kind != StatKind.DIR):
            not_dir[entry.path] = item.stat is not None
        paths.append(item)
    path_status = {p.entry.path: p for p in paths}

    # Password: never the hash, only what kind of line it is.
    password_entry = layout.role("password-hash")
    if state.password is not None:
        password = PasswordReport(state.password.state, state.password.algorithm, state.password.rounds)
    elif path_status[password_entry.path].stat is not None:
        password = PasswordReport("unreadable")
    else:
        password = PasswordReport("missing")

    # Host key: the public half is shown; of the private half only whether it is there.
    public_entry = layout.role("host-key-public")
    public_there = path_status[public_entry.path].stat is not None
    private_there = state.host_private_present
    if state.host_public_line is not None and private_there:
        summary = host_key_summary(state.host_public_line, state.hostname) or {}
        host = HostKeyReport("present", summary.get("type"), summary.get("fingerprint"), summary.get("known_hosts"))
    elif public_there and state.host_public_line is None:
        host = HostKeyReport("invalid")
    elif state.host_public_line is not None:  # a public key without its private half
        summary = host_key_summary(state.host_public_line, state.hostname) or {}
        host = HostKeyReport("incomplete", summary.get("type"), summary.get("fingerprint"), summary.get("known_hosts"))
    elif private_there:  # a private key without its public half
        host = HostKeyReport("incomplete")
    else:
        host = HostKeyReport("missing")

    machine_entry = layout.role("machine-id")
    if state.machine_id is not None:
        machine = MachineIdReport("valid", state.machine_id)
    elif state.machine_id_raw is not None or path_status[machine_entry.path].stat is not None:
        machine = MachineIdReport("invalid")
    else:
        machine = MachineIdReport("missing")

    netbird = NetbirdReport(
        "present" if state.netbird_setup_key_present else "missing",
        _redact_url(state.netbird_management_url) if state.netbird_management_url else None,
    )

    hostname_entry = layout.role("hostname")
    if state.hostname is not None:
        hostname = HostnameReport("seeded", state.hostname, state.hostname)
    elif state.hostname_raw is not None:
        hostname = HostnameReport("invalid")
    elif path_status[hostname_entry.path].stat is not None:
        hostname = HostnameReport("unreadable")
    else:
        hostname = HostnameReport("absent")

    record = record_report(state.record)
    if state.update_signers is None:
        updates = UpdatesReport("not-verified")
    else:
        updates = UpdatesReport("verified" if state.update_signers else "unusable",
                                tuple((shown(s.principal), s.fingerprint) for s in state.update_signers),
                                tuple(shown(p) for p in state.update_signers_problems))

    unexpected, other, examples = _classify_walk(walk, layout)
    return InspectReport(
        image=str(info.path),
        format=info.format,
        virtual_size=info.virtual_size,
        file_size=info.file_size,
        partitions=tuple(partitions),
        persist_device=persist_device,
        paths=tuple(paths),
        password=password,
        authorized_keys=tuple(state.authorized_keys),
        authorized_keys_problems=tuple(shown(p) for p in state.authorized_keys_problems),
        read_at=state.read_at,
        host_key=host,
        machine_id=machine,
        netbird=netbird,
        hostname=hostname,
        record=record,
        updates=updates,
        unexpected=unexpected,
        other_entries=other,
        other_examples=examples,
        walk_entries=len(walk.entries),
        walk_capped=walk.capped,
        not_examined=walk.not_examined,
        walk_errors=walk.errors,
        unreadable=dict(state.unreadable),
        certificates=certificates_report(state, now),  # `now` None: a certificate's dates are not judged
    )


def _redact_url(url: str) -> str:
    """The management URL is not a secret, but a user:password@ in it would be: drop it."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            host = parts.hostname or ""
            netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
            url = urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        pass
    return shown(url)


def _classify_walk(walk: Walk, layout: Layout) -> tuple[tuple[UnexpectedEntry, ...], int, tuple[str, ...]]:
    contract = {e.path: e for e in layout.entries}
    home = layout.entry(f"/home/{layout.user_name}").path if f"/home/{layout.user_name}" in contract else None
    # Areas whose unnamed content is someone else's (the user's home, daemon state): counted as "other".
    owned_elsewhere = [e.path for e in layout.directories if e.persist in ("directory", "user-directory")]
    if home is not None:
        owned_elsewhere.append(home)
    owned_elsewhere += list(FILESYSTEM_DIRS)

    unexpected: list[UnexpectedEntry] = []
    other = 0
    examples: list[str] = []
    for item in walk.entries:
        owner, mode = owner_text(item.uid, item.gid), f"{item.mode:04o}"
        path = shown(item.path)
        if item.kind in _SPECIAL_KINDS:
            where = "at a contract path" if item.path in contract else "not named by the contract"
            reason = f"{item.kind} ({where})"
            unexpected.append(UnexpectedEntry(
                path, item.kind, owner, mode, reason, shown(item.target) if item.target is not None else None,
                Severity.UNSAFE,
            ))
            continue
        if item.path in contract or item.path in FILESYSTEM_DIRS:
            continue  # contract paths are judged in the path table
        if item.kind == StatKind.FILE and item.nlink > 1:
            reason = f"file with {item.nlink} hard links"
            unexpected.append(UnexpectedEntry(path, item.kind, owner, mode, reason, None, Severity.UNSAFE))
            continue
        if any(item.path.startswith(area + "/") for area in owned_elsewhere):
            other += 1
            if len(examples) < MAX_LISTED:
                examples.append(path)
            continue
        unexpected.append(UnexpectedEntry(path, item.kind, owner, mode, "not named by the contract"))
    return tuple(unexpected), other, tuple(examples)
