"""Output fitted to the terminal: wrapped at word boundaries, never inside a word; lines to copy left whole;
the wizard's refusal under a prompt shown whole on an 80-column terminal (prompt_toolkit on a pipe, rendering
as it does on a terminal of that size)."""

from __future__ import annotations

import io
import os
import re
import sys
import threading
from pathlib import Path

import pytest

from provision.ui import screen
from provision.ui.questions import Choice, Kind, Prompt
from provision.ui.wizard import QUESTIONS, QuestionaryPrompter
from tests.support.keyfactory import public_line

PROSE = ("Starting the libguestfs appliance to look inside (read-only until you confirm); meanwhile, the "
         "questions that do not depend on what the image holds.")
KNOWN_HOSTS = "  zvm-alice ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHM7QlHStxL+IFiWw0vglZjCepP9+38AVzZtxPatAIPi"


@pytest.mark.parametrize("width", [40, 60, 80])
def test_prose_is_wrapped_at_word_boundaries_within_the_width(width):
    fitted = screen.fit(PROSE, width).splitlines()
    assert all(len(line) <= width for line in fitted), fitted
    assert " ".join(line.strip() for line in fitted) == PROSE  # every word whole, none lost


def test_an_indented_row_continues_deeper_and_a_short_line_is_untouched():
    row = "  create   file /etc/ssh/ssh_host_ed25519_key      0:0      0600  new ed25519 SHA256:" + "Q" * 43
    first, second = screen.fit(row, 80).splitlines()
    assert first == "  create   file /etc/ssh/ssh_host_ed25519_key      0:0      0600  new ed25519"
    assert second == "    SHA256:" + "Q" * 43
    assert screen.fit("  short  row", 80) == "  short  row"


def test_a_line_to_copy_is_left_whole():
    assert screen.fit(KNOWN_HOSTS, 40) == KNOWN_HOSTS
    command = "A recipient checks a download with: echo 'abc  disk.qcow2' | sha256sum -c"
    assert screen.fit(command, 40) == command


def test_the_width_is_the_terminals_and_nothing_changes_without_one(monkeypatch):
    monkeypatch.setenv("COLUMNS", "50")
    assert all(len(line) <= 50 for line in screen.fit(PROSE).splitlines())
    assert screen.fit_for(io.StringIO(), PROSE) == PROSE  # a pipe or a file: as it is, for scripts


def test_a_key_choice_and_the_answer_are_shown_whole_at_80_columns():
    """A key's title (path, fingerprint, comment) is longer than the checklist's line: questionary cut it at the
    80th column, in the list and in the answer written after the question."""
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output.vt100 import Vt100_Output

    title = "~/.ssh/id_ed25519.pub  256 SHA256:2hyBTOfa+1UpW+HAjx2mG1VU8HbOTggtyRBToLMVyfU me@laptop (ED25519)"
    prompt = Prompt("ssh_keys", Kind.CHECKBOX, "SSH public keys to let in as zvm (space toggles, enter accepts):",
                    choices=(Choice("file", title, checked=True), Choice("paste", "Paste a public key")))
    written = io.StringIO()
    output = Vt100_Output(written, lambda: Size(rows=30, columns=80), term="xterm")
    with create_pipe_input() as keys, create_app_session(input=keys, output=output):
        keys.send_text("\r")
        assert QuestionaryPrompter()(prompt) == ["file"]
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-B]", "", written.getvalue())
    # prompt_toolkit never writes past the 80th column: what it cut is missing from the output altogether
    assert "SHA256:2hyBTOfa+1UpW+HAjx2mG1VU8HbOTggtyRBToLMVyfU me@laptop (ED25519)" in shown  # the list
    assert "me@laptop (ED25519)]" in shown  # the answer, in brackets after the question


def test_a_refusal_under_a_prompt_is_shown_whole_at_80_columns():
    """The hostname rule is longer than a line: prompt_toolkit's validation bar cut it at the 80th column."""
    from prompt_toolkit.application import create_app_session
    from prompt_toolkit.data_structures import Size
    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output.vt100 import Vt100_Output

    hostname = next(q for q in QUESTIONS if q.name == "hostname")
    refusal = hostname.validate("Bad_Name", None)
    assert isinstance(refusal, str) and len(refusal) > 80
    prompt = Prompt("hostname", Kind.TEXT, "The VM's name:", default="",
                    validate=lambda value: hostname.validate(value, None))
    written = io.StringIO()
    output = Vt100_Output(written, lambda: Size(rows=30, columns=80), term="xterm")
    seen = threading.Event()
    words = refusal.split()

    def shown() -> str:
        return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][0-9A-B]|[\r\n]", " ", written.getvalue())

    with create_pipe_input() as keys, create_app_session(input=keys, output=output):
        keys.send_text("Bad_Name\r")

        def correct_once_refused() -> None:  # waits for the screen, not for a time
            for _ in range(3000):
                if words[-1] in shown():
                    seen.set()
                    break
                threading.Event().wait(0.01)
            keys.send_text("\x7f" * 8 + "zvm-bob\r")

        helper = threading.Thread(target=correct_once_refused)
        helper.start()
        answer = QuestionaryPrompter()(prompt)
        helper.join()
    assert answer == "zvm-bob"
    assert seen.is_set(), shown()
    assert all(word in shown() for word in words), shown()


pexpect = pytest.importorskip("pexpect")


@pytest.mark.tty
def test_an_error_on_an_80_column_terminal_breaks_at_word_boundaries_only(tmp_path):
    """The real command on a pseudo-terminal 80 columns wide (no COLUMNS: the terminal's own width)."""
    repo = Path(__file__).resolve().parents[2]
    key = tmp_path / "id.pub"
    key.write_text(public_line() + "\n")
    (tmp_path / "disk.qcow2").write_bytes(b"")  # it exists: a missing image would be reported first
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "ZVM_PROVISION_DEBUG")}
    env.update(PYTHONPATH=str(repo), ZVM_PROVISION_ACCEL="tcg", TERM="xterm")
    child = pexpect.spawn(sys.executable, ["-m", "provision", "seed", str(tmp_path / "disk.qcow2"), "--no-password",
                                           "--ssh-key", str(key), "--hostname", "Bad_Name"],
                          env=env, cwd=str(tmp_path), encoding="utf-8", dimensions=(30, 80), timeout=60)
    child.expect(pexpect.EOF)
    child.close()
    text = child.before.replace("\r\n", "\n")
    assert child.exitstatus == 2, text
    lines = [line for line in text.splitlines() if line]
    assert len(lines) > 1 and all(len(line) <= 80 for line in lines), lines
    joined = " ".join(line.strip() for line in lines)
    assert "not starting or ending with a hyphen" in joined, joined  # words whole across the breaks
