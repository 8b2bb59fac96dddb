"""``infersim plan``: the cheapest cluster that meets a scenario's SLOs at a given load.

    infersim plan scenarios/default.yaml --rate 30 --hardware h100,b200
    infersim plan my-scenario.yaml --budget 40 --hardware h100,h200,b200 --out runs/plan

Writes ``best.yaml`` (ready for ``infersim run``), ``plans.csv`` (every candidate, ranked),
``plan.json`` and ``pareto.png`` to ``--out`` (default ``runs/<scenario name>-plan/``).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from infersim.errors import InfersimError
from infersim.plan.candidate import PlanOutcome
from infersim.plan.executors import BACKENDS, make_executor
from infersim.plan.outputs import verdict, write_outputs
from infersim.plan.planner import plan_capacity
from infersim.plan.target import MAX_REQUESTS, STEADY_STATE_S
from infersim.slo import SLO, slo_of


def _number(text: str | None, option: str, *, integer: bool = False) -> float | int | None:
    if text is None:
        return None
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise InfersimError(field=option, expected="an integer" if integer else "a number",
                            given=text) from None
    if not (value > 0 and math.isfinite(value)):
        raise InfersimError(field=option, expected="a positive number", given=text)
    return value


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan(
        scenario: Annotated[str, typer.Argument(help="base scenario: model, workload, SLOs "
                                                     "(its pools are replaced)")],
        rate: Annotated[str | None, typer.Option(
            "--rate", help="target load, requests/s: find the cheapest plan meeting the SLOs")] = None,
        hardware: Annotated[str | None, typer.Option(
            "--hardware", help="chips to consider, comma-separated (default: the scenario's)")] = None,
        budget: Annotated[str | None, typer.Option(
            "--budget", help="$/h ceiling: without --rate, the most goodput per $ within it")] = None,
        out: Annotated[Path | None, typer.Option(
            "--out", "-o", help="output folder (default runs/<scenario name>-plan)")] = None,
        requests: Annotated[str | None, typer.Option(
            "--requests", help="fewest requests per simulation (default: the scenario's)")] = None,
        min_span: Annotated[str, typer.Option(
            "--min-span", help="seconds of arrivals every simulation spans at least: runs at "
                               "higher rates draw more requests")] = f"{STEADY_STATE_S:g}",
        max_requests: Annotated[str, typer.Option(
            "--max-requests", help="most requests one simulation draws to span --min-span")
        ] = str(MAX_REQUESTS),
        ttft_ms: Annotated[str | None, typer.Option(
            "--ttft-ms", help="TTFT target, ms (default: the scenario's slo)")] = None,
        itl_ms: Annotated[str | None, typer.Option(
            "--itl-ms", help="ITL target, ms (default: the scenario's slo)")] = None,
        attainment: Annotated[str, typer.Option(
            "--attainment", help="share of requests that must meet every SLO on their own, "
                                 "in (0, 1]")] = "0.9",
        seed: Annotated[str | None, typer.Option("--seed", help="seed of every simulation")] = None,
        backend: Annotated[str, typer.Option("--backend", help="local or ray")] = "local",
        address: Annotated[str | None, typer.Option(
            "--address", help="Ray cluster address (default: start a local Ray)")] = None,
        workers: Annotated[str | None, typer.Option(
            "--workers", "-j", help="parallel simulations (default: all cores)")] = None,
    ) -> None:
        """Search chips, pool sizes, TP and colocated vs disaggregated for the cheapest plan."""
        from infersim.scenario import load_scenario

        if backend not in BACKENDS:
            raise InfersimError(field="--backend", expected=" or ".join(BACKENDS), given=backend)
        chips = [h.strip() for h in hardware.split(",") if h.strip()] if hardware else None
        if hardware is not None and not chips:
            raise InfersimError(field="--hardware", expected="chip names, comma-separated",
                                given=hardware)
        base = load_scenario(scenario)
        share = _number(attainment, "--attainment")
        if share > 1:
            raise InfersimError(field="--attainment", expected="a share in (0, 1]",
                                given=attainment)
        slo = slo_of(base, attainment=share)
        ttft = _number(ttft_ms, "--ttft-ms")
        itl = _number(itl_ms, "--itl-ms")
        if ttft is not None or itl is not None:
            slo = SLO(ttft_ms=ttft if ttft is not None else slo.ttft_ms,
                      itl_ms=itl if itl is not None else slo.itl_ms, tpot_ms=slo.tpot_ms,
                      e2el_ms=slo.e2el_ms, percentile=slo.percentile, attainment=share)
        seed_value = None
        if seed is not None:
            try:
                seed_value = int(seed)
            except ValueError:
                raise InfersimError(field="--seed", expected="an integer >= 0", given=seed) from None
        try:
            span = float(min_span)
        except ValueError:
            raise InfersimError(field="--min-span", expected="seconds >= 0", given=min_span) from None
        executor = make_executor(backend, workers=_number(workers, "--workers", integer=True),
                                 address=address)
        err = Console(stderr=True)
        started = time.perf_counter()
        try:
            with err.status("planning: sizing with the cost model, confirming by simulation") as status:
                outcome = plan_capacity(
                    scenario, rate=_number(rate, "--rate"), hardware=chips,
                    budget=_number(budget, "--budget"), executor=executor, slo=slo,
                    requests=_number(requests, "--requests", integer=True), seed=seed_value,
                    progress=lambda text: status.update(f"planning: {text}"),
                    min_span_s=span, max_requests=_number(max_requests, "--max-requests",
                                                          integer=True))
        finally:
            executor.close()
        out_dir = out if out is not None else Path("runs") / f"{base.name}-plan"
        paths = write_outputs(outcome, out_dir, str(scenario))
        console = Console()
        if not console.is_terminal:  # logs and CI: do not squeeze the table into 80 columns
            console = Console(width=160)
        console.print(outcome_table(outcome))
        err.print(verdict(outcome))
        err.print(f"{len(outcome.evaluations)} candidates admitted by the cost model, "
                  f"{len(outcome.pruned)} shapes pruned, {outcome.simulations} simulations, "
                  f"{time.perf_counter() - started:.1f} s")
        if outcome.run_length is not None:
            rule = outcome.run_length
            at = (f"{rule.requests_at(outcome.rate)} requests at {outcome.rate:g} req/s, "
                  if outcome.rate is not None else "")
            err.print(f"each simulation spans at least {rule.min_span_s:g} s of arrivals "
                      f"({at}{rule.requests} or more, scaled with the rate up to "
                      f"{rule.max_requests})")
        for note in outcome.notes:
            err.print(note)
        for path in paths:
            err.print(f"wrote {path}")
        if outcome.best is None:
            for shape, why in outcome.pruned[:8]:
                err.print(f"pruned {shape}: {why}")
            if outcome.budget is not None:
                raise InfersimError(field="--budget", expected="a budget that buys a cluster "
                                    "meeting the SLOs" + (f" at {outcome.rate:g} req/s"
                                                          if outcome.rate else ""),
                                    given=outcome.budget)
            raise InfersimError(field="--rate", expected="a load some candidate serves within "
                                "the SLOs (widen --hardware or relax the SLOs)", given=outcome.rate)


def outcome_table(outcome: PlanOutcome, limit: int = 15) -> Table:
    ttft_key = outcome.slo.summary_key("ttft")
    itl_key = outcome.slo.summary_key("itl")
    table = Table(show_header=True, header_style="bold",
                  title=f"plans at {outcome.rate:g} req/s" if outcome.rate is not None
                  else f"plans under {outcome.budget:g} $/h")
    for column in ("#", "layout", "plan", "$/h", "SLOs", ttft_key, itl_key, "max req/s",
                   "req per $"):
        table.add_column(column, justify="left" if column in ("layout", "plan", "SLOs")
                         else "right")
    for rank, ev in enumerate(outcome.evaluations[:limit], start=1):
        summary = ev.summary or {}
        verdict_text = ("[green]met[/]" if ev.slo_met else f"[red]missed[/] {ev.reason}"
                        if ev.slo_met is False else "[dim]not simulated[/]")
        table.add_row(str(rank), ev.candidate.layout, ev.candidate.label,
                      f"{ev.candidate.cost_per_hour:.2f}", verdict_text,
                      _fmt(summary.get(ttft_key)), _fmt(summary.get(itl_key)),
                      _fmt(ev.max_rate), _fmt(ev.goodput_per_dollar))
    if len(outcome.evaluations) > limit:
        table.caption = f"{len(outcome.evaluations) - limit} more in plans.csv"
    return table


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"
