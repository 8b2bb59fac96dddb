"""The Python API: ``infersim.simulate(scenario) -> Result``.

One call runs one scenario end to end: load and check the scenario at the edge, build the
workload and the engine's frozen cluster spec, run the discrete-event simulation, summarise the
per-request table into vLLM-bench metrics, and price the run (dollars and joules). The CLI and
the notebooks are thin faces over this function.

Randomness: the scenario's seed feeds one :class:`numpy.random.SeedSequence`; its first child
draws the workload, its second seeds the engine. Same scenario and seed, same bytes out.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from infersim.economics import ClassTokens, CostReport, PoolUsage, cluster_economics
from infersim.errors import InfersimError
from infersim.scenario import (
    Resolved,
    Scenario,
    attributed,
    build_cluster,
    check_scenario,
    load_scenario,
)
from infersim.scenario.seeds import run_streams
from infersim.scenario.seeds import workload_rng as derive_workload_rng

ScenarioLike = Scenario | str | Path | Mapping[str, Any]

# The vLLM bench keys, in the order ``vllm bench serve`` writes them; summary.json leads with them.
VLLM_KEYS: tuple[str, ...] = (
    "completed", "failed", "duration", "total_input_tokens", "total_output_tokens",
    "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
    *[f"{stat}_{metric}_ms" for metric in ("ttft", "tpot", "itl", "e2el")
      for stat in ("mean", "median", "std", "p90", "p99")],
)


@dataclass(frozen=True, eq=False)
class Result:
    """Everything one run produced. ``save(out_dir)`` writes it all to a folder."""

    scenario: Scenario
    summary: dict
    requests: pd.DataFrame
    timeseries: pd.DataFrame
    links: pd.DataFrame
    token_gaps: pd.DataFrame  # gap_s, count: every inter-token gap of completed requests, exact
    cost: CostReport
    sim: Any = field(repr=False)  # the engine's SimResult (token_times(request_id), epochs, ...)
    # one line each: what the run did that a real deployment would not (infersim run prints them)
    warnings: tuple[str, ...] = ()

    def token_times(self, request_id: int) -> np.ndarray:
        """Instants (s) of every output token of one request, rebuilt exactly."""
        return self.sim.token_times(request_id)

    def save(self, out_dir: str | Path, *, plots: bool = True) -> list[Path]:
        """Write summary.json, the parquet tables and (unless ``plots=False``) the PNG plots."""
        from infersim.report.save import save_result

        return save_result(self, Path(out_dir), plots=plots)


def _version() -> str:
    from infersim import __version__

    return __version__


def _class_tokens(requests: pd.DataFrame) -> list[ClassTokens]:
    """Delivered work per workload class (completed requests only)."""
    done = requests[requests["completed"]] if "completed" in requests else requests
    class_col = "class_name" if "class_name" in done else None
    if class_col is None:
        return [ClassTokens("default", len(done), int(done["prompt_tokens"].sum()),
                            int(done["output_tokens"].sum()))]
    column = requests[class_col]
    # every class of the workload, in its own order, even one that finished no request
    names = (list(column.cat.categories) if hasattr(column, "cat")
             else list(dict.fromkeys(column)))
    out = []
    for name in names:
        rows = done[(done[class_col] == name).to_numpy()]
        out.append(ClassTokens(str(name), len(rows), int(rows["prompt_tokens"].sum()),
                               int(rows["output_tokens"].sum())))
    return out


def _prefill_share(scenario: Scenario, name: str, stats: Mapping[str, Any]
                   ) -> tuple[float | None, str]:
    """A mixed pool's share of busy time spent on prefill, as the engine measured it (the
    step-time share of prefill work, ``prefill_busy_s`` over ``busy_s``; see
    :mod:`infersim.economics`). A mixed pool that never ran a step has no busy time to split: its
    idle cost goes to output tokens, the tokens such a pool holds capacity to decode."""
    if scenario.pools[name].role != "mixed":
        return None, ""
    busy = float(stats.get("busy_s", 0.0))
    if busy <= 0:
        return 0.0, "pool never busy: idle cost to output tokens"
    if "prefill_busy_s" not in stats:
        raise ValueError(f"mixed pool {name!r}: the engine reported busy_s but no prefill_busy_s")
    return (min(max(float(stats["prefill_busy_s"]) / busy, 0.0), 1.0),
            "engine step-time share of prefill work")


def price_run(scenario: Scenario, resolved: Resolved, pool_stats: Mapping[str, Mapping[str, Any]],
              requests: pd.DataFrame, duration_s: float) -> CostReport:
    """The run's bill from the engine's per-pool busy seconds and the delivered tokens."""
    usages = []
    for name, pool in scenario.pools.items():
        chip = resolved.hardware[name]
        stats = pool_stats.get(name, {})
        share, share_source = _prefill_share(scenario, name, stats)
        usages.append(PoolUsage(
            name=name, role=pool.role, instances=pool.instances,
            chips_per_instance=pool.tp * pool.pp, busy_s=float(stats.get("busy_s", 0.0)),
            price_per_chip_hour=chip.price_per_chip_hour, tdp_watts=chip.tdp_watts,
            idle_watts=chip.idle_watts,
            prefill_share=share, prefill_share_source=share_source))
    return cluster_economics(usages, duration_s, _class_tokens(requests))


def build_scenario_workload(scenario: Scenario) -> Any:
    """The scenario's workload exactly as a run builds it (same seed stream); a trace must exist
    and have rows. The engine is not started."""
    workload_rng = derive_workload_rng(scenario.seed)
    return _build_workload(scenario, workload_rng)


def oversized_requests(scenario: Scenario, resolved: Resolved, workload: Any) -> dict[str, int]:
    """Per decode or mixed pool, how many requests need more KV cache (prompt + output tokens)
    than one of its instances holds: the engine can only reject them."""
    table = getattr(workload, "requests", workload)  # a ClosedLoop wraps its table
    lengths = np.asarray(table.prompt_tokens) + np.asarray(table.output_tokens)
    return {name: int((lengths > resolved.placements[name].kv_capacity_tokens).sum())
            for name, pool in scenario.pools.items() if pool.role in ("decode", "mixed")}


def beyond_context_requests(resolved: Resolved, workload: Any) -> int:
    """How many requests are longer (prompt + output tokens) than the model's context window
    (``max_position_embeddings``): a serving engine refuses them (vLLM checks prompt plus
    ``max_tokens`` against ``max_model_len``), while the simulator would serve them. 0 when the
    model's config gives no window."""
    window = resolved.model.max_context_tokens
    if window <= 0:
        return 0
    table = getattr(workload, "requests", workload)  # a ClosedLoop wraps its table
    lengths = np.asarray(table.prompt_tokens) + np.asarray(table.output_tokens)
    return int((lengths > window).sum())


