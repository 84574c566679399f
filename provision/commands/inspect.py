"""`zvm-provision inspect`: what an image's persist partition carries, and whether it meets the contract.

Three layers, so that most of it is testable without an appliance and batch can reuse the check:

- gathering (`inspect_image`, `inspect_disk`, `walk_persist`): the image is opened read-only (libguestfs
  puts a throw-away overlay in front of it) and persist is mounted read-only; nothing is followed through
  a link, and the walk over the tree is capped;
- `build_report(...) -> InspectReport`: pure; compares what was read with the contract;
- renderers: `report_to_json` (a stable schema, `schema_version` 1, documented in docs/inspect.md) and
  `print_report` / `render_text` (rich tables).

Never a secret: the password hash, the host private key and the Netbird setup key are read (to describe
them) but no part of them reaches the report. Everything else read from the image is untrusted text: it is
escaped and capped before it is shown.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provision.errors import ProvisionError

if TYPE_CHECKING:
    from rich.console import Console

    from provision.core.credentials import AuthorizedKey
    from provision.guest.diskformat import ImageInfo
    from provision.guest.appliance import Appliance, Partition, Stat
    from provision.core.layout import Entry, Layout
    from provision.core.state import ImageState, ReadableFS

SCHEMA_VERSION = 1
MAX_WALK_ENTRIES = 10_000
MAX_WALK_DEPTH = 32
MAX_LISTED = 200  # entries listed one by one on screen; the rest are counted (every one is still judged)
_SPECIAL_KINDS = ("symlink", "fifo", "socket", "char", "block", "unknown")
# ext4's own directory (mkfs creates it, fsck fills it): expected, its content not examined.
_FILESYSTEM_DIRS = ("/lost+found",)
# Directories whose content belongs to someone else (the running system, the user): entries below them
# that the contract does not name are "other entries", counted, not drift.
_USER_HOME_ROLE = "user-home"


# --------------------------------------------------------------------------------------------------
# What the walk over persist found (gathered with the appliance, plain data)


@dataclass(frozen=True)
class WalkEntry:
    path: str
    kind: str
    uid: int
    gid: int
    mode: int
    nlink: int
    size: int
    target: str | None = None  # a symlink's target (untrusted text)


@dataclass(frozen=True)
class Walk:
    entries: tuple[WalkEntry, ...]  # every entry below / that was visited, contract paths included
    not_examined: tuple[str, ...] = ()  # directories whose content the contract does not own (not descended)
    capped: str | None = None  # why the walk stopped early, or None
    errors: tuple[str, ...] = ()  # entries that could not be read


def _join(parent: str, name: str) -> str:
    return ("" if parent == "/" else parent) + "/" + name


def opaque_directories(layout: Layout) -> tuple[str, ...]:
    """Directories the walk does not descend into: the running system owns their content (journal, uid maps,
    Netbird's per-user state) and the contract names nothing inside them."""
    names = {e.path for e in layout.entries}
    opaque = [
        e.path for e in layout.directories
        if e.persist in ("directory", "user-directory") and not any(n.startswith(e.path + "/") for n in names)
    ]
    return tuple(opaque) + _FILESYSTEM_DIRS


def walk_persist(
    fs: ReadableFS, layout: Layout, *, max_entries: int = MAX_WALK_ENTRIES, max_depth: int = MAX_WALK_DEPTH
) -> Walk:
    """Visit persist's tree breadth-first without following links; stop after `max_entries` entries or below
    `max_depth` levels, and say so."""
    opaque = set(opaque_directories(layout))
    entries: list[WalkEntry] = []
    not_examined: list[str] = []
    errors: list[str] = []
    capped: str | None = None
    too_deep: str | None = None
    queue: deque[tuple[str, int]] = deque([("/", 0)])
    while queue and capped is None:
        directory, depth = queue.popleft()
        try:
            names = fs.listdir(directory)  # type: ignore[attr-defined]
        except ProvisionError as exc:
            errors.append(f"{directory}: cannot list ({exc.message})")
            continue
        for name in names:
            if len(entries) >= max_entries:
                capped = f"stopped after {max_entries} entries"
                break
            path = _join(directory, name)
            try:
                stat = fs.lstat(path)
            except (ProvisionError, ValueError) as exc:
                errors.append(f"{_shown(path)}: cannot stat ({getattr(exc, 'message', type(exc).__name__)})")
                continue
            if stat is None:  # vanished, or a name the appliance cannot address
                continue
            target = None
            if stat.kind == "symlink":
                try:
                    target = fs.readlink(path)  # type: ignore[attr-defined]
                except ProvisionError:
                    target = None
            entries.append(WalkEntry(path, stat.kind, stat.uid, stat.gid, stat.mode, stat.nlink, stat.size, target))
            if stat.kind != "dir":
                continue
            if path in opaque:
                not_examined.append(path)
            elif depth + 1 >= max_depth:
                too_deep = too_deep or f"did not descend below depth {max_depth} (first at {_shown(path)})"
            else:
                queue.append((path, depth + 1))
    return Walk(tuple(entries), tuple(not_examined), capped or too_deep, tuple(errors))


# --------------------------------------------------------------------------------------------------
# The report (pure data)


@dataclass(frozen=True)
class PathReport:
    entry: Entry
    stat: Stat | None  # None when absent (or not reachable through a real directory)
    status: str  # ok | missing (required, absent) | absent (optional, absent) | drift
    problems: tuple[str, ...] = ()
    required: bool = False  # a required file, or a directory on the way to one


@dataclass(frozen=True)
class PasswordReport:
    state: str  # set | locked | invalid | missing | unreadable
    algorithm: str | None = None  # sha512-crypt | yescrypt
    rounds: int | None = None


@dataclass(frozen=True)
class HostKeyReport:
    state: str  # present | missing | incomplete (half a pair) | invalid (public key does not parse)
    type: str | None = None
    fingerprint: str | None = None
    known_hosts: str | None = None


@dataclass(frozen=True)
class MachineIdReport:
    state: str  # valid | invalid | missing
    value: str | None = None


@dataclass(frozen=True)
class NetbirdReport:
    setup_key: str  # present | missing: nothing of the key itself is ever shown
    management_url: str | None = None


# How much an unexpected entry weighs in the verdict. The check reads this, never the wording of `reason`.
UNSAFE = "unsafe"  # drift wherever it is: a symlink, a fifo, a socket, a device, a hard-linked file
EXTRA = "extra"  # a plain file or directory the contract does not name, in a root-owned area: listed only


@dataclass(frozen=True)
class UnexpectedEntry:
    path: str
    kind: str
    owner: str
    mode: str
    reason: str  # for people; the verdict uses `severity`
    target: str | None = None
    severity: str = EXTRA


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
    unexpected: tuple[UnexpectedEntry, ...]  # every one the walk saw: symlinks, special files, hard links,
    # unnamed root-area entries (only the screen cuts this list)
    other_entries: int  # user/system content below the home directory and similar: counted
    other_examples: tuple[str, ...]
    walk_entries: int
    walk_capped: str | None
    not_examined: tuple[str, ...]
    walk_errors: tuple[str, ...] = ()
    unreadable: dict[str, str] = field(default_factory=dict)

    def path(self, path: str) -> PathReport:
        for item in self.paths:
            if item.entry.path == path:
                return item
        raise KeyError(path)


def _owner(uid: int, gid: int) -> str:
    return f"{uid}:{gid}"


def _shown(text: str, cap: int = 200) -> str:
    """Untrusted text from the image, safe for a terminal: control characters escaped, length capped."""
    text = text if len(text) <= cap else text[:cap] + "..."
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


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
            entry, None, "missing" if required else "absent",
            (f"not reachable: {broken_parent} is not a real directory",) if required else (), required,
        )
    if stat is None:
        return PathReport(entry, None, "missing" if required else "absent", ("missing",) if required else (), required)
    problems = []
    if stat.kind != entry.kind:
        problems.append(f"is a {stat.kind}, not a {entry.kind}")
    else:
        if (stat.uid, stat.gid) != (entry.uid, entry.gid):
            problems.append(f"owner {_owner(stat.uid, stat.gid)}, expected {_owner(entry.uid, entry.gid)}")
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
        if entry.kind == "file" and stat.nlink > 1:
            problems.append(f"has {stat.nlink} hard links (another name shares its content)")
    return PathReport(entry, stat, "drift" if problems else "ok", tuple(problems), required)


