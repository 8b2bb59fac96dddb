"""Steady-state reporting: the run's figures with the warm-up and the drain left out.

A simulated run starts empty and ends by draining: the first requests find idle instances, the
last ones leave the cluster emptying out. Whole-run throughput and goodput therefore depend on
run length (the same offered 4 req/s reads 2.1 or 3.8 req/s depending on how many requests were
sent), and a short run understates queueing. The steady window fixes that, by one rule:

    **The steady window is the middle 80 % of the arrival span**: from the first arrival plus
    10 % of the span (first to last arrival) to the first arrival plus 90 % of it.

Within it, *offered rate* is the requests arriving in the window per second of window;
*throughput* and *goodput* count requests that complete in the window (goodput: those meeting
every SLO target, ``<=``) per second of window; latency percentiles cover the completed
requests that *arrived* in the window. For a closed loop the arrival instants are the instants
each user sends, and the same rule holds.

Two warnings come with it (one line each, printed by ``infersim run``):

- **overloaded**: requests were refused in the window, or the requests in the system (arrived
  and not yet finished) grew over the window by more than 5 % of its arrivals (at least 5) while
  fewer requests completed than arrived (under 90 %) and the median TTFT of the window's last
  third of arrivals is over 1.5 times its first third's: the queue grows without bound and every
  latency depends on how long the run is (a queue that only fills up during the warm-up keeps its
  waits flat);
- **too short**: the window holds fewer than :data:`MIN_WINDOW_REQUESTS` arrivals, or lasts
  less than :data:`MIN_WINDOW_E2E` median end-to-end latencies, so it cannot show a steady state.

An offline batch (every request at ``t = 0``) has no arrival span and no steady window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from infersim.slo import meets, request_latencies_ms

WARMUP_FRACTION = 0.10  # of the arrival span, left out at the start
DRAIN_FRACTION = 0.10  # of the arrival span, left out at the end
MIN_WINDOW_REQUESTS = 100
MIN_WINDOW_E2E = 5.0  # the window should last at least this many median end-to-end latencies
RULE = ("middle 80 % of the arrival span (first 10 % warm-up and last 10 % drain left out); "
        "throughput and goodput count completions in the window, latencies the requests "
        "arriving in it")


def _percentiles(prefix: str, values_ms: np.ndarray) -> dict[str, float]:
    values_ms = values_ms[~np.isnan(values_ms)]
    if not len(values_ms):
        return {f"{s}_{prefix}": float("nan") for s in ("median", "p90", "p99")}
    return {f"median_{prefix}": float(np.median(values_ms)),
            f"p90_{prefix}": float(np.percentile(values_ms, 90)),
            f"p99_{prefix}": float(np.percentile(values_ms, 99))}


def in_system(arrival_s: np.ndarray, finish_s: np.ndarray, at_s: float) -> int:
    """Requests arrived by ``at_s`` and not finished by then (queued or being served)."""
    return int(np.count_nonzero(arrival_s <= at_s) - np.count_nonzero(finish_s <= at_s))


def steady_state(requests: pd.DataFrame, max_gap_s: np.ndarray, targets: Mapping[str, float],
                 duration_s: float) -> tuple[dict[str, Any], list[str]]:
    """The steady-window block of the summary and the warnings it calls for."""
    arrival = requests["arrival_at"].to_numpy(dtype=float)
    arrived = arrival <= duration_s
    if np.count_nonzero(arrived) < 2 or np.ptp(arrival[arrived]) <= 0:
        return {"rule": RULE, "window_s": None,
                "note": "every request arrived at once (offline batch): no steady window"}, []
    first, last = float(arrival[arrived].min()), float(arrival[arrived].max())
    span = last - first
    start, end = first + WARMUP_FRACTION * span, first + (1.0 - DRAIN_FRACTION) * span
    length = end - start
    completed = requests["completed"].to_numpy(dtype=bool)
    rejected = requests["rejected"].to_numpy(dtype=bool)
    last_token = requests["last_token_at"].to_numpy(dtype=float)
    # a refused request leaves at once; one in flight at a time limit never leaves
    finish = np.where(completed, last_token, np.where(rejected, arrival, np.inf))
    arrives_in = arrived & (arrival >= start) & (arrival <= end)
    done_in = completed & (last_token >= start) & (last_token <= end)
    latencies = request_latencies_ms(requests["ttft_s"].to_numpy(dtype=float),
                                     requests["tpot_s"].to_numpy(dtype=float),
                                     requests["e2e_s"].to_numpy(dtype=float), max_gap_s)
    good_in = meets(latencies, targets, done_in)
    output = requests["output_tokens"].to_numpy(dtype=float)
    prompt = requests["prompt_tokens"].to_numpy(dtype=float)
    measured = completed & arrives_in
    queue_start, queue_end = in_system(arrival, finish, start), in_system(arrival, finish, end)
    arrivals_in = int(np.count_nonzero(arrives_in))
    block: dict[str, Any] = {
        "rule": RULE, "window_s": [start, end],
        "offered_request_rate": (len(arrival[arrived]) - 1) / span,
        "window_offered_request_rate": arrivals_in / length,
        "window_requests": arrivals_in,
        "request_throughput": int(np.count_nonzero(done_in)) / length,
        "request_goodput": int(np.count_nonzero(good_in)) / length,
        "output_throughput": float(output[done_in].sum()) / length,
        "total_token_throughput": float((output + prompt)[done_in].sum()) / length,
        **_percentiles("ttft_ms", latencies["ttft_ms"][measured]),
        **_percentiles("tpot_ms", 1e3 * requests["tpot_s"].to_numpy(dtype=float)[measured]),
        **_percentiles("e2el_ms", latencies["e2el_ms"][measured]),
        "in_system_at_start": queue_start, "in_system_at_end": queue_end,
        "rejected": int(np.count_nonzero(rejected & arrives_in)),
    }
    warnings = []
    growth = queue_end - queue_start
    served_share = np.count_nonzero(done_in) / arrivals_in if arrivals_in else 1.0
    # A queue that fills while the run warms up also grows, but its waits stay flat; an
    # overloaded one makes each later request wait longer: compare the first and last thirds.
    third = length / 3.0
    early = measured & (arrival <= start + third)
    late = measured & (arrival >= end - third)
    ttft = latencies["ttft_ms"]
    waits_grow = bool(early.any() and late.any()
                      and np.median(ttft[late]) > 1.5 * np.median(ttft[early]))
    overloaded = block["rejected"] > 0 or (growth > max(5, 0.05 * arrivals_in)
                                           and served_share < 0.9 and waits_grow)
    block["overloaded"] = bool(overloaded)
    if overloaded:
        why = (f"{block['rejected']:,} requests refused in the steady window"
               if block["rejected"] else
               f"requests in the system grew from {queue_start:,} to {queue_end:,} over the "
               "steady window")
        warnings.append(
            f"overloaded: offered {block['window_offered_request_rate']:.3g} req/s, served "
            f"{block['request_throughput']:.3g} req/s in the steady window ({why}); latencies "
            "keep growing with the run's length: lower the load or add capacity")
    median_e2e_s = block["median_e2el_ms"] / 1e3
    short_reasons = []
    if arrivals_in < MIN_WINDOW_REQUESTS:
        short_reasons.append(f"holds {arrivals_in:,} arrivals (at least {MIN_WINDOW_REQUESTS} "
                             "wanted)")
    # (an overloaded run's latencies grow with its length: more requests will not settle them)
    if not overloaded and np.isfinite(median_e2e_s) and length < MIN_WINDOW_E2E * median_e2e_s:
        short_reasons.append(f"lasts {length:.3g} s, under {MIN_WINDOW_E2E:g} median end-to-end "
                             f"latencies ({median_e2e_s:.3g} s each)")
    block["too_short"] = bool(short_reasons)
    if short_reasons:
        warnings.append("run too short for a steady state: the steady window "
                        + " and ".join(short_reasons) + "; raise workload.requests")
    return block, warnings