def beyond_context_warning(resolved: Resolved, beyond: int, requests: int) -> str:
    """The one-line warning about ``beyond`` of ``requests`` requests being longer than the
    model's context window, as ``infersim validate`` and ``infersim run`` print it."""
    return (f"{beyond:,} of {requests:,} requests are longer (prompt + output) than "
            f"{resolved.model.name}'s {resolved.model.max_context_tokens:,}-token context window; "
            "a serving engine would refuse them, the simulation serves them")


def _build_workload(scenario: Scenario, rng: np.random.Generator) -> Any:
    """The scenario's workload; an error names the scenario field (or the trace file)."""
    from infersim.workload import build_workload

    try:
        return build_workload(scenario.workload, rng, base_dir=scenario.base_dir)
    except InfersimError as err:
        if err.field is None and scenario.workload.trace is not None:
            # The trace loader names the trace file; say which scenario field points at it.
            raise err.with_prefix("workload.trace.path") from None
        if err.file is None:
            raise attributed(err.with_prefix("workload"), scenario.source) from None
        raise


def simulate(scenario: ScenarioLike, *, seed: int | None = None, overrides: Sequence[str] = (),
             progress: Callable[[float], None] | None = None) -> Result:
    """Run one scenario (a file, a shipped name, a dict or a :class:`Scenario`).

    ``seed`` replaces the scenario's seed; ``overrides`` are ``key.path=value`` strings as for
    ``infersim run --set``. ``progress`` is called with the fraction of requests done.
    """
    from infersim.metrics import summarize
    from infersim.sim import simulate_cluster

    sc = load_scenario(scenario, overrides=overrides, seed=seed)
    resolved = check_scenario(sc)
    cluster = build_cluster(sc, resolved)
    workload_rng, engine_seed = run_streams(sc.seed)
    workload = _build_workload(sc, workload_rng)
    # Served as if the model had no window: counted in the summary and warned about, not refused.
    beyond = beyond_context_requests(resolved, workload)
    warnings = (beyond_context_warning(resolved, beyond, len(workload)),) if beyond else ()
    sim = simulate_cluster(cluster, workload, seed=engine_seed, time_limit_s=sc.time_limit,
                           progress=progress)
    metrics = summarize(sim, sc.slo.model_dump(exclude_none=True))
    cost = price_run(sc, resolved, sim.pools, sim.requests, sim.duration_s)
    summary = _assemble_summary(sc, metrics, cost)
    summary["infersim"]["beyond_context_requests"] = beyond
    summary["classes"] = class_summary(sc, sim.requests, sim.max_token_gap(), sim.duration_s,
                                       cost)
    gap_values, gap_counts = sim.itl_distribution()
    token_gaps = pd.DataFrame({"gap_s": np.asarray(gap_values, dtype=np.float64),
                               "count": np.asarray(gap_counts, dtype=np.int64)})
    return Result(scenario=sc, summary=summary, requests=sim.requests,
                  timeseries=sim.timeseries, links=sim.links, token_gaps=token_gaps, cost=cost,
                  sim=sim, warnings=warnings)