def build_report(
    info: ImageInfo, partitions: list[Partition] | tuple[Partition, ...], state: ImageState, walk: Walk,
    layout: Layout, *, persist_device: str | None = None,
) -> InspectReport:
    """Compare what persist holds (`state`, `walk`) with the contract. Pure: no I/O."""
    from provision.ui import render as seed_report

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
        if entry.kind == "dir" and (item.stat is None or item.stat.kind != "dir"):
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
    public_entry, private_entry = layout.role("host-key-public"), layout.role("host-key")
    public_there = path_status[public_entry.path].stat is not None
    private_there = state.host_private_present
    if state.host_public_line is not None and private_there:
        summary = seed_report.host_key_summary(state.host_public_line) or {}
        host = HostKeyReport("present", summary.get("type"), summary.get("fingerprint"), summary.get("known_hosts"))
    elif public_there and state.host_public_line is None:
        host = HostKeyReport("invalid")
    elif state.host_public_line is not None:  # a public key without its private half
        summary = seed_report.host_key_summary(state.host_public_line) or {}
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
        authorized_keys_problems=tuple(_shown(p) for p in state.authorized_keys_problems),
        host_key=host,
        machine_id=machine,
        netbird=netbird,
        unexpected=unexpected,
        other_entries=other,
        other_examples=examples,
        walk_entries=len(walk.entries),
        walk_capped=walk.capped,
        not_examined=walk.not_examined,
        walk_errors=walk.errors,
        unreadable=dict(state.unreadable),
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
    return _shown(url)


