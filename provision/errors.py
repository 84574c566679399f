"""Exit codes and the error types that carry them.

Only cli.py turns these into messages and exit codes; everything else raises.
Messages must never contain a secret: build them from paths, counts and fingerprints.
"""

from __future__ import annotations

from enum import IntEnum
from typing import NamedTuple


class ExitCode(IntEnum):
    OK = 0
    FAILURE = 1  # something went wrong while working (appliance, I/O, drift found by --check)
    USAGE = 2  # bad flags or bad input: nothing was touched
    IMAGE_UNUSABLE = 3  # not a disk image we can seed: corrupt, encrypted, no persist partition...
    IMAGE_IN_USE = 4  # another process (a running VM) holds the image's write lock
    INTERRUPTED = 130  # Ctrl-C


class ProvisionError(Exception):
    """Base of every error the tool reports to the user without a traceback."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(ProvisionError):
    """Bad flags or bad input (a malformed key, a weak password...). Raised before the image is opened."""

    exit_code = ExitCode.USAGE


class ImageUnusableError(ProvisionError):
    """The image cannot be seeded as it is: not a disk image, truncated, encrypted, no persist partition..."""

    exit_code = ExitCode.IMAGE_UNUSABLE


class ImageInUseError(ProvisionError):
    """A running VM (or another tool) holds the image's lock."""

    exit_code = ExitCode.IMAGE_IN_USE


APPLIANCE_HINT = "run libguestfs-test-tool to diagnose libguestfs"  # the hint of most ApplianceErrors


class ApplianceError(ProvisionError):
    """The libguestfs appliance failed to start or to work."""

    exit_code = ExitCode.FAILURE


class UnsafeEntryError(ProvisionError):
    """A path inside persist is a symlink, hard link, device... where the contract wants a file or directory."""

    exit_code = ExitCode.IMAGE_UNUSABLE


SEED_STOPPED_BEFORE_WRITING = (
    "stopped by user (Ctrl-C) before anything was written: the image was not changed"
)


class Aborted(ProvisionError):
    """The person stopped the run with Ctrl-C at a question, before anything was written."""

    exit_code = ExitCode.INTERRUPTED


class Declined(ProvisionError):
    """The person answered No at the confirmation: nothing was written. An answer, not an interrupt (130 is
    for signals)."""

    exit_code = ExitCode.FAILURE


