"""The data of a batch run, shared by its steps: the options, one result per user, the whole result, where the
files go, how progress is told, and what a failure of one image says."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from provision.commands.certoptions import CertFlags
from provision.core.credentials.sshkeys import AuthorizedKey, key_summary
from provision.core.outputformat import OutputRecord, OutputSpec
from provision.core.manifest import Manifest, User
from provision.core.rowdigest import DIGEST_FIELD
from provision.describe import describe
from provision.guest.launch import Accel

MAX_DISKS_PER_APPLIANCE = 24  # 20 disks launch in ~29 s under TCG; more per handle only lengthens one chain
PASSWORDS_FILE = "initial-passwords.csv"
REPORT_FILE = "report.json"
LOCK_FILE = ".zvm-provision-batch.lock"


@dataclass(frozen=True)
class BatchOptions:
    manifest: Path
    base: Path
    out_dir: Path
    overlay: bool = False
    jobs: int = 0  # 0: automatic
    shard: tuple[int, int] | None = None
    force: bool = False
    accel: Accel = "auto"
    max_disks: int = MAX_DISKS_PER_APPLIANCE
    output: OutputSpec = OutputSpec()  # --format, --compress
    operator: str | None = None  # who runs the batch, for each image's seeding record
    update_signers: tuple[AuthorizedKey, ...] | None = None  # --update-signer, for every image (None: none given)
    debug: bool = False  # --debug (or ZVM_PROVISION_DEBUG=1): a failed image's traceback goes to stderr
    certs: CertFlags = CertFlags()  # --host-ca... for every image: each host key signed, the user CAs seeded


class UserStatus(StrEnum):
    PENDING = "pending"
    SEEDED = "seeded"
    SKIPPED = "skipped"  # an existing image was already complete
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # Ctrl-C came first


@dataclass
class UserResult:
    user: User
    image: Path
    status: UserStatus = UserStatus.PENDING
    error: str | None = None
    redone: str | None = None  # why an existing image was made again
    password_generated: bool = False
    authorized_keys: tuple[AuthorizedKey, ...] = ()
    host_key: dict[str, str | None] | None = None  # type, fingerprint, known_hosts
    machine_id: str | None = None
    netbird_setup_key: bool = False
    netbird_management_url: str | None = None
    output: OutputRecord | None = None  # format, size, sha256 of the image under its final name
    host_certificate: dict[str, Any] | None = None  # serial, principals, the @cert-authority line (--host-ca)
    row_digest: str | None = None  # what the row asks, keyed (core.rowdigest): never a secret

    def to_json(self, overlay: bool, base: Path) -> dict[str, Any]:
        """This user's entry in report.json: no secret, no exception's text."""
        return {
            "name": self.user.name,
            "image": str(self.image),
            "status": self.status,
            "error": self.error,
            "redone": self.redone,
            "overlay_of": str(base) if overlay else None,
            "password": "generated" if self.password_generated else "given",
            "authorized_keys": [key_summary(key) for key in self.authorized_keys],
            "host_key": self.host_key,
            "machine_id": self.machine_id,
            "netbird_setup_key_given": self.netbird_setup_key,
            "netbird_management_url": self.netbird_management_url,
            **OutputRecord.json_fields(self.output),  # what a recipient verifies a download against
            "hostname": self.user.hostname,
            "host_certificate": self.host_certificate,
            DIGEST_FIELD: self.row_digest,
        }


@dataclass
class BatchResult:
    options: BatchOptions
    manifest: Manifest
    results: list[UserResult]
    report_path: Path
    passwords_path: Path | None
    seconds: float = 0.0

    def count(self, status: UserStatus) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def failed(self) -> list[UserResult]:
        return [r for r in self.results if r.status == UserStatus.FAILED]


class BatchProgress(Protocol):
    """What a run tells while it works (ui.progress draws it: plain lines, or a live status on a terminal)."""

    def start(self, total: int) -> None: ...  # `total` images are about to be made
    def note(self, message: str) -> None: ...
    def say(self, text: str) -> None: ...  # as it is, not a line of the run's: a launch's notice, a traceback
    def phase(self, launch: int | None, text: str) -> None: ...  # what one launch (None: the run) does now
    def phase_done(self, launch: int | None) -> None: ...
    def finished(self, name: str, ok: bool, detail: str = "") -> None: ...
    def stop(self) -> None: ...


def report_name(shard: tuple[int, int] | None) -> str:
    """report.json for a whole manifest; report-K-of-N.json for a shard, so shards sharing a folder each write
    their own (batch-report merges them into report.json)."""
    return REPORT_FILE if shard is None else f"report-{shard[0]}-of-{shard[1]}.json"


def passwords_name(shard: tuple[int, int] | None) -> str:
    """initial-passwords.csv, or initial-passwords-K-of-N.csv for a shard (batch-report merges them)."""
    return PASSWORDS_FILE if shard is None else f"initial-passwords-{shard[0]}-of-{shard[1]}.csv"


def image_path(out_dir: Path, user: User, output: OutputSpec) -> Path:
    """The user's image under its final name: DIR/<name>.qcow2 (.raw, .vmdk, .vdi with --format)."""
    return out_dir / f"{user.name}{output.suffix}"


def describe_failure(exc: BaseException, progress: BatchProgress, *, debug: bool) -> str:
    """What the report and the screen say about a failure (describe's words for a report: never an exception's
    own text); with `debug` (--debug) an unexpected error's traceback is told through `progress`, at once."""
    description = describe(exc, debug)
    if description.unexpected and description.traceback:
        progress.say(description.traceback.rstrip("\n"))
    return description.recorded