def _class_slos(sc: Scenario) -> dict[str, dict[str, float]]:
    """Per workload class, the SLO targets its requests are held to: the class's own (from its
    mix or the workload's ``slo``), else the scenario's ``slo``."""
    from infersim.workload import request_classes

    scenario_targets = {k: v for k, v in sc.slo.model_dump(exclude_none=True).items()
                        if k != "percentile"}
    if sc.workload.trace is not None:
        return {}
    classes = request_classes(sc.workload, base_dir=sc.base_dir)
    return {c.name: dict(c.slo) or scenario_targets for c in classes}


def class_summary(sc: Scenario, requests: pd.DataFrame, max_gap_s: np.ndarray,
                  duration_s: float, cost: CostReport) -> dict[str, dict[str, Any]]:
    """Latency, SLO attainment and cost per workload class (the "for which mix?" question).

    A request meets its class's SLO when each target is met (``<=``); ITL is read as the
    request's largest gap, as in :mod:`infersim.metrics`.
    """
    slos = _class_slos(sc)
    default = {k: v for k, v in sc.slo.model_dump(exclude_none=True).items() if k != "percentile"}
    priced = {c.name: c for c in cost.classes}
    names = requests["class_name"].astype(str).to_numpy()
    completed = requests["completed"].to_numpy()
    ms = {"ttft_ms": requests["ttft_s"].to_numpy() * 1e3,
          "tpot_ms": requests["tpot_s"].to_numpy() * 1e3,
          "e2el_ms": requests["e2e_s"].to_numpy() * 1e3,
          "itl_ms": np.asarray(max_gap_s, dtype=float) * 1e3}
    out: dict[str, dict[str, Any]] = {}
    column = requests["class_name"]
    order = ([str(c) for c in column.cat.categories] if hasattr(column, "cat")
             else list(dict.fromkeys(names)))
    for name in order:
        mine = names == name
        done = mine & completed
        targets = slos.get(name, default)
        meets = done.copy()
        for key, target in targets.items():
            meets &= np.nan_to_num(ms[key], nan=0.0) <= target  # 1-token requests: no gaps
        row: dict[str, Any] = {"requests": int(mine.sum()), "completed": int(done.sum()),
                               "slo": targets,
                               "request_goodput": float(meets.sum() / duration_s)
                               if duration_s > 0 else float("nan")}
        for key in ("ttft_ms", "tpot_ms", "e2el_ms"):
            values = ms[key][done]
            values = values[~np.isnan(values)]
            for stat, q in (("median", 50), ("p99", 99)):
                row[f"{stat}_{key}"] = float(np.percentile(values, q)) if len(values) \
                    else float("nan")
        gaps = ms["itl_ms"][done]
        gaps = gaps[~np.isnan(gaps)]
        row["p99_max_itl_ms"] = float(np.percentile(gaps, 99)) if len(gaps) else float("nan")
        if name in priced:
            row["usd_per_task"] = priced[name].usd_per_task
            row["joules_per_task"] = priced[name].joules_per_task
        out[name] = row
    return out


def _bench_settings(sc: Scenario, num_prompts: int) -> dict[str, Any]:
    """The load settings ``vllm bench serve`` writes beside its metrics (no date: runs must be
    byte-identical). ``request_rate`` is "inf" for an offline batch and None for a rate that
    varies (steps, diurnal) or a trace's own timing."""
    arrival = sc.workload.arrival
    process = getattr(arrival, "process", None)
    if process == "offline":
        rate: Any = "inf"
    elif process in ("poisson", "gamma"):
        rate = arrival.rate
    else:
        rate = None
    burstiness = 1.0 if process == "poisson" else (arrival.shape if process == "gamma" else None)
    return {"model_id": sc.model, "num_prompts": num_prompts, "request_rate": rate,
            "burstiness": burstiness, "max_concurrency": sc.workload.concurrency}


def _assemble_summary(sc: Scenario, metrics: Mapping[str, Any], cost: CostReport) -> dict:
    """summary.json: vLLM keys first, then backend, cost, simulator extras and provenance."""
    summary: dict[str, Any] = {"backend": "infersim", "scenario_name": sc.name,
                               **_bench_settings(sc, int(metrics.get("completed", 0))
                                                 + int(metrics.get("failed", 0)))}
    summary.update({k: metrics[k] for k in VLLM_KEYS if k in metrics})
    summary.update({k: v for k, v in metrics.items() if k not in summary and k != "infersim"})
    summary["cost"] = cost.to_dict()
    summary["infersim"] = dict(metrics.get("infersim", {}))
    summary["seed"] = sc.seed
    summary["scenario_hash"] = sc.hash
    summary["infersim_version"] = _version()
    summary["scenario"] = sc.resolved()
    return summary