def _classify_walk(walk: Walk, layout: Layout) -> tuple[tuple[UnexpectedEntry, ...], int, tuple[str, ...]]:
    contract = {e.path: e for e in layout.entries}
    home = layout.entry(f"/home/{layout.user_name}").path if f"/home/{layout.user_name}" in contract else None
    # Areas whose unnamed content is someone else's (the user's home, daemon state): counted as "other".
    owned_elsewhere = [e.path for e in layout.directories if e.persist in ("directory", "user-directory")]
    if home is not None:
        owned_elsewhere.append(home)
    owned_elsewhere += list(_FILESYSTEM_DIRS)

    unexpected: list[UnexpectedEntry] = []
    other = 0
    examples: list[str] = []
    for item in walk.entries:
        owner, mode = _owner(item.uid, item.gid), f"{item.mode:04o}"
        shown = _shown(item.path)
        if item.kind in _SPECIAL_KINDS:
            where = "at a contract path" if item.path in contract else "not named by the contract"
            reason = f"{item.kind} ({where})"
            unexpected.append(UnexpectedEntry(
                shown, item.kind, owner, mode, reason, _shown(item.target) if item.target is not None else None,
                UNSAFE,
            ))
            continue
        if item.path in contract or item.path in _FILESYSTEM_DIRS:
            continue  # contract paths are judged in the path table
        if item.kind == "file" and item.nlink > 1:
            unexpected.append(
                UnexpectedEntry(shown, item.kind, owner, mode, f"file with {item.nlink} hard links", None, UNSAFE)
            )
            continue
        if any(item.path.startswith(area + "/") for area in owned_elsewhere):
            other += 1
            if len(examples) < MAX_LISTED:
                examples.append(shown)
            continue
        unexpected.append(UnexpectedEntry(shown, item.kind, owner, mode, "not named by the contract"))
    return tuple(unexpected), other, tuple(examples)


# --------------------------------------------------------------------------------------------------
# The contract check (inspect --check; batch reuses it to decide whether an image is complete)


