"""Every --help as a person reads it in an 80-column terminal, and the exit codes it promises: each command's
own, from the one table in provision/errors.py, which README's table repeats. typer's CliRunner: no
subprocess is needed to render help."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from provision.cli import app
from provision.errors import COMMANDS, EXIT_MEANINGS, ExitCode, exit_codes_of

README = Path(__file__).resolve().parents[1] / "README.md"


def help_text(*command: str, columns: int = 80) -> str:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": str(columns)},
                                prog_name="zvm-provision")
    assert result.exit_code == 0, result.output
    return result.output


def exit_code_block(text: str) -> dict[int, str]:
    """The `Exit codes:` block of a --help, each code's words unwrapped into one line."""
    block = text.split("Exit codes:\n", 1)[1]
    codes: dict[int, str] = {}
    for line in block.splitlines():
        if match := re.match(r"^    (\d+) +(.*)$", line):
            current = int(match.group(1))
            codes[current] = match.group(2)
        elif line.startswith(" " * 9) and codes:
            codes[current] += " " + line.strip()
        else:
            break
    return codes


@pytest.mark.parametrize("command", [(), *((c,) for c in COMMANDS)], ids=["top", *COMMANDS])
@pytest.mark.parametrize("columns", [80, 100, 200])
def test_every_help_fits_an_80_column_terminal(command, columns):
    lines = help_text(*command, columns=columns).splitlines()
    too_wide = [line for line in lines if len(line) > 80]
    assert not too_wide, too_wide
    broken = [line for line in lines if re.search(r"[A-Za-z]-$", line)]  # `machine-` / `id` on the next line
    assert not broken, broken
    assert not any("\u2011" in line for line in lines)  # the formatter's unbreakable hyphen is written back


@pytest.mark.parametrize("command", COMMANDS)
def test_each_help_lists_exactly_its_own_exit_codes_from_errors_py(command):
    shown = exit_code_block(help_text(command))
    assert shown == {int(code): words for code, words in exit_codes_of(command).items()}


def test_each_command_returns_only_its_own_codes():
    """The generic table is gone: inspect asks nothing, seed has no --out-dir, batch's Ctrl-C keeps images."""
    assert "confirmation" not in help_text("inspect").split("Exit codes:")[1]
    assert "--out-dir" not in help_text("seed").split("Exit codes:")[1]
    batch_130 = exit_code_block(help_text("batch"))[130]
    assert "finished images are kept" in batch_130 and "the summary is printed" not in batch_130
    assert ExitCode.IMAGE_UNUSABLE not in exit_codes_of("sample-disk")


def test_readme_exit_code_table_is_the_one_in_errors_py():
    text = README.read_text(encoding="utf-8")
    section = text.split("### Exit codes", 1)[1].split("\n\n", 2)[1]
    rows = set()
    for line in section.splitlines()[2:]:
        code, commands, words = (cell.strip() for cell in line.strip("|").split(" | "))
        named = tuple(COMMANDS) if commands == "all" else tuple(c.strip("` ") for c in commands.split(","))
        rows.add((int(code), named, words))
    assert rows == {(int(m.code), m.commands, m.words) for m in EXIT_MEANINGS}
    assert {int(code) for code in ExitCode} == {row[0] for row in rows}


def test_top_level_help_names_every_code_and_every_command_in_one_line():
    text = help_text()
    assert set(exit_code_block(text)) == {int(code) for code in ExitCode}
    listed = text.split("Commands:\n", 1)[1].splitlines()
    summaries = {line.split()[0]: line.split(None, 1)[1] for line in listed if line.startswith("  ")}
    assert set(summaries) == set(COMMANDS)
    for name, summary in summaries.items():  # one line, a whole sentence: typer cut none of them with '...'
        assert summary.endswith(".") and not summary.endswith("..."), (name, summary)


@pytest.mark.parametrize(("command", "usage", "argument"), [
    ("seed", "Usage: zvm-provision seed [OPTIONS] IMAGE", "  IMAGE  "),
    ("inspect", "Usage: zvm-provision inspect [OPTIONS] IMAGE...", "  IMAGE...  "),
    ("sample-disk", "Usage: zvm-provision sample-disk [OPTIONS] OUT", "  OUT  "),
    ("batch", "Usage: zvm-provision batch [OPTIONS] MANIFEST", "  MANIFEST  "),
    ("batch-report", "Usage: zvm-provision batch-report [OPTIONS] DIR...", "  DIR...  "),
    ("keys", "Usage: zvm-provision keys [OPTIONS] IMAGE...", "  IMAGE...  "),
])
def test_usage_and_arguments_name_them_as_a_person_reads_them(command, usage, argument):
    text = help_text(command)
    assert text.splitlines()[0] == usage
    assert any(line.startswith(argument) for line in text.splitlines()), text
    for internal in ("{", "<str>", "<path>", "<int>", "list[", "<list"):
        assert internal not in text, (internal, text)
