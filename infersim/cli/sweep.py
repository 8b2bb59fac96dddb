"""``infersim sweep``: run a grid of scenario overrides on local cores or a Ray cluster.

    infersim sweep scenarios/default.yaml --grid workload.arrival.rate=5,10,20 \\
        --grid pools.decode.instances=2,4 --seeds 3 --out runs/sweep
    infersim sweep sweep.yaml --backend ray --address ray://head:10001

Each finished run is stored under ``OUT/runs/<hash>.json``; a rerun (or a larger grid in the same
folder) simulates only what is missing. On a Ray cluster every node needs infersim installed, the
same version as here; the scenario file itself travels with each task.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from infersim.errors import InfersimError
from infersim.plan.executors import BACKENDS, make_executor
from infersim.plan.runner import SimulatorRunner, load
from infersim.plan.sweep import (
    SweepSpec,
    load_sweep_file,
    make_spec,
    parse_grid_option,
    parse_set_option,
    run_sweep,
)
from infersim.report.save import check_writable_folder

# Columns shown in the terminal table after the sweep (all metrics go to the files).
SHOWN_METRICS = ("completed", "request_throughput", "output_throughput", "p99_ttft_ms",
                 "p99_itl_ms", "request_goodput")


def _is_sweep_file(path: str) -> bool:
    """A sweep file is a YAML mapping with a ``grid:`` key; anything else is a scenario."""
    candidate = Path(path)
    if not candidate.is_file():
        return False
    try:
        data = yaml.safe_load(candidate.read_text())
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and "grid" in data


def build_spec(source: str, grid: list[str], sets: list[str], seeds: int | None,
               seed: int | None) -> SweepSpec:
    extra_grid = [parse_grid_option(item) for item in grid]
    fixed = [parse_set_option(item) for item in sets]
    if _is_sweep_file(source):
        base = load_sweep_file(source)
        return make_spec(base.scenario, [*base.grid, *extra_grid],
                         replicas=seeds if seeds is not None else base.replicas,
                         base_seed=seed if seed is not None else base.base_seed,
                         fixed=[*base.fixed, *fixed], source=None)
    if not extra_grid:
        raise InfersimError(field="--grid", expected="at least one --grid KEY=V1,V2 (or a sweep "
                            "file with grid:)", given="none")
    return make_spec(source, extra_grid, replicas=seeds or 1, base_seed=seed, fixed=fixed)


def register(app: typer.Typer) -> None:
    @app.command("sweep")
    def sweep(
        source: Annotated[str, typer.Argument(help="a scenario (file or name) or a sweep YAML "
                                                   "(scenario:, grid:, seeds:, set:)")],
        grid: Annotated[list[str] | None, typer.Option(
            "--grid", "-g", help="KEY=V1,V2,...: a field path and its values; repeat for a "
                                 "cross product")] = None,
        sets: Annotated[list[str] | None, typer.Option(
            "--set", help="KEY=VALUE applied to every run; repeatable")] = None,
        seeds: Annotated[str | None, typer.Option(
            "--seeds", help="replicas per grid point, each with its own derived seed")] = None,
        seed: Annotated[str | None, typer.Option(
            "--seed", help="base seed (default: the scenario's)")] = None,
        out: Annotated[Path | None, typer.Option(
            "--out", "-o", help="output folder (default runs/<scenario name>-sweep)")] = None,
        backend: Annotated[str, typer.Option(
            "--backend", help="local (processes on this machine) or ray")] = "local",
        address: Annotated[str | None, typer.Option(
            "--address", help="Ray cluster address (default: start a local Ray)")] = None,
        workers: Annotated[str | None, typer.Option(
            "--workers", "-j", help="parallel runs (default: all cores)")] = None,
    ) -> None:
        """Run the cross product of overrides; write sweep.parquet and sweep.csv (resumable)."""
        if backend not in BACKENDS:
            raise InfersimError(field="--backend", expected=" or ".join(BACKENDS), given=backend)
        spec = build_spec(source, grid or [], sets or [], _count(seeds, "--seeds", 1),
                          _count(seed, "--seed", 0))
        jobs = _count(workers, "--workers", 1)
        runner = SimulatorRunner()
        out_dir = out if out is not None else Path("runs") / f"{load(spec.scenario, spec.fixed).name}-sweep"
        check_writable_folder(out_dir)
        console = Console(stderr=True)
        executor = make_executor(backend, workers=jobs, address=address)
        started = time.perf_counter()
        # The bar starts with the first progress report, after every run's overrides have been
        # validated, so a bad override is one clean line rather than a line under a bar.
        progress = Progress(TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console, transient=False)
        bar = progress.add_task("runs", total=spec.runs, start=False)

        def report(done: int, total: int) -> None:
            if not progress.live.is_started:
                progress.start()
                progress.start_task(bar)
            progress.update(bar, completed=done, total=total)

        try:
            outcome = run_sweep(spec, runner, executor, out_dir, on_progress=report)
        finally:
            progress.stop()
            executor.close()
        wall_s = time.perf_counter() - started
        show_table(outcome.table, [key for key, _ in spec.grid])
        console.print(f"{len(outcome.table)} runs ({outcome.ran} simulated, {outcome.reused} from "
                      f"{out_dir / 'runs'}) on {backend} with {executor.workers} workers in "
                      f"{wall_s:.1f} s")
        for path in outcome.paths:
            console.print(f"wrote {path}")


def _count(text: str | None, option: str, minimum: int) -> int | None:
    """An integer option, parsed here so a bad value is one line like every other user error."""
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise InfersimError(field=option, expected=f"an integer >= {minimum}", given=text) from None
    if value < minimum:
        raise InfersimError(field=option, expected=f"an integer >= {minimum}", given=value)
    return value


def show_table(table, grid_keys: list[str], limit: int = 40) -> None:
    shown = [*grid_keys, "replica", *(m for m in SHOWN_METRICS if m in table.columns)]
    view = Table(show_header=True, header_style="bold")
    for column in shown:
        view.add_column(column, justify="right")
    for _, row in table.head(limit).iterrows():
        view.add_row(*(_cell(row[c]) for c in shown))
    console = Console()
    if not console.is_terminal:  # logs: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(view)
    if len(table) > limit:
        console.print(f"... {len(table) - limit} more rows in the files")


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