def check_image_contract(report: InspectReport) -> list[str]:
    """Every way the image departs from the contract, one line each ("path: what is wrong"). Empty: it meets
    it. Entries the contract does not name are not drift, except symlinks, special files and hard links."""
    problems = [f"{p.entry.path}: {problem}" for p in report.paths for problem in p.problems]
    bad_paths = {p.entry.path for p in report.paths if p.problems}

    def add(path: str, problem: str) -> None:
        if path not in bad_paths:
            problems.append(f"{path}: {problem}")

    by_role = {p.entry.role: p for p in report.paths if p.entry.role}
    password_path = by_role["password-hash"].entry.path
    if report.password.state == "invalid":
        add(password_path, "neither a sha-512 ($6$) or yescrypt ($y$) hash nor a locked marker")
    elif report.password.state == "unreadable":
        add(password_path, report.unreadable.get(password_path, "cannot be read"))

    keys_path = by_role["authorized-keys"].entry.path
    if by_role["authorized-keys"].stat is not None and by_role["authorized-keys"].stat.kind == "file":
        if keys_path in report.unreadable:
            add(keys_path, report.unreadable[keys_path])
        else:
            for problem in report.authorized_keys_problems:
                problems.append(f"{keys_path}: {problem}")
            if not report.authorized_keys:
                add(keys_path, "holds no SSH public key")

    machine_path = by_role["machine-id"].entry.path
    if report.machine_id.state == "invalid":
        add(machine_path, "not 32 lowercase hexadecimal digits and a newline")

    public_path = by_role["host-key-public"].entry.path
    private_path = by_role["host-key"].entry.path
    if report.host_key.state == "invalid":
        add(public_path, "not a valid SSH public key")
    elif report.host_key.state == "incomplete":
        if report.host_key.fingerprint is None:
            add(public_path, f"missing, while {private_path} is there (half a host key pair)")
        else:
            add(private_path, f"missing or empty, while {public_path} is there (half a host key pair)")

    for item in report.unexpected:  # all of them: a symlink past the screen's limit is drift too
        if item.path in bad_paths:
            continue  # already named by the path table ("is a symlink, not a file")
        if item.severity == UNSAFE:
            target = f" -> {item.target}" if item.target is not None else ""
            problems.append(f"{item.path}: {item.reason}{target}")
    if report.walk_capped:
        problems.append(f"/: the walk over persist {report.walk_capped}; the rest was not examined")
    problems += [f"{error}" for error in report.walk_errors]
    return problems


# --------------------------------------------------------------------------------------------------
# Gathering: read-only, through the appliance


def inspect_disk(appliance: Appliance, index: int, info: ImageInfo, layout: Layout | None = None) -> InspectReport:
    """Inspect disk `index` of a launched, read-only appliance (batch can inspect many disks per launch)."""
    from provision.core.layout import load_layout
    from provision.core.state import read_state

    if not appliance.readonly:
        raise ValueError("inspect needs a read-only appliance: the image must not change")
    layout = layout or load_layout()
    partitions = appliance.partitions(index)
    # mount_persist finds persist itself (and refuses an image without exactly one); a read-only appliance
    # mounts it read-only ("ro").
    with appliance.mount_persist(index) as fs:
        state = read_state(fs, layout)
        walk = walk_persist(fs, layout)
        device = fs.device
    return build_report(info, partitions, state, walk, layout, persist_device=device)


def inspect_image(info: ImageInfo, *, accel: str) -> InspectReport:
    """Open one image read-only (libguestfs writes only to a throw-away overlay) and inspect it."""
    from provision.commands.seed import ImageSession

    with ImageSession(info, readonly=True, accel=accel) as session:
        session.wait()
        return inspect_disk(session.appliance, 0, info)


# --------------------------------------------------------------------------------------------------
# JSON (schema_version 1, documented in docs/inspect.md)


