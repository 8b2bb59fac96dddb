"""Replaying a measured benchmark through a scenario's cluster.

The benchmark fixes the workload; the scenario fixes the deployment. A replay keeps the
scenario's pools, chips, model, router and seed and swaps its workload for the benchmark's:

- **lengths**: request by request when the result file saved them (vLLM ``--save-detailed``,
  guidellm's ``requests.successful``), else every request at the run's mean prompt and output
  lengths (genai-perf and AIPerf exports keep only statistics);
- **timing**: a closed loop of ``concurrency`` streams with no think time (vLLM
  ``--max-concurrency`` with ``--request-rate inf``, guidellm ``concurrent``/``synchronous``,
  genai-perf ``--concurrency``); an open loop at the measured ``request_rate`` with vLLM's
  gamma ``burstiness`` (the file's own send instants when it saved them); or every request at
  once (``offline``, guidellm ``throughput``).

At most ``max_requests`` requests are replayed (the first ones), which bounds the time a fit
takes on long benchmarks. The simulated statistics come out under the same vLLM names as the
measured ones (:data:`~infersim.calibrate.formats.METRICS`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from infersim.calibrate.formats import METRICS, BenchRun
from infersim.scenario import Scenario, build_cluster, load_scenario, resolve
from infersim.workload import ClosedLoop, RequestTable
from infersim.workload.arrivals import gamma_arrivals, offline_arrivals, poisson_arrivals

DEFAULT_MAX_REQUESTS = 400


def replay_workload(run: BenchRun, *, seed: int,
                    max_requests: int = DEFAULT_MAX_REQUESTS) -> RequestTable | ClosedLoop:
    """The benchmark's workload as the engine takes it."""
    if run.prompt_tokens is not None and run.output_tokens is not None:
        prompt = np.maximum(run.prompt_tokens[:max_requests], 1).astype(np.int64)
        output = np.maximum(run.output_tokens[:max_requests], 1).astype(np.int64)
    else:
        n = min(run.requests or max_requests, max_requests)
        prompt = np.full(n, max(1, round(run.mean_prompt_tokens)), dtype=np.int64)
        output = np.full(n, max(1, round(run.mean_output_tokens)), dtype=np.int64)
    n = len(prompt)
    rng = np.random.default_rng(seed)
    load = run.load
    if load.kind == "concurrency":
        table = RequestTable(arrival_s=offline_arrivals(n), prompt_tokens=prompt,
                             output_tokens=output)
        return ClosedLoop(users=int(load.value), requests=table)
    if load.kind == "offline":
        arrival = offline_arrivals(n)
    elif run.start_s is not None and len(run.start_s) >= n:
        arrival = np.asarray(run.start_s[:n], dtype=np.float64)
    elif load.burstiness == 1.0:
        arrival = poisson_arrivals(n, load.value, rng)
    else:
        arrival = gamma_arrivals(n, load.value, load.burstiness, rng)
    return RequestTable(arrival_s=arrival, prompt_tokens=prompt, output_tokens=output)


def check_replayable(scenario: Scenario) -> Any:
    """The scenario's checks short of its workload (topology, chips, model fit): a replay keeps
    everything but the workload. Returns the resolved chips and deployments."""
    from infersim.scenario import check_scaleup_domains, check_topology

    check_topology(scenario)
    resolved = resolve(scenario)
    check_scaleup_domains(scenario, resolved)
    return resolved


def simulate_run(scenario: Scenario, run: BenchRun, overrides: Sequence[str] = (), *,
                 max_requests: int = DEFAULT_MAX_REQUESTS) -> dict[str, float]:
    """Simulated statistics of ``run`` on ``scenario`` with ``overrides`` (``key.path=value``)
    applied: the keys of :data:`METRICS` the run measured, plus ``completed``."""
    from infersim.metrics import summarize
    from infersim.sim import simulate_cluster

    sc = load_scenario(scenario, overrides=overrides) if overrides else scenario
    cluster = build_cluster(sc, resolve(sc))
    workload = replay_workload(run, seed=sc.seed, max_requests=max_requests)
    sim = simulate_cluster(cluster, workload, seed=sc.seed)
    summary = summarize(sim, {})
    out = {key: float(summary[key]) for key in METRICS if key in run.metrics}
    out["completed"] = float(summary["completed"])
    return out
