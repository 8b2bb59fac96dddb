"""Stages 2 and 3 of the planner: confirm candidates by simulation, cheapest first, then find each
chosen candidate's maximum sustainable rate; and the order plans are ranked in."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import t as student_t

from infersim.api import simulate
from infersim.errors import InfersimError
from infersim.plan.candidate import LAYOUTS, Candidate, Evaluation
from infersim.plan.executors import Executor, RunFailure
from infersim.plan.planned import candidate_data, source_label
from infersim.plan.runner import plain
from infersim.plan.target import LoadShape, RunLength
from infersim.scenario import validate_data
from infersim.slo import SLO, attained, run_percentile, slo_verdict

# A chip family and layout is searched until it has a confirmed plan or misses this many
# candidates in a row (each dearer than the last).
MAX_FAILURES = 8
# Confirmation over several seeds states each SLO percentile as the mean over the seeds with this
# two-sided confidence interval; a plan meets a target when the interval's upper end does.
CONFIDENCE = 0.9


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

    def seed_of(self, seed: int | None) -> int:
        """The seed a run with ``seed`` (None: the planner's) simulates with."""
        if seed is not None:
            return seed
        return self.seed if self.seed is not None else int(self.base.seed)

    def run(self, jobs: Sequence[tuple[Candidate, float] | tuple[Candidate, float, int | None]]
            ) -> list[Mapping[str, Any]]:
        """Summaries of ``(candidate, rate[, seed])`` runs, in order; a seed of None is the
        planner's own."""
        full = [(job[0], job[1], job[2] if len(job) > 2 else None) for job in jobs]
        keys = [(c.key, round(r, 9), seed) for c, r, seed in full]
        todo = {}
        for (candidate, rate, seed), key in zip(full, keys, strict=True):
            if key not in self.cache and key not in todo:
                data = self.data(candidate, rate)
                if seed is not None:
                    data["seed"] = seed
                todo[key] = SimTask(data, f"{source_label(self.base)} (planned)",
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


def interval(values: Sequence[float]) -> tuple[float, float, float]:
    """(mean, low, high) of ``values``: the :data:`CONFIDENCE` Student-t interval of their mean
    (one value: no interval), never below zero (the values are latencies)."""
    data = np.asarray(values, dtype=float)
    mean = float(np.mean(data))
    if len(data) < 2 or not np.all(np.isfinite(data)):
        return mean, float(np.min(data)), float(np.max(data))
    half = float(student_t.ppf(0.5 + CONFIDENCE / 2, len(data) - 1)
                 * np.std(data, ddof=1) / math.sqrt(len(data)))
    return mean, max(0.0, mean - half), mean + half


def seeds_verdict(summaries: Sequence[Mapping[str, Any]], slo: SLO, requests: int
                  ) -> tuple[bool, str, dict[str, tuple[float, float, float]]]:
    """Whether a plan meets the SLOs over several seeds, with the stated confidence: every seed
    completes every request and keeps the attainment share, and for each SLO percentile the
    upper end of the confidence interval of its mean over the seeds stays under the target
    (less the headroom). Returns the verdict, the reason if not, and the intervals."""
    intervals = {slo.summary_key(metric): interval([run_percentile(s, slo, metric)
                                                    for s in summaries])
                 for metric in slo.targets()}
    for seed_index, summary in enumerate(summaries):
        completed = int(summary.get("completed", 0))
        ok, reason = (attained(summary, slo) if completed >= requests else
                      (False, f"{requests - completed} of {requests} requests did not complete"))
        if not ok:
            return False, f"seed {seed_index + 1} of {len(summaries)}: {reason}", intervals
    for metric in slo.targets():
        key = slo.summary_key(metric)
        mean, low, high = intervals[key]
        if not high <= slo.limit(metric):
            where = (f" over {len(summaries)} seeds" if len(summaries) > 1 else "")
            return (False, f"{key} {mean:.1f} [{low:.1f}, {high:.1f}]{where} > "
                           f"{slo.limit(metric):g}", intervals)
    return True, "", intervals


def group_of(candidate: Candidate) -> tuple[str, str]:
    """The search keeps one confirmed plan per chip family and layout."""
    return candidate.family, candidate.layout


def confirm_cheapest(candidates: Sequence[Candidate], rate: float, slo: SLO, load: LoadShape,
                     simulator: Simulator, confirm: int, max_simulations: int,
                     known: Mapping[tuple, Evaluation] | None = None, *,
                     seeds: Sequence[int] = (), max_failures: int = MAX_FAILURES
                     ) -> list[Evaluation]:
    """Simulate, cheapest first, until every (chip family, layout) group has a confirmed plan,
    has failed ``max_failures`` times in a row, or has nothing left to try.

    Each wave simulates, in parallel, the next candidate of every open group on the first seed
    (the screen) and, for candidates the screen passed, the remaining ``seeds``; a plan is
    confirmed only by :func:`seeds_verdict` over all of them. Plans on two kinds of chip are
    tried only while cheaper than the cheapest confirmed plan: they matter only if they win.
    ``known`` holds verdicts from a narrower price band, kept rather than re-simulated;
    ``max_simulations`` bounds the simulations of this stage.
    """
    known = known or {}
    evaluations = [known.get(c.key) or Evaluation(candidate=c) for c in candidates]
    extra = tuple(seeds[1:])
    screened: dict[int, Mapping[str, Any]] = {}
    failures: dict[tuple[str, str], int] = {}
    requests = simulator.run_length.requests_at(rate)
    while simulator.count < max_simulations:
        confirmed = [ev for ev in evaluations if ev.slo_met]
        done = {group_of(ev.candidate) for ev in confirmed}
        cheapest = min((ev.candidate.cost_per_hour for ev in confirmed), default=math.inf)
        screens, finals, seen = [], [], set()
        for i, ev in enumerate(evaluations):
            group = group_of(ev.candidate)
            if ev.slo_met is not None or group in done or group in seen:
                continue
            if failures.get(group, 0) >= max_failures:
                continue
            if " -> " in ev.candidate.family and not ev.candidate.cost_per_hour < cheapest:
                continue
            seen.add(group)
            (finals if i in screened else screens).append(i)
        if not screens and not finals:
            break
        room = max(1, max_simulations - simulator.count)
        screens = screens[:room]
        jobs = [(evaluations[i].candidate, rate, None) for i in screens]
        jobs += [(evaluations[i].candidate, rate, seed) for i in finals for seed in extra]
        results = simulator.run(jobs)
        for i, summary in zip(screens, results, strict=False):
            ok, reason = simulator.verdict(summary, rate)
            group = group_of(evaluations[i].candidate)
            if not ok:
                evaluations[i] = replace(evaluations[i], summary=summary, slo_met=False,
                                         reason=reason, seeds=(simulator.seed_of(None),))
                failures[group] = failures.get(group, 0) + 1
            elif not extra:
                _, _, spans = seeds_verdict([summary], slo, requests)
                evaluations[i] = replace(evaluations[i], summary=summary, slo_met=True,
                                         seeds=(simulator.seed_of(None),), intervals=spans)
            else:
                screened[i] = summary
        rest = results[len(screens):]
        for n, i in enumerate(finals):
            summaries = [screened[i], *rest[n * len(extra):(n + 1) * len(extra)]]
            ok, reason, spans = seeds_verdict(summaries, slo, requests)
            group = group_of(evaluations[i].candidate)
            evaluations[i] = replace(evaluations[i], summary=screened[i], slo_met=ok,
                                     reason=reason, intervals=spans,
                                     seeds=(simulator.seed_of(None), *extra))
            if not ok:
                failures[group] = failures.get(group, 0) + 1
    return evaluations


def search_max_rate(evaluations: list[Evaluation], rate: float | None, slo: SLO, load: LoadShape,
                     simulator: Simulator, confirm: int, steps: int) -> list[Evaluation]:
    """Double, then bisect, each chosen candidate's rate: the highest at which the SLOs hold.

    With a target rate the chosen are the ``confirm`` cheapest confirmed candidates plus the
    cheapest confirmed of each layout and of each chip family; under a budget alone, the
    ``confirm`` most promising and the most promising of each chip (requests/s per $ by the
    cost model).
    All chosen candidates advance one step together, so a step is one parallel wave.
    """
    if rate is not None:
        confirmed = [i for i, ev in enumerate(evaluations) if ev.slo_met]
        chosen = confirmed[:confirm]
        families = sorted({evaluations[i].candidate.family for i in confirmed})
        for layout in LAYOUTS:
            first = next((i for i in confirmed if evaluations[i].candidate.layout == layout), None)
            if first is not None and first not in chosen:
                chosen.append(first)
        for family in families:
            first = next(i for i in confirmed if evaluations[i].candidate.family == family)
            if first not in chosen:
                chosen.append(first)
        lo = {i: rate for i in chosen}
        lo_summary = {i: evaluations[i].summary for i in chosen}
        hi = {i: max(2 * rate, evaluations[i].candidate.capacity_rps) for i in chosen}
    else:
        chosen = list(range(min(confirm, len(evaluations))))
        # and each chip family's most promising, so every chip gets an answer under the budget
        for family in dict.fromkeys(ev.candidate.family for ev in evaluations):
            first = next(i for i, ev in enumerate(evaluations) if ev.candidate.family == family)
            if first not in chosen and " -> " not in family:
                chosen.append(first)
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
