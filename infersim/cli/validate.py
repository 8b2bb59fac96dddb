"""``infersim validate``: check a scenario without running it.

Runs every check ``infersim run`` makes before simulating (the two share
:func:`infersim.scenario.build.prepare_run`): the schema (types, units, bounds, unknown keys),
that the chips and the model exist, that the model fits each pool's instance (and if not, how many chips it needs), that every prefill pool
can ship KV cache to every decode pool (a link or a shared scale-up domain), that a scale-up
domain holds no more chips than one rack has, and that the workload builds (a trace file exists
and has rows). Prints one line per pool on success, and a warning where some requests are longer
than a decode instance's KV cache or than the model's context window; one error line and exit
status 2 otherwise.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from infersim.cli.run import SET_HELP, parse_seed


def register(app: typer.Typer) -> None:
    @app.command("validate")
    def validate(
        scenario: Annotated[str, typer.Argument(help="scenario file or shipped name")],
        seed: Annotated[str | None,
                        typer.Option("--seed", metavar="N", help="replace the scenario's seed")]
        = None,
        sets: Annotated[list[str] | None,
                        typer.Option("--set", metavar="KEY=VALUE", help=SET_HELP)] = None,
    ) -> None:
        """Check a scenario (schema, chips, model fit, links, workload) without simulating."""
        from infersim.scenario import load_scenario
        from infersim.scenario.build import prepare_run
        from infersim.scenario.preflight import oversized_requests

        loaded = load_scenario(scenario, overrides=sets or (), seed=parse_seed(seed))
        prepared = prepare_run(loaded)  # every check infersim run makes before simulating
        resolved, workload = prepared.resolved, prepared.workload
        requests = len(workload)
        console = Console(highlight=False, soft_wrap=True)
        console.print(f"ok: {loaded.name} (scenario {loaded.hash}, seed {loaded.seed}): "
                      f"{resolved.model.name}, {requests:,} requests")
        for name, pool in loaded.pools.items():
            place = resolved.placements[name]
            console.print(f"  pool {name}: {pool.role}, {pool.instances} × {pool.tp * pool.pp} "
                          f"{resolved.hardware[name].name}, KV room for "
                          f"{place.kv_capacity_tokens:,} tokens per instance")
        for name, count in oversized_requests(loaded, resolved, workload).items():
            if count:
                console.print(f"  warning: {count:,} of {requests:,} requests need more KV cache "
                              f"than one {name} instance holds; the engine will reject them",
                              style="yellow")
        for line in prepared.warnings:
            console.print(f"  warning: {line}", style="yellow")
