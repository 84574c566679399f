"""inspect's human report as plain text, through the product's own print_report (the rich tables inspect
prints), on a console that writes into a string: no colours, a fixed width."""

from __future__ import annotations

import io

from rich.console import Console

from provision.core.inspection import InspectReport
from provision.ui.render_inspect import print_report


def render_text(report: InspectReport, *, width: int = 110) -> str:
    buffer = io.StringIO()
    print_report(report, Console(file=buffer, width=width, color_system=None, force_terminal=False,
                                 highlight=False, emoji=False))
    return buffer.getvalue()
