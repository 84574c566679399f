"""The suite keeps away from the real home: conftest.py gives every test its own HOME and XDG_CACHE_HOME (the
accel verdict is cached there), and a `python -m provision` run started by a test inherits them."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.command import command_env

CONFTEST = (Path(__file__).parent / "conftest.py").read_text()
REAL_HOME = pwd.getpwuid(os.getuid()).pw_dir


def test_a_test_runs_in_a_home_and_cache_of_its_own():
    home = Path(os.environ["HOME"])
    assert home != Path(REAL_HOME) and home.is_dir() and not any(home.iterdir())
    assert os.environ["XDG_CACHE_HOME"] == str(home / ".cache")


def test_a_command_run_caches_its_accel_verdict_in_the_test_home():
    """What provision itself computes in a child process, with the environment every test helper gives it."""
    result = subprocess.run(
        [sys.executable, "-c", "from provision.guest.watchdog import cache_file; print(cache_file())"],
        env=command_env(), capture_output=True, text=True, timeout=120, check=True,
    )
    assert Path(result.stdout.strip()) == Path(os.environ["HOME"]) / ".cache" / "zvm-provision" / "accel.json"


def test_each_test_and_the_session_fixtures_get_their_own_home(pytester: pytest.Pytester):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_inner="""
        import os
        import pytest

        @pytest.fixture(scope="module")
        def module_home():
            return os.environ["HOME"]

        def test_one(module_home):
            print("HOME", "one", module_home, os.environ["HOME"])

        def test_two(module_home):
            print("HOME", "two", module_home, os.environ["HOME"])
    """)
    result = pytester.runpytest("-s", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    seen = re.findall(r"HOME (one|two) (\S+) (\S+)", result.stdout.str())
    assert [name for name, *_ in seen] == ["one", "two"], result.outlines
    module_homes = {module for _, module, _ in seen}
    test_homes = {home for *_, home in seen}
    assert len(module_homes) == 1 and len(test_homes) == 2 and not module_homes & test_homes
    assert REAL_HOME not in module_homes | test_homes and os.environ["HOME"] not in module_homes | test_homes
