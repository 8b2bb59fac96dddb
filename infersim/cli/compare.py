"""``infersim compare``: several scenarios side by side in one table.

    infersim compare scenarios/h100-unified.yaml scenarios/h100-disaggregated.yaml
    infersim compare a.yaml b.yaml --set workload.requests=500 --json

Columns are runs; rows are TTFT/TPOT/ITL/E2EL percentiles, throughput, goodput, $ per million
input and output tokens, $ per request and joules per output token. ``--set`` and ``--seed``
apply to every scenario, so the comparison is like for like.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from infersim.cli.run import SET_HELP, parse_seed


def _unique_names(names: list[str], sources: list[str]) -> list[str]:
    """Scenario names, made unique with their file names where two share one."""
    return [f"{n} ({s})" if names.count(n) > 1 else n for n, s in zip(names, sources, strict=True)]


def register(app: typer.Typer) -> None:
    @app.command("compare")
    def compare(
        scenarios: Annotated[list[str], typer.Argument(help="scenario files or names")],
        seed: Annotated[str | None,
                        typer.Option("--seed", metavar="N", help="one seed for every scenario")]
        = None,
        sets: Annotated[list[str] | None,
                        typer.Option("--set", metavar="KEY=VALUE", help=SET_HELP)] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of a table")]
        = False,
    ) -> None:
        """Simulate scenarios and compare latency, throughput, cost and energy side by side."""
        from infersim.api import simulate
        from infersim.report.outputs import json_ready
        from infersim.report.tables import compare_rows, compare_table, plain
        from infersim.scenario import load_scenario

        seed_value = parse_seed(seed)
        loaded = [load_scenario(s, overrides=sets or (), seed=seed_value) for s in scenarios]
        summaries = [simulate(sc).summary for sc in loaded]
        names = _unique_names([sc.name for sc in loaded], list(scenarios))
        if as_json:
            typer.echo(json.dumps(json_ready(compare_rows(summaries, names)), indent=2))
        else:
            console = Console()
            table = compare_table(summaries, names)
            if not console.is_terminal:   # a pipe or a file: plain columns, wide enough
                console = Console(width=max(100, 36 + 24 * len(names)))
                table = plain(table)
            console.print(table)
