"""summary.json of a run: vLLM bench's keys, then the bill, per-class figures and provenance.

:mod:`infersim.metrics` turns the engine's tables into vLLM-bench statistics; this module prices
the run (:func:`price_run`, from the engine's busy seconds per pool and the delivered tokens, by
the rules of :mod:`infersim.economics`), breaks latency, SLO attainment and cost down by workload
class (:func:`class_summary`), and assembles the whole document in the order a reader expects:
vLLM keys first, then backend settings, cost, the simulator's extras and the scenario echo.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from infersim import slo
from infersim.economics import (
    CostReport,
    PoolUsage,
    class_tokens,
    cluster_economics,
    mixed_prefill_share,
)
from infersim.scenario import Resolved, Scenario

# The vLLM bench keys, in the order ``vllm bench serve`` writes them; summary.json leads with them.
VLLM_KEYS: tuple[str, ...] = (
    "completed", "failed", "duration", "total_input_tokens", "total_output_tokens",
    "request_throughput", "request_goodput", "output_throughput", "total_token_throughput",
    *[f"{stat}_{metric}_ms" for metric in ("ttft", "tpot", "itl", "e2el")
      for stat in ("mean", "median", "std", "p90", "p99")],
)


def _version() -> str:
    from infersim import __version__

    return __version__


def _class_codes(requests: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The workload's class names, in its own order, and each request's class number."""
    column = requests["class_name"]
    if hasattr(column, "cat"):
        return [str(c) for c in column.cat.categories], column.cat.codes.to_numpy()
    names = list(dict.fromkeys(column.astype(str)))
    codes = pd.Categorical(column.astype(str), categories=names).codes
    return names, np.asarray(codes)


def price_run(scenario: Scenario, resolved: Resolved, pool_stats: Mapping[str, Mapping[str, Any]],
              requests: pd.DataFrame, duration_s: float) -> CostReport:
    """The run's bill from the engine's per-pool busy seconds and the delivered tokens."""
    usages = []
    for name, pool in scenario.pools.items():
        chip = resolved.hardware[name]
        stats = pool_stats.get(name, {})
        share, share_source = (mixed_prefill_share(name, stats) if pool.role == "mixed"
                               else (None, ""))
        usages.append(PoolUsage(
            name=name, role=pool.role, instances=pool.instances,
            chips_per_instance=pool.tp * pool.pp, busy_s=float(stats.get("busy_s", 0.0)),
            price_per_chip_hour=scenario.prices.get(chip.name, chip.price_per_chip_hour),
            tdp_watts=chip.tdp_watts,
            idle_watts=chip.idle_watts,
            prefill_share=share, prefill_share_source=share_source))
    names, codes = _class_codes(requests)
    return cluster_economics(usages, duration_s, class_tokens(
        names, codes, requests["completed"].to_numpy(), requests["prompt_tokens"].to_numpy(),
        requests["output_tokens"].to_numpy()))


def class_summary(sc: Scenario, requests: pd.DataFrame, max_gap_s: np.ndarray,
                  duration_s: float, cost: CostReport) -> dict[str, dict[str, Any]]:
    """Latency, SLO attainment and cost per workload class (the "for which mix?" question).

    A request meets its class's SLO by :func:`infersim.slo.meets` (its class's targets, from
    :func:`infersim.slo.class_targets`, else the scenario's).
    """
    targets_by_class = slo.class_targets(sc)
    default = slo.targets_of(sc.slo)
    priced = {c.name: c for c in cost.classes}
    names, codes = _class_codes(requests)
    completed = requests["completed"].to_numpy()
    ms = slo.request_latencies_ms(requests["ttft_s"].to_numpy(), requests["tpot_s"].to_numpy(),
                                  requests["e2e_s"].to_numpy(), max_gap_s)
    raw_ms = {"ttft_ms": requests["ttft_s"].to_numpy() * 1e3,
              "tpot_ms": requests["tpot_s"].to_numpy() * 1e3,
              "e2el_ms": requests["e2e_s"].to_numpy() * 1e3,
              "itl_ms": np.asarray(max_gap_s, dtype=float) * 1e3}
    out: dict[str, dict[str, Any]] = {}
    for index, name in enumerate(names):
        mine = codes == index
        done = mine & completed
        targets = targets_by_class.get(name, default)
        meets = slo.meets(ms, targets, among=done)
        row: dict[str, Any] = {"requests": int(mine.sum()), "completed": int(done.sum()),
                               "slo": targets,
                               "request_goodput": float(meets.sum() / duration_s)
                               if duration_s > 0 else float("nan")}
        for key in ("ttft_ms", "tpot_ms", "e2el_ms"):
            values = raw_ms[key][done]
            values = values[~np.isnan(values)]
            for stat, q in (("median", 50), ("p99", 99)):
                row[f"{stat}_{key}"] = float(np.percentile(values, q)) if len(values) \
                    else float("nan")
        gaps = raw_ms["itl_ms"][done]
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
    from infersim.workload.config import GammaArrival, OfflineArrival, PoissonArrival

    arrival = sc.workload.arrival
    rate: Any = None
    burstiness: float | None = None
    if isinstance(arrival, OfflineArrival):
        rate = "inf"
    elif isinstance(arrival, PoissonArrival):
        rate, burstiness = arrival.rate, 1.0
    elif isinstance(arrival, GammaArrival):
        rate, burstiness = arrival.rate, arrival.shape
    return {"model_id": sc.model, "num_prompts": num_prompts, "request_rate": rate,
            "burstiness": burstiness, "max_concurrency": sc.workload.concurrency}


def assemble_summary(sc: Scenario, metrics: Mapping[str, Any], cost: CostReport) -> dict:
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
