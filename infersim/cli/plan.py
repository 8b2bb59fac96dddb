"""``infersim plan``: the cheapest cluster that meets a scenario's SLOs at a given load.

    infersim plan scenarios/default.yaml --rate 30 --hardware h100,b200
    infersim plan my-scenario.yaml --budget 40 --hardware h100,h200,b200 --out runs/plan

Writes ``best.yaml`` (ready for ``infersim run``), ``plans.csv`` (every candidate, ranked),
``plan.json`` and ``pareto.png`` to ``--out`` (default ``runs/<scenario name>-plan/``).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from infersim.errors import InfersimError
from infersim.hardware import load_hardware
from infersim.plan.candidate import PlanOutcome
from infersim.plan.executors import BACKENDS, make_executor
from infersim.plan.outputs import interval_text, verdict, write_outputs
from infersim.plan.planner import SEEDS, plan_capacity
from infersim.plan.sizing import DEFAULT_KV_TRANSFER, KV_TRANSFER
from infersim.plan.target import MAX_REQUESTS, STEADY_STATE_S
from infersim.report.tables import plain
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
        seeds: Annotated[str, typer.Option(
            "--seeds", help="seeds each finalist is confirmed over (verdicts carry 90% "
                            "intervals)")] = str(SEEDS),
        headroom: Annotated[str, typer.Option(
            "--headroom", help="share of each SLO target kept free, in [0, 1): 0.1 plans for "
                               "90% of it")] = "0",
        precision: Annotated[str | None, typer.Option(
            "--precision", help="precisions to search, comma-separated (default: the "
                                "scenario's)")] = None,
        price: Annotated[list[str] | None, typer.Option(
            "--price", help="chip=USD per chip-hour, overriding the scenario's prices: and the "
                            "hardware profile (repeatable)")] = None,
        kv_transfer: Annotated[str, typer.Option(
            "--kv-transfer", help="which chips may prefill for which: same_chip, same_vendor or "
                                  "any")] = DEFAULT_KV_TRANSFER,
        max_simulations: Annotated[str, typer.Option(
            "--max-simulations", help="most simulations in all")] = "200",
    ) -> None:
        """Search chips, pool sizes, TP and colocated vs disaggregated for the cheapest plan."""
        from infersim.report.html import write_report
        from infersim.report.save import check_writable_folder
        from infersim.scenario import load_scenario

        if kv_transfer not in KV_TRANSFER:
            raise InfersimError(field="--kv-transfer", expected=" or ".join(KV_TRANSFER),
                                given=kv_transfer)
        if backend not in BACKENDS:
            raise InfersimError(field="--backend", expected=" or ".join(BACKENDS), given=backend)
        chips = [h.strip() for h in hardware.split(",") if h.strip()] if hardware else None
        if hardware is not None and not chips:
            raise InfersimError(field="--hardware", expected="chip names, comma-separated",
                                given=hardware)
        base = load_scenario(scenario)
        check_writable_folder(out if out is not None else Path("runs") / f"{base.name}-plan")
        share = _number(attainment, "--attainment")
        if share > 1:
            raise InfersimError(field="--attainment", expected="a share in (0, 1]",
                                given=attainment)
        keep = _share(headroom, "--headroom")
        slo = replace(slo_of(base, attainment=share), headroom=keep)
        ttft = _number(ttft_ms, "--ttft-ms")
        itl = _number(itl_ms, "--itl-ms")
        if ttft is not None or itl is not None:
            slo = SLO(ttft_ms=ttft if ttft is not None else slo.ttft_ms,
                      itl_ms=itl if itl is not None else slo.itl_ms, tpot_ms=slo.tpot_ms,
                      e2el_ms=slo.e2el_ms, percentile=slo.percentile, attainment=share,
                      headroom=keep)
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
                                                          integer=True),
                    seeds=_number(seeds, "--seeds", integer=True),
                    max_simulations=_number(max_simulations, "--max-simulations", integer=True),
                    precisions=_names(precision, "--precision"), prices=_prices(price or []),
                    kv_transfer=kv_transfer)
        finally:
            executor.close()
        out_dir = out if out is not None else Path("runs") / f"{base.name}-plan"
        paths = write_outputs(outcome, out_dir, str(scenario))
        paths.append(write_report(out_dir))
        console = Console()
        tables = [families_table(outcome), outcome_table(outcome)]
        if not console.is_terminal:  # logs, pipes and CI: plain columns, not squeezed into 80
            console = Console(width=160)
            tables = [plain(table) for table in tables]
        for table in tables:
            console.print(table)
        err.print(verdict(outcome))
        by_family = Counter(p.family for p in outcome.pruned)
        err.print(f"{len(outcome.evaluations)} candidates admitted by the cost model, "
                  f"{len(outcome.pruned)} shapes, pairings or clusters pruned ("
                  + ", ".join(f"{family}: {n}" for family, n in by_family.items())
                  + f"; every one with its reason in plan.json), {outcome.simulations} "
                  f"simulations, {time.perf_counter() - started:.1f} s")
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
            for pruned in outcome.pruned[:8]:
                err.print(f"pruned {pruned.what}: {pruned.why}")
            if outcome.budget is not None:
                raise InfersimError(field="--budget", expected="a budget that buys a cluster "
                                    "meeting the SLOs" + (f" at {outcome.rate:g} req/s"
                                                          if outcome.rate else ""),
                                    given=outcome.budget)
            raise InfersimError(field="--rate", expected="a load some candidate serves within "
                                "the SLOs (widen --hardware or relax the SLOs)", given=outcome.rate)


def _share(text: str, option: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InfersimError(field=option, expected="a share in [0, 1)", given=text) from None
    if not 0 <= value < 1:
        raise InfersimError(field=option, expected="a share in [0, 1)", given=text)
    return value


def _names(text: str | None, option: str) -> list[str] | None:
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise InfersimError(field=option, expected="names, comma-separated", given=text)
    return names


def _prices(items: list[str]) -> dict[str, float]:
    """``--price h100=2.5`` options as chip -> USD per chip-hour."""
    prices = {}
    for item in items:
        chip, sep, value = item.partition("=")
        try:
            number = float(value) if sep and chip.strip() else math.nan
        except ValueError:
            number = math.nan
        if not (number > 0 and math.isfinite(number)):
            raise InfersimError(field="--price", expected="chip=USD per chip-hour, such as "
                                "h100=2.5", given=item)
        try:
            name = load_hardware(chip.strip()).name
        except InfersimError as err:
            raise InfersimError(field="--price", expected=err.expected or "a known chip",
                                given=chip.strip()) from None
        prices[name] = number
    return prices


def families_table(outcome: PlanOutcome) -> Table:
    """The answer: per chip family, the best plan with its intervals, or why there is none."""
    ttft_key = outcome.slo.summary_key("ttft")
    itl_key = outcome.slo.summary_key("itl")
    seeds = f" ({outcome.seeds} seeds, 90% interval)" if outcome.seeds > 1 else ""
    table = Table(show_header=True, header_style="bold",
                  title="best plan per chip" + (
                      f" at {outcome.rate:g} req/s" if outcome.rate is not None
                      else f" under {outcome.budget:g} $/h (most requests per $ within the SLOs)"))
    for column in ("chip", "plan or why none", "$/h", ttft_key + seeds, itl_key, "max req/s"):
        table.add_column(column, justify="left" if column in ("chip", "plan or why none")
                         else "right")
    for family in outcome.families:
        ev = family.best
        if ev is None:
            table.add_row(family.family, f"[red]none[/]: {escape(family.reason)}", "-", "-", "-",
                          "-")
            continue
        c = ev.candidate
        plan = c.label + (f" ({c.units})" if c.units else "")
        table.add_row(family.family, plan, f"{c.cost_per_hour:.2f}",
                      interval_text(ev, ttft_key), interval_text(ev, itl_key), _fmt(ev.max_rate))
    return table


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
        verdict_text = ("[green]met[/]" if ev.slo_met else f"[red]missed[/] {escape(ev.reason)}"
                        if ev.slo_met is False else "[dim]not simulated[/]")
        table.add_row(str(rank), ev.candidate.layout, ev.candidate.label,
                      f"{ev.candidate.cost_per_hour:.2f}", verdict_text,
                      interval_text(ev, ttft_key), interval_text(ev, itl_key),
                      _fmt(ev.max_rate), _fmt(ev.goodput_per_dollar))
    if len(outcome.evaluations) > limit:
        table.caption = f"{len(outcome.evaluations) - limit} more in plans.csv"
    return table


def _fmt(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.4g}"
