"""``infersim run``: simulate one scenario, print its summary, write its results.

    infersim run                                  # the shipped default scenario
    infersim run scenarios/nvl72-split.yaml --out runs/nvl72 --seed 3
    infersim run h100-disaggregated --set workload.arrival.rate=40 --set pools.decode.instances=6
    infersim run my-vllm.yaml --overlay calibration-my-vllm.yaml   # knobs from infersim calibrate

Writes ``summary.json``, ``requests.parquet``, ``token_gaps.parquet``, ``timeseries.parquet``,
``links.parquet`` and PNG plots to ``--out``, atomically: an output folder that already holds
files is refused unless ``--force`` replaces it. Without ``--out`` the run goes to
``runs/<scenario name>/``, or, when that already holds a run, to the first free
``runs/<scenario name>-2/``, ``-3/``, ... (``--force`` replaces ``runs/<scenario name>/`` instead),
so running the same command twice keeps both runs. What the run
did that a real deployment would not (requests longer than the model's context window, served
all the same) is one ``warning:`` line each on stderr, ``--quiet`` or not.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from infersim.errors import InfersimError

DEFAULT_SCENARIO = "default"
SHOW_PROGRESS_AFTER_S = 1.0  # runs shorter than this finish without a bar flashing by

SET_HELP = ("KEY.PATH=VALUE: override a scenario field (value read as YAML), e.g. "
            "pools.decode.instances=8; repeatable")


def parse_seed(text: str | None) -> int | None:
    """``--seed`` as a non-negative integer (typer's own error would span several lines)."""
    if text is None:
        return None
    try:
        seed = int(text)
    except ValueError:
        raise InfersimError(field="--seed", expected="an integer >= 0", given=text) from None
    if seed < 0:
        raise InfersimError(field="--seed", expected="an integer >= 0", given=seed)
    return seed


@contextmanager
def progress_bar(label: str, *, quiet: bool) -> Iterator[Callable[[float], None]]:
    """A progress callback (fraction done) that shows a rich bar once a run passes one second."""
    console = Console(stderr=True)
    started = time.monotonic()
    state: dict = {}

    def update(fraction: float) -> None:
        if quiet or not console.is_terminal:
            return
        if "bar" not in state:
            if time.monotonic() - started < SHOW_PROGRESS_AFTER_S:
                return
            bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                           TaskProgressColumn(), TimeElapsedColumn(), console=console,
                           transient=True)
            bar.start()
            state["bar"], state["task"] = bar, bar.add_task(label, total=1.0)
        state["bar"].update(state["task"], completed=min(max(fraction, 0.0), 1.0))

    try:
        yield update
    finally:
        if "bar" in state:
            state["bar"].stop()


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run(
        scenario: Annotated[str, typer.Argument(help="scenario file or shipped name (default: "
                                                      "the shipped default scenario)")]
        = DEFAULT_SCENARIO,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="output folder (default "
                                                 "runs/<scenario name>/)")] = None,
        seed: Annotated[str | None,
                        typer.Option("--seed", metavar="N", help="replace the scenario's seed")]
        = None,
        sets: Annotated[list[str] | None,
                        typer.Option("--set", metavar="KEY=VALUE", help=SET_HELP)] = None,
        overlay: Annotated[Path | None, typer.Option("--overlay", help="a calibration overlay "
                           "written by infersim calibrate, applied before --set")] = None,
        quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no table, no progress bar")]
        = False,
        plots: Annotated[bool, typer.Option("--plots/--no-plots", help="write the PNG plots")]
        = True,
        force: Annotated[bool, typer.Option("--force", help="replace an output folder that "
                                            "already holds files")] = False,
    ) -> None:
        """Simulate a scenario; print the summary; write summary.json, parquet and plots."""
        from infersim.api import simulate
        from infersim.calibrate.overlay import read_overlay
        from infersim.report.save import check_out_dir, default_out_dir, save_result
        from infersim.report.tables import summary_table
        from infersim.scenario import load_scenario

        overrides = [*(read_overlay(overlay) if overlay is not None else ()), *(sets or ())]
        loaded = load_scenario(scenario, overrides=overrides, seed=parse_seed(seed))
        target = out if out is not None else default_out_dir(Path("runs"), loaded.name,
                                                             force=force)
        check_out_dir(target, force=force)  # before a long run, not after it
        with progress_bar(f"simulating {loaded.name}", quiet=quiet) as update:
            result = simulate(loaded, progress=update)
        if result.warnings:
            warn = Console(stderr=True, highlight=False, soft_wrap=True)
            for line in result.warnings:
                warn.print(f"warning: {line}", style="yellow")
        written = save_result(result, target, plots=plots, force=force)
        if not quiet:
            console = Console()
            if loaded.description:
                console.print(loaded.description, style="dim", highlight=False)
            console.print(summary_table(result.summary,
                                        title=f"{loaded.name}  (seed {loaded.seed}, "
                                              f"scenario {result.summary['scenario_hash']})"))
            console.print(f"wrote {len(written)} files to {target}/")
        sys.stdout.flush()