def report_to_json(report: InspectReport, problems: list[str] | None = None) -> dict[str, Any]:
    problems = check_image_contract(report) if problems is None else problems
    return {
        "schema_version": SCHEMA_VERSION,
        "image": {
            "path": report.image, "format": report.format,
            "virtual_size": report.virtual_size, "file_size": report.file_size,
        },
        "partitions": [
            {
                "device": p.device, "label": _maybe_shown(p.label), "fs_type": _maybe_shown(p.fs_type),
                "size": p.size, "persist": p.device == report.persist_device,
            }
            for p in report.partitions
        ],
        "contract_ok": not problems,
        "problems": problems,
        "paths": [
            {
                "path": p.entry.path,
                "role": p.entry.role,
                "required": p.required,
                "expected": {
                    "kind": p.entry.kind, "owner": _owner(p.entry.uid, p.entry.gid), "mode": f"{p.entry.mode:04o}",
                },
                "present": p.stat is not None,
                "actual": None if p.stat is None else {
                    "kind": p.stat.kind, "owner": _owner(p.stat.uid, p.stat.gid), "mode": f"{p.stat.mode:04o}",
                    "nlink": p.stat.nlink,
                },
                "status": p.status,
                "problems": list(p.problems),
            }
            for p in report.paths
        ],
        "password": {
            "state": report.password.state, "algorithm": report.password.algorithm, "rounds": report.password.rounds,
        },
        "authorized_keys": {
            "keys": [
                {
                    "type": k.key_type, "label": k.type_label, "bits": k.bits, "fingerprint": k.fingerprint,
                    "comment": _shown(k.comment), "options": _maybe_shown(k.options),
                }
                for k in report.authorized_keys
            ],
            "problems": list(report.authorized_keys_problems),
        },
        "host_key": {
            "state": report.host_key.state, "type": report.host_key.type,
            "fingerprint": report.host_key.fingerprint, "known_hosts": report.host_key.known_hosts,
        },
        "machine_id": {"state": report.machine_id.state, "value": report.machine_id.value},
        "netbird": {"setup_key": report.netbird.setup_key, "management_url": report.netbird.management_url},
        "unexpected": [
            {
                "path": u.path, "kind": u.kind, "owner": u.owner, "mode": u.mode, "reason": u.reason,
                "target": u.target, "severity": u.severity,
            }
            for u in report.unexpected
        ],
        "other_entries": {"count": report.other_entries, "examples": list(report.other_examples)},
        "walk": {
            "entries": report.walk_entries,
            "capped": report.walk_capped,
            "limits": {"entries": MAX_WALK_ENTRIES, "depth": MAX_WALK_DEPTH},
            "not_examined": list(report.not_examined),
            "errors": list(report.walk_errors),
        },
    }


def _maybe_shown(text: str | None) -> str | None:
    return None if text is None else _shown(text)


# --------------------------------------------------------------------------------------------------
# Human output (rich; imported lazily)

_STATUS_STYLE = {"ok": "green", "drift": "bold red", "missing": "bold red", "absent": "dim"}


