"""``infersim report``: one self-contained HTML page for a run or plan folder.

    infersim report runs/h100-unified        # writes runs/h100-unified/report.html
    infersim report runs/chat-plan

``infersim run`` and ``infersim plan`` write the same page into their output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console


def register(app: typer.Typer) -> None:
    @app.command("report")
    def report(
        folder: Annotated[Path, typer.Argument(help="a run folder (summary.json) or a plan "
                                                    "folder (plan.json)")],
    ) -> None:
        """Write report.html: summary, SLO verdicts and plots; for plans, the per-chip table."""
        from infersim.report.html import write_report

        path = write_report(folder)
        Console(stderr=True).print(f"wrote {path}", highlight=False)
