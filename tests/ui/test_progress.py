"""ui.progress's `say`: what guest/ and commands/ tell while they work reaches stderr through ui, as it is."""

from __future__ import annotations

import io

from provision.ui import progress

TRACE = "Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\nRuntimeError: boom"


def test_say_writes_the_text_as_it_is_on_stderr_at_once(capsys):
    progress.say("zvm-provision: KVM did not answer within 60 s; using software emulation (TCG) instead")
    assert capsys.readouterr() == ("", "zvm-provision: KVM did not answer within 60 s; using software emulation "
                                       "(TCG) instead\n")


def test_a_batch_progress_says_a_text_without_its_own_prefix():
    stream = io.StringIO()
    lines = progress.Progress(stream, name="keys")
    lines.note("launch 1: starting")
    lines.say(TRACE)
    assert stream.getvalue() == f"keys: launch 1: starting\n{TRACE}\n"


def test_the_live_status_says_a_text_above_it_as_it_is():
    from rich.console import Console

    out = io.StringIO()
    live = progress.RichProgress(console=Console(file=out, width=200, force_terminal=False))
    live.start(2)
    live.say(TRACE)
    live.stop()
    assert TRACE in out.getvalue() and "batch:" not in out.getvalue()


def test_the_live_bar_of_a_fleet_inspect_counts_images_read_not_made():
    from rich.console import Console

    for name, words in (("inspect", "images read"), ("batch", "images made"), ("keys", "images done")):
        out = io.StringIO()
        live = progress.RichProgress(console=Console(file=out, width=120, force_terminal=True, color_system=None),
                                     name=name)
        live.start(2)
        live.finished("alice.qcow2", True)
        live.stop()
        screen = out.getvalue()
        assert f"{words} (last: alice.qcow2)" in screen, (name, screen)
        assert name == "batch" or "images made" not in screen
