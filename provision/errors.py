"""Exit codes and the error types that carry them.

Only cli.py turns these into messages and exit codes; everything else raises.
Messages must never contain a secret: build them from paths, counts and fingerprints.
"""

from __future__ import annotations

from enum import IntEnum


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
