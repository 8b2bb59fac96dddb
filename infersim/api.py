"""The Python API: ``infersim.simulate(scenario) -> Result``.

One call runs one scenario end to end: load and check the scenario at the edge
(:mod:`infersim.scenario`), draw its workload from the run's seeds
(:mod:`infersim.scenario.seeds`, :mod:`infersim.scenario.preflight`),
build the engine's frozen cluster spec and run the discrete-event simulation
(:mod:`infersim.sim`), summarise the per-request table into vLLM-bench metrics
(:mod:`infersim.metrics`), price the run and assemble summary.json (:mod:`infersim.summary`).
The CLI and the notebooks are thin faces over this function; writing a :class:`Result` to a
folder is :func:`infersim.report.save.save_result`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from infersim.errors import InfersimError
from infersim.result import Result
from infersim.scenario import Resolved, Scenario, load_scenario
from infersim.scenario.build import prepare_run
from infersim.sim.result import SimResult
from infersim.summary import assemble_summary, class_summary, price_run

ScenarioLike = Scenario | str | Path | Mapping[str, Any]

__all__ = ["Result", "ScenarioLike", "simulate", "summarise_run"]


def simulate(scenario: ScenarioLike, *, seed: int | None = None, overrides: Sequence[str] = (),
             progress: Callable[[float], None] | None = None) -> Result:
    """Run one scenario (a file, a shipped name, a dict or a :class:`Scenario`).

    ``seed`` replaces the scenario's seed; ``overrides`` are ``key.path=value`` strings as for
    ``infersim run --set``. ``progress`` is called with the fraction of requests done.
    """
    from infersim.sim import simulate_cluster

    if progress is not None and not callable(progress):
        raise InfersimError(field="progress", expected="a callable taking the fraction done, "
                            "or None", given=progress)
    sc = load_scenario(scenario, overrides=overrides, seed=seed)
    prepared = prepare_run(sc)  # everything infersim validate checks, shared with it
    sim = simulate_cluster(prepared.cluster, prepared.workload, seed=prepared.engine_seed,
                           time_limit_s=sc.time_limit, progress=progress)
    return summarise_run(sc, prepared.resolved, sim, beyond_context=prepared.beyond_context,
                         warnings=prepared.warnings)


def summarise_run(sc: Scenario, resolved: Resolved, sim: SimResult, *, beyond_context: int = 0,
                  warnings: tuple[str, ...] = ()) -> Result:
    """A finished simulation as a :class:`Result`: vLLM-bench metrics, the bill, per-class and
    steady-state figures, the token-gap table. ``beyond_context`` requests were longer than the
    model's context window (see :func:`~infersim.scenario.preflight.beyond_context_requests`)."""
    from infersim.metrics import summarize
    from infersim.slo import stated_targets
    from infersim.steady import steady_state

    metrics = summarize(sim, sc.slo.model_dump(exclude_none=True))
    cost = price_run(sc, resolved, sim.pools, sim.requests, sim.duration_s)
    summary = assemble_summary(sc, metrics, cost)
    summary["infersim"]["beyond_context_requests"] = beyond_context
    max_gap = sim.max_token_gap()
    summary["classes"] = class_summary(sc, sim.requests, max_gap, sim.duration_s, cost)
    summary["steady_state"], steady_notes = steady_state(sim.requests, max_gap,
                                                         stated_targets(sc), sim.duration_s)
    warnings += tuple(steady_notes)
    gap_values, gap_counts = sim.itl_distribution()
    token_gaps = pd.DataFrame({"gap_s": np.asarray(gap_values, dtype=np.float64),
                               "count": np.asarray(gap_counts, dtype=np.int64)})
    return Result(scenario=sc, summary=summary, requests=sim.requests,
                  timeseries=sim.timeseries, links=sim.links, token_gaps=token_gaps, cost=cost,
                  sim=sim, warnings=warnings)