class StoppedWhileWriting(KeyboardInterrupt):
    """A second Ctrl-C while the image was being written: the run stops at once. A KeyboardInterrupt, so that
    everything on the way unwinds as for any Ctrl-C; `message` says what the image holds now."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SeededDespiteCtrlC(ProvisionError):
    """Ctrl-C came while writing; the writes were let finish, so the image was seeded. Exit 130 all the same:
    the run was interrupted, and a script should know."""

    exit_code = ExitCode.INTERRUPTED


# --------------------------------------------------------------------------------------------------
# What each exit code means, per command: the one table that every --help and README's table are made from
# (tests/test_help.py holds them to it).

COMMANDS = ("seed", "inspect", "sample-disk", "batch", "batch-report", "keys")
_IMAGE_COMMANDS = ("seed", "inspect", "batch")  # the ones that open a zvm image (batch: its --base)
# keys reports an image that cannot be used, or is in use, as a failed row (exit 1): the others go on


class ExitMeaning(NamedTuple):
    code: ExitCode
    commands: tuple[str, ...]
    words: str


EXIT_MEANINGS = (
    ExitMeaning(ExitCode.OK, COMMANDS, "done"),
    ExitMeaning(ExitCode.FAILURE, ("seed",), 'you answered no at the confirmation: nothing was written'),
    ExitMeaning(ExitCode.FAILURE, ("seed", "inspect", "sample-disk", "batch", "keys"),
                "a failure while working: the appliance, the host (a full disk, permission denied: the message "
                "names the path), a missing libguestfs binding"),
    ExitMeaning(ExitCode.FAILURE, ("seed", "keys"),
                "a key source (gh:USER, gl:USER, an https URL) could not be fetched: nothing was written"),
    ExitMeaning(ExitCode.FAILURE, ("inspect",), "with --check: the image departs from the contract"),
    ExitMeaning(ExitCode.FAILURE, ("inspect",),
                "over several images: one could not be opened (its row says why, the others are shown), or "
                "--find-key found the key in none"),
    ExitMeaning(ExitCode.FAILURE, ("keys",),
                "an image was refused (its only way in is the key removed) or failed (in use, not an image, no "
                "persist); the others are done"),
    ExitMeaning(ExitCode.FAILURE, ("keys", "inspect"),
                'a `--remove-key` or `--find-key` key that no image holds (never "unchanged")'),
    ExitMeaning(ExitCode.FAILURE, ("batch",),
                "an image failed (the others are made), or a key source could not be fetched"),
    ExitMeaning(ExitCode.FAILURE, ("batch-report",),
                "the shards do not add up: missing or duplicated rows, another manifest or shard count, an "
                "image missing or not matching its size and sha256 (nothing written); or images not complete (the "
                "report is written); or the host failed"),
    ExitMeaning(ExitCode.USAGE, COMMANDS,
                "bad usage or input (a file or folder named that does not exist included): nothing was touched"),
    ExitMeaning(ExitCode.USAGE, ("seed",), "a run that would leave no way in (no key and no usable password)"),
    ExitMeaning(ExitCode.IMAGE_UNUSABLE, _IMAGE_COMMANDS,
                "the image cannot be used: not a disk image, corrupt, encrypted, a read-only file (where it "
                "would be written), no (or several) persist partitions, unsafe entries"),
    ExitMeaning(ExitCode.IMAGE_IN_USE, ("seed", "inspect"),
                "the image is in use by another process (a running VM, or another zvm-provision on it): "
                "finish or shut it down and try again"),
    ExitMeaning(ExitCode.IMAGE_IN_USE, ("batch",),
                "another run is writing some of the same images or report files in --out-dir (the lock is per "
                "file: the shards of one roll-out share the folder): wait for it, or use another folder"),
    ExitMeaning(ExitCode.IMAGE_IN_USE, ("batch-report",), "a shard still writes in that folder"),
    ExitMeaning(ExitCode.IMAGE_IN_USE, ("keys",), "another run holds an image's lock or the --out-dir"),
    ExitMeaning(ExitCode.INTERRUPTED, ("seed",),
                "interrupted (Ctrl-C). Before writing: the image is left as it was. While writing: the writes "
                "finish and the summary is printed; a second Ctrl-C stops at once, every file old or whole"),
    ExitMeaning(ExitCode.INTERRUPTED, ("inspect",), "interrupted (Ctrl-C): inspect changes nothing"),
    ExitMeaning(ExitCode.INTERRUPTED, ("sample-disk",), "interrupted (Ctrl-C): no disk was created"),
    ExitMeaning(ExitCode.INTERRUPTED, ("batch",),
                "interrupted (Ctrl-C): finished images are kept, unfinished copies removed; run the same "
                "command again to resume"),
    ExitMeaning(ExitCode.INTERRUPTED, ("keys",),
                "interrupted (Ctrl-C): the image being written finishes, the others are left as they were"),
    ExitMeaning(ExitCode.INTERRUPTED, ("batch-report",),
                "interrupted (Ctrl-C): report.json and initial-passwords.csv are each the old file or the whole "
                "new one"),
)


def exit_codes_of(command: str) -> dict[ExitCode, str]:
    """The codes `command` can return, each with what it means there (its meanings joined by '; or ')."""
    codes: dict[ExitCode, list[str]] = {}
    for meaning in EXIT_MEANINGS:
        if command in meaning.commands:
            codes.setdefault(meaning.code, []).append(meaning.words)
    return {code: "; or ".join(words) for code, words in sorted(codes.items())}


EXIT_SUMMARY = {  # the top-level --help's short words; each command's --help says what its codes mean there
    ExitCode.OK: "done",
    ExitCode.FAILURE: 'a failure while working, drift found by inspect --check, or "no" at the confirmation',
    ExitCode.USAGE: "bad usage or input: nothing was touched",
    ExitCode.IMAGE_UNUSABLE: "the image cannot be used",
    ExitCode.IMAGE_IN_USE: "the image (or batch's --out-dir) is in use by another process",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}
