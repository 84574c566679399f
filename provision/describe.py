"""The words for any failure, said once: what the top-level handler (cli.report_error) and batch, for a failed
image, say of it. Text only; the caller decides where it goes (stderr, a report).

The tool's own errors carry messages written for a person. Any other exception's text could hold anything (a
path, part of a file), so a report keeps only its kind (a host error by its errno), and its traceback is there
only with `debug` (--debug, ZVM_PROVISION_DEBUG=1).
"""

from __future__ import annotations

import errno
import os
import traceback
from dataclasses import dataclass

from provision.errors import ExitCode, ProvisionError


@dataclass(frozen=True)
class Description:
    message: str  # what the screen says (a host error names its paths, never a file's content)
    hint: str | None
    exit_code: ExitCode
    recorded: str  # what a report keeps (batch's report.json): never an exception's own text
    unexpected: bool  # neither the tool's own error nor a host error by its errno: a bug, or worse
    traceback: str | None  # with debug: the whole traceback, as Python prints it


def describe(exc: BaseException, debug: bool) -> Description:
    trace = "".join(traceback.format_exception(exc)) if debug else None
    internal = f"internal error ({type(exc).__name__}); run again with --debug to see where"
    host = f"host error: {os.strerror(exc.errno)}" if isinstance(exc, OSError) and exc.errno else None
    if isinstance(exc, ProvisionError):
        return Description(exc.message, exc.hint, exc.exit_code, exc.message, False, trace)
    if isinstance(exc, ImportError) and (exc.name or "").split(".")[0] == "guestfs":
        hint = ("on Debian: apt-get install python3-guestfs, and make the virtual environment with "
                "--system-site-packages (scripts/install.sh does both)")
        return Description("the libguestfs Python binding (module guestfs) is not installed", hint,
                           ExitCode.FAILURE, internal, True, trace)
    if isinstance(exc, KeyboardInterrupt):
        return Description("stopped by user (Ctrl-C)", None, ExitCode.INTERRUPTED, internal, True, trace)
    if isinstance(exc, OSError):
        return Description(describe_os_error(exc), os_error_hint(exc), ExitCode.FAILURE, host or internal,
                           host is None, trace)
    return Description(internal, None, ExitCode.FAILURE, internal, True, trace)  # a bug: say so, no more


def describe_os_error(exc: OSError) -> str:
    """`path: reason`, as the host said it (a host error names paths, never a file's content)."""
    reason = exc.strerror or str(exc)
    if exc.filename is None:
        return f"on the host: {reason}"
    if exc.filename2 is not None:
        return f"{exc.filename} -> {exc.filename2}: {reason}"
    return f"{exc.filename}: {reason}"


def os_error_hint(exc: OSError) -> str | None:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space on that disk, then run the same command again"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "check that you may write there (owner, mode, a read-only mount)"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "check the path: every folder on the way must exist"
    return None
