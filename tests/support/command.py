"""Running the command: `python -m provision` in a process of its own, or main() in this one.

A subprocess where the test is about the process (its exit on a signal, a terminal, Ctrl-C, the environment
it starts in, the real entry point); in_process for the rest, which skips a Python start-up per run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from typer.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]


def command_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a run gets: this process's (the test's own HOME and XDG_CACHE_HOME included, see
    tests/conftest.py), without ZVM_PROVISION_DEBUG (a traceback would change what the tests read), with
    software emulation (nested KVM hangs here) and this checkout first on PYTHONPATH; then `extra`, which
    wins (PATH, LIBGUESTFS_HV, a PYTHONPATH of its own...)."""
    env = {k: v for k, v in os.environ.items() if k != "ZVM_PROVISION_DEBUG"}
    env.update(ZVM_PROVISION_ACCEL="tcg", PYTHONPATH=str(REPO))
    env.update(extra or {})
    return env


def zvm(*args: str | Path, stdin: bytes | str = b"", env: Mapping[str, str] | None = None,
        cwd: Path | None = None, stdout: int | object = subprocess.PIPE, timeout: float = 900,
        ) -> subprocess.CompletedProcess[str]:
    """`python -m provision ARGS` with command_env(env); stdout and stderr as text (newlines kept as sent)."""
    data = stdin.encode() if isinstance(stdin, str) else stdin
    result = subprocess.run(
        [sys.executable, "-m", "provision", *map(str, args)], input=data, stdout=stdout,
        stderr=subprocess.PIPE, env=command_env(env), cwd=cwd, timeout=timeout, check=False,
    )
    return subprocess.CompletedProcess(result.args, result.returncode, (result.stdout or b"").decode(),
                                       result.stderr.decode())


def in_process(*args: str | Path, stdin: bytes | str = b"", env: Mapping[str, str] | None = None,
               ) -> subprocess.CompletedProcess[str]:
    """provision.cli.main(ARGS) in this process, as `python -m provision` runs it (the same error handler and
    exit codes), with stdin, stdout and stderr captured (none is a terminal) and `env` set for the run on top
    of command_env()'s changes. The working folder is the test's (monkeypatch.chdir to move it)."""
    from provision.cli import main

    argv = [str(a) for a in args]
    changes: dict[str, str | None] = {"ZVM_PROVISION_DEBUG": None, "ZVM_PROVISION_ACCEL": "tcg"}
    changes.update(env or {})
    with CliRunner().isolation(input=stdin, env=changes) as (out, err, _):
        try:
            main(argv)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        sys.stdout.flush()
        sys.stderr.flush()
        return subprocess.CompletedProcess(["zvm-provision", *argv], code, out.getvalue().decode(),
                                           err.getvalue().decode())
