"""A skip never hides: every run names how many tests it skipped and why (tests/support/skipsummary.py), and
scripts/test.sh closes with one line over all of its passes (scripts/skipline.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

INNER = '''
import pytest

@pytest.fixture
def missing_input():
    pytest.skip("the inputs are missing")

def test_a(missing_input): pass
def test_b(missing_input): pass

@pytest.mark.skipif(True, reason="no KVM here")
def test_c(): pass

def test_d(): pytest.skip("the inputs are missing")
def test_e(): pass
'''


def test_a_run_prints_its_skips_grouped_by_reason_and_logs_them(pytester: pytest.Pytester, tmp_path, monkeypatch):
    log = tmp_path / "skips.jsonl"
    monkeypatch.setenv("ZVM_SKIP_LOG", str(log))
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest("-p", "tests.support.skipsummary", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, skipped=4)
    result.stdout.fnmatch_lines(["skipped: 4 tests (3 because the inputs are missing; 1 because no KVM here)"])
    assert json.loads(log.read_text()) == {"the inputs are missing": 3, "no KVM here": 1}


def test_a_run_without_skips_says_zero(pytester: pytest.Pytester, monkeypatch):
    monkeypatch.delenv("ZVM_SKIP_LOG", raising=False)
    pytester.makepyfile(test_inner="def test_x(): pass\n")
    result = pytester.runpytest("-p", "tests.support.skipsummary", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["skipped: 0 tests"])


def _closing_line(log: Path) -> str:
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "skipline.py"), str(log)],
                          capture_output=True, text=True, check=True)
    assert done.stdout.count("\n") == 1
    return done.stdout.strip()


def test_the_closing_line_adds_every_pass_up(tmp_path):
    log = tmp_path / "skips.jsonl"
    log.write_text(json.dumps({"nix inputs missing": 111, "no KVM": 1}) + "\n" + json.dumps({"no KVM": 2}) + "\n")
    assert _closing_line(log) == "skipped: 114 tests over 2 pytest runs (111 because nix inputs missing; 3 because no KVM)"


def test_the_closing_line_says_when_no_run_got_to_its_summary(tmp_path):
    assert _closing_line(tmp_path / "absent.jsonl") == "skipped: unknown (no test run reached its summary)"


def test_test_sh_ends_with_the_line_even_when_a_test_fails(tmp_path):
    inner = tmp_path / "test_inner.py"
    inner.write_text("import pytest\n"
                     "def test_fails(): assert False\n"
                     "def test_skips(): pytest.skip('no KVM here')\n")
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "test.sh"), "-n", "0", "-p", "tests.support.skipsummary",
         "-p", "no:cacheprovider", "-q", str(inner)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "skipped: 1 test over 1 pytest run (1 because no KVM here)"
