"""``infersim check``: re-simulate capacity plans and fail when one no longer holds.

    infersim check plans/*.yaml --junit results.xml
    infersim check plans/h100-disaggregated.yaml --update-baseline

Exit status: 0 when every assertion and baseline comparison passes, 1 when any fails, 2 on bad
input (an unknown metric, a malformed bound, a missing scenario or baseline: one line naming the
file and the field). See docs/ci-regression.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infersim.errors import InfersimError
from infersim.plan.check import (
    Measured,
    PlanFile,
    PlanResult,
    run_plans,
    to_junit,
    unreadable_suite,
)
from infersim.plan.junit import write_junit


def measure(plan: PlanFile) -> Measured:
    """Simulate a plan's scenario with its overrides (and seed, if the plan fixes one)."""
    from infersim.api import simulate
    from infersim.scenario import load_scenario

    scenario = load_scenario(plan.scenario, overrides=plan.overrides, seed=plan.seed)
    started = time.perf_counter()
    result = simulate(scenario)
    return Measured(summary=result.summary, scenario_hash=scenario.hash, seed=scenario.seed,
                    wall_s=time.perf_counter() - started)


def register(app: typer.Typer) -> None:
    @app.command("check")
    def check(
        plans: Annotated[list[Path], typer.Argument(help="plan files (scenario + assertions)")],
        junit: Annotated[Path | None, typer.Option(
            "--junit", help="write a JUnit XML report here (one testsuite per plan)")] = None,
        update_baseline: Annotated[bool, typer.Option(
            "--update-baseline", help="record each plan's baseline file from this run instead "
                                      "of comparing with it")] = False,
    ) -> None:
        """Run each plan and judge its assertions; exit 1 if any fails."""
        console = Console()
        if not console.is_terminal:  # CI logs: do not squeeze the table into 80 columns
            console = Console(width=140)
        err = Console(stderr=True)

        def report(result: PlanResult) -> None:
            mark = "[green]PASS[/]" if result.passed else "[red]FAIL[/]"
            err.print(f"{mark} {result.plan.name} ({result.plan.path}, "
                      f"{result.measured.wall_s:.1f} s)")
            for note in result.notes:
                err.print(f"     {note}")

        unreadable: list[tuple[Path, InfersimError]] = []
        results = run_plans(plans, measure, update_baseline=update_baseline, on_plan=report,
                            on_unreadable=lambda path, error: unreadable.append((path, error)))
        if results:
            console.print(results_table(results))
        if junit is not None:
            # The plans that could be read are reported; each that could not is an error case.
            write_junit(to_junit(results) + [unreadable_suite(p, e) for p, e in unreadable],
                        junit)
            err.print(f"wrote {junit}")
        failed = sum(1 for r in results for c in r.cases if not c.passed)
        total = sum(len(r.cases) for r in results)
        if results:
            err.print(f"{len(results)} plans, {total} checks, {failed} failed"
                      + (f", {len(unreadable)} unreadable" if unreadable else ""))
        for _, error in unreadable[1:]:
            err.print(f"infersim: error: {error}", highlight=False, markup=False)
        if unreadable:
            raise unreadable[0][1]      # bad input: one line each, exit 2
        if failed:
            sys.exit(1)


def results_table(results: list[PlanResult]) -> Table:
    table = Table(show_header=True, header_style="bold")
    for column in ("plan", "check", "measured", "expected", "result"):
        table.add_column(column, justify="right" if column == "measured" else "left")
    for result in results:
        for case in result.cases:
            table.add_row(result.plan.name, case.name if case.kind == "assert" else
                          f"baseline {case.metric}", f"{case.measured:.6g}", case.expected,
                          "[green]pass[/]" if case.passed else "[red]FAIL[/]")
    return table
