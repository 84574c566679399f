"""The persist contract: nix/persist-layout.json, read by both the flake and this tool."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path, PurePosixPath

from provision.core.fs import StatKind

LAYOUT_FILE_NAME = "persist-layout.json"


@dataclass(frozen=True)
class Entry:
    """One path inside the persist filesystem, with the owner and mode the image expects."""

    path: str  # absolute, inside persist ("/home/zvm/.ssh")
    kind: StatKind  # DIR or FILE
    uid: int
    gid: int
    mode: int  # permission bits, e.g. 0o700
    role: str | None = None  # what a file holds ("password-hash", "authorized-keys"...)
    required: bool = False  # a complete image has it (inspect --check)
    secret: bool = False  # its content is never shown
    persist: str | None = None  # how impermanence binds it into the running system

    @property
    def parent(self) -> str:
        return str(PurePosixPath(self.path).parent)


@dataclass(frozen=True)
class Layout:
    version: int
    label: str
    fs_type: str
    mount_point: str
    user_name: str
    uid: int
    gid: int
    entries: tuple[Entry, ...]

    def entry(self, path: str) -> Entry:
        for entry in self.entries:
            if entry.path == path:
                return entry
        raise KeyError(path)

    def role(self, role: str) -> Entry:
        for entry in self.entries:
            if entry.role == role:
                return entry
        raise KeyError(role)

    @property
    def directories(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.kind == StatKind.DIR)

    @property
    def files(self) -> tuple[Entry, ...]:
        return tuple(e for e in self.entries if e.kind == StatKind.FILE)


def _layout_text() -> str:
    # Installed wheels carry a copy inside the package; a source checkout reads nix/ directly,
    # so the flake and the tool always read the very same file while developing.
    source_copy = Path(__file__).resolve().parents[2] / "nix" / LAYOUT_FILE_NAME
    if source_copy.is_file():
        return source_copy.read_text(encoding="utf-8")
    return resources.files("provision").joinpath(LAYOUT_FILE_NAME).read_text(encoding="utf-8")


def parse_layout(data: dict) -> Layout:
    entries = tuple(
        Entry(
            path=item["path"],
            kind=StatKind(item["kind"]),
            uid=int(item["uid"]),
            gid=int(item["gid"]),
            mode=int(item["mode"], 8),
            role=item.get("role"),
            required=bool(item.get("required", False)),
            secret=bool(item.get("secret", False)),
            persist=item.get("persist"),
        )
        for item in data["entries"]
    )
    user = data["user"]
    return Layout(
        version=int(data["version"]),
        label=data["label"],
        fs_type=data["fsType"],
        mount_point=data["mountPoint"],
        user_name=user["name"],
        uid=int(user["uid"]),
        gid=int(user["gid"]),
        entries=entries,
    )


@cache
def load_layout() -> Layout:
    return parse_layout(json.loads(_layout_text()))