def print_report(report: InspectReport, console: Console, problems: list[str] | None = None) -> None:
    from rich.table import Table
    from rich.text import Text

    problems = check_image_contract(report) if problems is None else problems
    console.print(Text(f"Image {_shown(report.image)} ({report.format}, {_size(report.virtual_size)} virtual)",
                       style="bold"))
    console.print(Text(f"persist: {report.persist_device or 'not found'}, mounted read-only "
                       "(seen at /persist in the VM)"))

    table = Table(title="Persist contract (paths inside persist)", title_justify="left")
    for column in ("path", "status", "kind", "owner", "mode"):  # what is wrong: listed under the tables
        table.add_column(column, overflow="fold")
    for p in report.paths:
        stat = p.stat
        status = p.status
        table.add_row(
            Text(p.entry.path),
            Text(status, style=_STATUS_STYLE.get(p.status, "")),
            Text(stat.kind if stat else "-"),
            Text(_owner(stat.uid, stat.gid) if stat else "-"),
            Text(f"{stat.mode:04o}" if stat else "-"),
        )
    console.print(table)

    facts = Table(title="Identity and credentials", title_justify="left", show_header=False)
    facts.add_column("item", style="bold")
    facts.add_column("value", overflow="fold")
    pw = report.password
    pw_text = pw.state + (f", {pw.algorithm}" if pw.algorithm else "") + (f", {pw.rounds} rounds" if pw.rounds else "")
    facts.add_row("password", Text(pw_text))
    facts.add_row("machine-id", Text(report.machine_id.value or report.machine_id.state))
    host = report.host_key
    host_text = host.state if host.state != "present" else ""
    if host.fingerprint:
        host_text = f"{host_text + ': ' if host_text else ''}{host.fingerprint} ({host.type})"
    facts.add_row("host key", Text(host_text))
    facts.add_row("netbird setup key", Text(report.netbird.setup_key))
    facts.add_row("netbird management", Text(report.netbird.management_url or "not set (Netbird's default)"))
    console.print(facts)

    keys = Table(title=f"Authorized SSH keys ({len(report.authorized_keys)})", title_justify="left")
    for column in ("bits", "fingerprint", "comment", "type", "options"):
        keys.add_column(column, overflow="fold")
    for key in report.authorized_keys:
        keys.add_row(Text(str(key.bits)), Text(key.fingerprint), Text(_shown(key.comment) or "no comment"),
                     Text(key.type_label), Text(_shown(key.options) if key.options else "-"))
    console.print(keys)
    for problem in report.authorized_keys_problems:
        console.print(Text(f"  authorized_keys {problem}", style="red"))

    if host.known_hosts:
        console.print(Text("known_hosts line (replace 'zvm' with the VM's address):"))
        console.print(Text(f"  {host.known_hosts}"), soft_wrap=True)

    if report.unexpected:
        extra = Table(title=f"Unexpected entries ({len(report.unexpected)})", title_justify="left")
        for column in ("path", "kind", "owner", "mode", "why"):
            extra.add_column(column, overflow="fold")
        # Unsafe ones first, so the screenful shows what matters; the verdict below names every one.
        shown = sorted(report.unexpected, key=lambda u: u.severity != UNSAFE)[:MAX_LISTED]
        for u in shown:
            why = u.reason + (f" -> {u.target}" if u.target is not None else "")
            style = "red" if u.severity == UNSAFE else "yellow"
            extra.add_row(Text(u.path), Text(u.kind), Text(u.owner), Text(u.mode), Text(why, style=style))
        console.print(extra)
        if len(report.unexpected) > len(shown):
            console.print(Text(f"... and {len(report.unexpected) - len(shown)} more (--json lists every one)",
                               style="dim"))
    else:
        console.print(Text("Unexpected entries: none"))
    walked = f"{report.walk_entries} entries examined"
    if report.other_entries:
        walked += f"; {report.other_entries} other entries (user or daemon data) not named by the contract"
    if report.not_examined:
        walked += f"; content not examined: {', '.join(report.not_examined)}"
    console.print(Text(walked, style="dim"))
    if report.walk_capped:
        console.print(Text(f"The walk {report.walk_capped}.", style="yellow"))

    if problems:
        console.print(Text(f"Drift from the contract ({len(problems)}):", style="bold red"))
        for problem in problems:
            console.print(Text(f"  {problem}"), soft_wrap=True)
    else:
        console.print(Text("The image meets the persist contract.", style="bold green"))


def render_text(report: InspectReport, *, width: int = 110) -> str:
    """The human report as plain text (no colours), e.g. for tests and logs."""
    import io

    from rich.console import Console

    buffer = io.StringIO()
    print_report(report, Console(file=buffer, width=width, color_system=None, force_terminal=False,
                                 highlight=False, emoji=False))
    return buffer.getvalue()


def render_check(problems: list[str]) -> str:
    if not problems:
        return "OK: the image meets the persist contract"
    lines = [f"DRIFT: {len(problems)} problem{'s' if len(problems) != 1 else ''}"]
    lines += [f"  {problem}" for problem in problems]
    return "\n".join(lines)


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return str(size)
