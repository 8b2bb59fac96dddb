"""From a run's per-request table to the summary a serving engineer reads.

Names and units follow ``vllm bench serve`` so that simulated and measured results sit side by
side: ``completed``, ``failed``, ``duration`` (s), ``request_throughput`` (req/s),
``output_throughput`` and ``total_token_throughput`` (tok/s), and ``mean_/median_/std_/p90_/p99_``
(plus ``p50_``) of ``ttft_ms``, ``tpot_ms``, ``itl_ms`` and ``e2el_ms``. As in vLLM:

- latency statistics cover completed requests; ``failed`` counts the requests that arrived and
  did not complete (rejected by admission control, or still in flight when a time limit stopped
  the run). Requests that had not yet arrived when a time limit stopped the run are neither: they
  are reported as ``infersim.not_arrived_at_stop``. With requests in flight at the stop, the
  latency percentiles describe only those that finished (the slowest are missing), so the
  summary then says so under ``infersim.percentiles_exclude_in_flight``;
- TPOT of one request is ``(e2e - ttft) / (output_tokens - 1)``; requests with one output token
  have none;
- ITL pools every gap between consecutive tokens of every completed request (so long requests
  weigh more than in TPOT); the percentiles are exact, computed on the gap multiset that the
  engine rebuilds from its epoch logs (never from per-request averages);
- ``request_goodput`` counts completed requests per second that meet *every* given SLO (``<=``).

SLOs: ``{ttft_ms, tpot_ms, itl_ms, e2el_ms, percentile}``, any subset, judged by
:mod:`infersim.slo` (a request meets the ITL target when its *largest* gap does).
``slo_attainment`` reports, per target, the ``percentile``-th percentile of that metric over
completed requests (pooled gaps for ITL) and whether it meets the target.

Everything the simulator knows beyond vLLM's keys sits under one key, ``infersim``: utilisation
and busy seconds per pool, KV-transfer statistics per link, preemptions, rejections and requests
in flight at the stop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from infersim.sim.result import SimResult, weighted_percentile, weighted_percentiles
from infersim.slo import DEFAULT_PERCENTILE, check_slo, meets, request_latencies_ms, target_met

PERCENTILES = (90, 99)


def _stats(prefix: str, values_ms: np.ndarray) -> dict[str, float]:
    values_ms = values_ms[~np.isnan(values_ms)]
    if len(values_ms) == 0:
        nan = float("nan")
        out = {f"mean_{prefix}": nan, f"median_{prefix}": nan, f"std_{prefix}": nan}
        out.update({f"p{p}_{prefix}": nan for p in (50, *PERCENTILES)})
        return out
    out = {f"mean_{prefix}": float(values_ms.mean()),
           f"median_{prefix}": float(np.median(values_ms)),
           f"std_{prefix}": float(values_ms.std())}
    out.update({f"p{p}_{prefix}": float(np.percentile(values_ms, p)) for p in (50, *PERCENTILES)})
    return out


def _weighted_stats(prefix: str, values_s: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    """Statistics of the multiset (value repeated count times), in ms; ``values_s`` sorted."""
    total = int(counts.sum(dtype=np.int64))
    if total == 0:
        return _stats(prefix, np.empty(0))
    # np.sum's pairwise summation, not np.dot: BLAS reductions round differently with the
    # thread count, and the same run must give the same bytes on a laptop and on a Ray worker
    mean = float(np.sum(values_s * counts) / total)
    spread = values_s - mean
    np.square(spread, out=spread)
    std = float(np.sqrt(np.sum(spread * counts) / total))
    del spread
    qs = (50, *PERCENTILES)
    ps = weighted_percentiles(values_s, counts, qs)
    out = {f"mean_{prefix}": mean * 1e3, f"median_{prefix}": ps[0] * 1e3,
           f"std_{prefix}": std * 1e3}
    out.update({f"p{q}_{prefix}": p * 1e3 for q, p in zip(qs, ps, strict=True)})
    return out


def summarize(result: SimResult, slo: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """vLLM-bench-style summary of a run (see the module docstring for every key)."""
    df = result.requests
    done = df["completed"].to_numpy()
    duration = result.duration_s
    per_s = (lambda x: x / duration) if duration > 0 else (lambda x: float("nan"))
    prompt = df["prompt_tokens"].to_numpy()[done]
    output = df["output_tokens"].to_numpy()[done]
    ttft_ms = df["ttft_s"].to_numpy()[done] * 1e3
    tpot_ms = df["tpot_s"].to_numpy()[done] * 1e3
    e2el_ms = df["e2e_s"].to_numpy()[done] * 1e3
    gaps_s, gap_counts = result.itl_distribution()

    arrived = df["arrival_at"].to_numpy() <= duration  # NaN (never issued) compares False
    summary: dict[str, Any] = {
        "completed": int(done.sum()),
        "failed": int((~done & arrived).sum()),
        "duration": float(duration),
        "total_input_tokens": int(prompt.sum()),
        "total_output_tokens": int(output.sum()),
        "request_throughput": per_s(float(done.sum())),
        "output_throughput": per_s(float(output.sum())),
        "total_token_throughput": per_s(float(prompt.sum() + output.sum())),
    }
    summary.update(_stats("ttft_ms", ttft_ms))
    summary.update(_stats("tpot_ms", tpot_ms))
    summary.update(_weighted_stats("itl_ms", gaps_s, gap_counts))
    summary.update(_stats("e2el_ms", e2el_ms))

    if slo is not None:
        targets = check_slo(slo)
        percentile = targets.pop("percentile", DEFAULT_PERCENTILE)
        per_request = request_latencies_ms(df["ttft_s"].to_numpy(), df["tpot_s"].to_numpy(),
                                           df["e2e_s"].to_numpy(), result.max_token_gap())
        meets_all = meets(per_request, targets, among=done)
        attainment = {}
        for key in targets:
            if key == "itl_ms":
                fleet = weighted_percentile(gaps_s, gap_counts, percentile) * 1e3
            else:
                values = {"ttft_ms": ttft_ms, "e2el_ms": e2el_ms,
                          "tpot_ms": tpot_ms[~np.isnan(tpot_ms)]}[key]
                fleet = float(np.percentile(values, percentile)) if len(values) else float("nan")
            attainment[key] = {"target": targets[key], "percentile": percentile, "value": fleet,
                               "met": target_met(fleet, targets[key])}
        summary["request_goodput"] = per_s(float(meets_all.sum()))
        summary["slo_attainment"] = attainment

    summary["infersim"] = _extras(result)
    return summary


def _extras(result: SimResult) -> dict[str, Any]:
    df = result.requests
    arrived = df["arrival_at"].to_numpy() <= result.duration_s
    transfer = df["transfer_s"].to_numpy()
    transfer = transfer[~np.isnan(transfer)]
    links = {row.link: {"bytes_moved": float(row.bytes_moved), "busy_s": float(row.busy_s),
                        "transfers": int(row.transfers),
                        "utilization": float(row.busy_s / result.duration_s)
                        if result.duration_s > 0 else 0.0,
                        "peak_concurrency": int(row.peak_concurrency)}
             for row in result.links.itertuples()}
    return {
        "seed": result.seed,
        "rejected": int(df["rejected"].sum()),
        "in_flight_at_stop": int((df["in_flight"].to_numpy() & arrived).sum()),
        "not_arrived_at_stop": int((~arrived).sum()),
        "percentiles_exclude_in_flight": bool((df["in_flight"].to_numpy() & arrived).any()),
        "preemptions": int(df["preemptions"].sum()),
        "preempted_requests": int((df["preemptions"] > 0).sum()),
        "utilization": {name: pool["utilization"] for name, pool in result.pools.items()},
        "busy_s": {name: pool["busy_s"] for name, pool in result.pools.items()},
        "chips": {name: pool["chips"] for name, pool in result.pools.items()},
        "kv_transfer": {
            "transfers": len(transfer),
            "mean_ms": float(transfer.mean() * 1e3) if len(transfer) else float("nan"),
            "p99_ms": float(np.percentile(transfer, 99) * 1e3) if len(transfer) else float("nan"),
            "links": links,
        },
        "mean_queue_ms": float(np.nanmean(df["queue_s"].to_numpy()) * 1e3)
        if df["queue_s"].notna().any() else float("nan"),
    }
