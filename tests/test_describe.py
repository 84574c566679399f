"""describe(exc, debug): the words for any failure, shared by the top-level handler and batch. Text only."""

from __future__ import annotations

import errno

import pytest

from provision.describe import describe
from provision.errors import ExitCode, ImageInUseError, UsageError

SENTINEL = "SENTINEL-a-file's-content"
INTERNAL = "internal error ({}); run again with --debug to see where"


def raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - a traceback to describe
        return caught


@pytest.mark.parametrize(("exc", "message", "hint", "code", "recorded", "unexpected"), [
    (UsageError("no such flag"), "no such flag", None, ExitCode.USAGE, "no such flag", False),
    (ImageInUseError("in use", hint="shut it down"), "in use", "shut it down", ExitCode.IMAGE_IN_USE, "in use", False),
    (OSError(errno.ENOSPC, "No space left on device", "/out/a.qcow2"), "/out/a.qcow2: No space left on device",
     "free some space on that disk, then run the same command again", ExitCode.FAILURE,
     "host error: No space left on device", False),
    (OSError(errno.EXDEV, "Invalid cross-device link", "/a", None, "/b"), "/a -> /b: Invalid cross-device link",
     None, ExitCode.FAILURE, "host error: Invalid cross-device link", False),
    (OSError(SENTINEL), f"on the host: {SENTINEL}", None, ExitCode.FAILURE, INTERNAL.format("OSError"), True),
    (ModuleNotFoundError("No module named 'guestfs'", name="guestfs"),
     "the libguestfs Python binding (module guestfs) is not installed", "on Debian: apt-get install "
     "python3-guestfs, and make the virtual environment with --system-site-packages (scripts/install.sh does both)",
     ExitCode.FAILURE, INTERNAL.format("ModuleNotFoundError"), True),
    (KeyboardInterrupt(), "stopped by user (Ctrl-C)", None, ExitCode.INTERRUPTED, INTERNAL.format("KeyboardInterrupt"),
     True),
    (KeyError(SENTINEL), INTERNAL.format("KeyError"), None, ExitCode.FAILURE, INTERNAL.format("KeyError"), True),
])  # fmt: skip
def test_the_words_for_each_kind_of_failure(exc, message, hint, code, recorded, unexpected):
    said = describe(exc, False)
    assert (said.message, said.hint, said.exit_code) == (message, hint, code)
    assert (said.recorded, said.unexpected, said.traceback) == (recorded, unexpected, None)
    assert SENTINEL not in said.recorded  # a report never keeps an exception's own text


def test_debug_adds_the_traceback_as_text_and_prints_nothing(capsys):
    said = describe(raised(RuntimeError(SENTINEL)), True)
    assert said.traceback is not None and said.traceback.startswith("Traceback (most recent call last):")
    assert said.traceback.endswith(f"RuntimeError: {SENTINEL}\n") and "raised" in said.traceback
    assert said.message == INTERNAL.format("RuntimeError")  # the message itself never holds the text
    assert capsys.readouterr() == ("", "")
