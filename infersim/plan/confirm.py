"""Stages 2 and 3 of the planner: confirm candidates by simulation, cheapest first, then find each
chosen candidate's maximum sustainable rate; and the order plans are ranked in."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from infersim.api import simulate
from infersim.errors import InfersimError
from infersim.plan.candidate import LAYOUTS, Candidate, Evaluation
from infersim.plan.executors import Executor, RunFailure
from infersim.plan.planned import candidate_data, source_label
from infersim.plan.runner import plain
from infersim.plan.target import LoadShape, RunLength
from infersim.scenario import validate_data
from infersim.slo import SLO, slo_verdict


@dataclass(frozen=True)
class SimTask:
    """One planner simulation, as plain data for a worker: scenario data and where it came from."""

    data: Mapping[str, Any]
    source: str
    base_dir: str


def simulate_task(task: SimTask) -> dict[str, Any]:
    """Validate and simulate one candidate scenario; the summary without the scenario echo."""

    scenario = validate_data(dict(task.data), file=task.source, base_dir=Path(task.base_dir))
    summary = plain(simulate(scenario).summary)
    summary.pop("scenario", None)
    return summary


class Simulator:
    """Runs batches of candidate scenarios on an executor, remembering every result."""

    def __init__(self, executor: Executor, base, base_data: Mapping[str, Any], slo: SLO,
                 seed: int | None, run_length: RunLength,
                 progress: Callable[[str], None] | None) -> None:
        self.executor = executor
        self.slo = slo
        self.base = base
        self.base_data = base_data
        self.seed = seed
        self.run_length = run_length
        self.progress = progress
        self.cache: dict[tuple, Mapping[str, Any]] = {}
        self.count = 0

    def data(self, candidate: Candidate, rate: float | None) -> dict:
        data = candidate_data(self.base_data, self.base, candidate, rate)
        # The planned scenario states the SLOs it was planned for, so its goodput counts them.
        data["slo"] = {**{f"{m}_ms": v for m, v in self.slo.targets().items()},
                       "percentile": self.slo.percentile}
        if self.seed is not None:
            data["seed"] = self.seed
        if rate is not None:
            data["workload"] = {**data["workload"],
                                "requests": self.run_length.requests_at(rate)}
        return data

    def verdict(self, summary: Mapping[str, Any], rate: float) -> tuple[bool, str]:
        return slo_verdict(summary, self.slo, self.run_length.requests_at(rate))

    def run(self, jobs: Sequence[tuple[Candidate, float]]) -> list[Mapping[str, Any]]:
        keys = [(c.key, round(r, 9)) for c, r in jobs]
        todo = {}
        for (candidate, rate), key in zip(jobs, keys, strict=True):
            if key not in self.cache and key not in todo:
                todo[key] = SimTask(self.data(candidate, rate), f"{source_label(self.base)} (planned)",
                                    str(self.base.base_dir))
        order = list(todo)
        for index, result in self.executor.map_unordered(simulate_task, [todo[k] for k in order]):
            if isinstance(result, RunFailure):
                raise InfersimError(f"planned scenario failed: {result.message}")
            self.cache[order[index]] = result
            self.count += 1
            if self.progress:
                self.progress(f"simulated {self.count}")
        return [self.cache[key] for key in keys]


def confirm_cheapest(candidates: Sequence[Candidate], rate: float, slo: SLO, load: LoadShape,
             simulator: Simulator, confirm: int, max_simulations: int,
             known: Mapping[tuple, Evaluation] | None = None) -> list[Evaluation]:
    """Simulate cheapest-first in waves of the executor's width until enough are confirmed.

    ``known`` holds verdicts from a narrower price band, kept rather than re-simulated;
    ``max_simulations`` bounds the planner's simulations in all.
    """
    known = known or {}
    evaluations = [known.get(c.key) or Evaluation(candidate=c) for c in candidates]
    wave = max(1, simulator.executor.workers)
    position = 0
    while position < len(evaluations) and simulator.count < max_simulations:
        confirmed = [ev for ev in evaluations if ev.slo_met]
        layouts_open = {c.layout for c in candidates} - {ev.candidate.layout for ev in confirmed}
        if len(confirmed) >= confirm and not layouts_open:
            break
        batch = []
        room = max(1, min(wave, max_simulations - simulator.count))
        while position < len(evaluations) and len(batch) < room:
            ev = evaluations[position]
            position += 1
            if ev.slo_met is not None:
                continue
            # Once a layout has enough confirmed plans, pricier plans of it teach nothing new.
            same = sum(1 for c in confirmed if c.candidate.layout == ev.candidate.layout)
            if same >= confirm or (same >= 1 and len(confirmed) >= confirm):
                continue
            batch.append(position - 1)
        if not batch:
            continue
        summaries = simulator.run([(evaluations[i].candidate, rate) for i in batch])
        for i, summary in zip(batch, summaries, strict=True):
            ok, reason = simulator.verdict(summary, rate)
            evaluations[i] = replace(evaluations[i], summary=summary, slo_met=ok, reason=reason)
    return evaluations


def search_max_rate(evaluations: list[Evaluation], rate: float | None, slo: SLO, load: LoadShape,
                     simulator: Simulator, confirm: int, steps: int) -> list[Evaluation]:
    """Double, then bisect, each chosen candidate's rate: the highest at which the SLOs hold.

    With a target rate the chosen are the ``confirm`` cheapest confirmed candidates plus the
    cheapest confirmed of each layout; under a budget alone, the ``confirm`` most promising.
    All chosen candidates advance one step together, so a step is one parallel wave.
    """
    if rate is not None:
        confirmed = [i for i, ev in enumerate(evaluations) if ev.slo_met]
        chosen = confirmed[:confirm]
        for layout in LAYOUTS:
            first = next((i for i in confirmed if evaluations[i].candidate.layout == layout), None)
            if first is not None and first not in chosen:
                chosen.append(first)
        lo = {i: rate for i in chosen}
        lo_summary = {i: evaluations[i].summary for i in chosen}
        hi = {i: max(2 * rate, evaluations[i].candidate.capacity_rps) for i in chosen}
    else:
        chosen = list(range(min(confirm, len(evaluations))))
        lo = {i: 0.0 for i in chosen}
        lo_summary = {i: None for i in chosen}
        hi = {i: evaluations[i].candidate.capacity_rps for i in chosen}
    if not chosen:
        return evaluations
    # Grow the upper end until it fails (at most three doublings), then bisect between the
    # highest rate that held and the lowest that failed.
    failing = dict.fromkeys(chosen, False)
    for _ in range(3):
        grow = [i for i in chosen if not failing[i]]
        if not grow:
            break
        results = simulator.run([(evaluations[i].candidate, hi[i]) for i in grow])
        for i, summary in zip(grow, results, strict=True):
            if simulator.verdict(summary, hi[i])[0]:
                lo[i], lo_summary[i] = hi[i], summary
                hi[i] *= 2
            else:
                failing[i] = True
    for _ in range(steps):
        mids = {i: (lo[i] + hi[i]) / 2 for i in chosen}
        results = simulator.run([(evaluations[i].candidate, mids[i]) for i in chosen])
        for i, summary in zip(chosen, results, strict=True):
            if simulator.verdict(summary, mids[i])[0]:
                lo[i], lo_summary[i] = mids[i], summary
            else:
                hi[i] = mids[i]
    out = list(evaluations)
    for i in chosen:
        ev = out[i]
        if rate is None:
            ok = lo_summary[i] is not None
            out[i] = replace(ev, slo_met=ok, summary=lo_summary[i],
                             reason="" if ok else "no rate found at which the SLOs hold",
                             max_rate=lo[i] if ok else None, max_rate_summary=lo_summary[i])
        else:
            out[i] = replace(ev, max_rate=lo[i], max_rate_summary=lo_summary[i])
    return out


def rank(evaluations: Sequence[Evaluation], *, budget_mode: bool) -> list[Evaluation]:
    """Confirmed plans first (cheapest, or most goodput per $ under a budget), then those that
    failed in simulation, then those never simulated — each group in a stable order."""
    def key(ev: Evaluation):
        group = 0 if ev.slo_met else (1 if ev.slo_met is False else 2)
        if budget_mode:
            gpd = ev.goodput_per_dollar
            return (group, -(gpd if gpd is not None and math.isfinite(gpd) else -1.0),
                    ev.candidate.cost_per_hour, ev.candidate.label)
        # Among plans of one price, the one with more headroom (a higher sustainable rate, then
        # a lower tail TTFT) is the better buy.
        headroom = -(ev.max_rate or 0.0)
        ttft = float((ev.summary or {}).get("p99_ttft_ms", math.inf))
        return (group, round(ev.candidate.cost_per_hour, 9), headroom,
                ttft if math.isfinite(ttft) else math.inf, ev.candidate.chips, ev.candidate.label)
    return sorted(evaluations, key=key)
