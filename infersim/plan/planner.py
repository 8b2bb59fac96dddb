"""The capacity planner: the cheapest cluster whose simulated tail latencies hold at a given load.

The question an operator asks is "for my traffic — this model, this prompt/output mix, R
requests per second, p99 TTFT and ITL targets — which chips, how many, split how between prefill
and decode?" The planner answers it in three stages, cheapest work first.

1. **Size every shape with the cost model** (no simulation). A *shape* is a layout —
   *colocated* (one pool of mixed instances doing chunked prefill and decode, vLLM-style) or
   *disaggregated* (a prefill pool on one chip type, a decode pool on another, the KV cache
   shipped between them) — with a chip and a tensor-parallel degree per pool. For each, the
   roofline model gives:

   * whether the model fits an instance (``placement``) with room for at least one request's KV;
   * the *decode batch limit*: the largest batch whose step time at the mean context stays
     inside the ITL target (a step's time is one token's gap for every sequence in it), capped
     by the KV cache's room for whole requests and the pool's ``max_batch_size``;
   * decode capacity in tokens/s per instance = batch / step time, and prefill capacity in
     prompt tokens/s from a step that fills the token budget;
   * for colocated instances, a chunk size (``max_batch_tokens``) small enough that a decode
     step carrying a prefill chunk still meets the ITL target — the cost of colocation;
   * the fewest instances per pool that carry ``rate × mean prompt`` prefill tokens/s and
     ``rate × mean output`` decode tokens/s at 90% utilisation; every larger pool size is a
     candidate too, up to a price band (twice the cheapest cluster so sized, widened while
     nothing in it holds the SLOs). The band is a price, not headroom over the rate, so the
     search at a lower rate tries every cluster a higher-rate search would try at the prices it
     reaches: a plan confirmed at 2R is never cheaper than the plan found at R.

   Shapes that cannot meet the TTFT target even unloaded, or whose single-sequence decode step
   is slower than the ITL target, are pruned here.

2. **Confirm by simulation, cheapest first.** Candidates are simulated in order of $/h at the
   target rate (at most ``max_simulations`` runs in all), each chip family and layout in
   parallel; a candidate is *confirmed* when, over ``seeds`` seeds, every request completed, at
   least ``attainment`` (90%) of the requests met every target on their own, and the upper end
   of the 90% confidence interval of each SLO percentile holds its target less ``headroom``.
   The search stops once each chip family and layout has its cheapest confirmed candidate (or
   has failed four times in a row), so the answer has one row per chip family: its best plan,
   or why it has none.

3. **Find each confirmed candidate's maximum sustainable rate** by doubling then bisecting the
   arrival rate, keeping the highest rate at which the SLOs still hold — the plan's *goodput*
   in DistServe's sense. Goodput per dollar (requests per $ at that rate) ranks plans under a
   ``budget``, and breaks ties between plans of one price.

Everything is deterministic: the same scenario, rate, options and seed give the same plans.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from infersim.errors import InfersimError
from infersim.hardware import load_hardware
from infersim.plan.candidate import Evaluation, FamilyVerdict, PlanOutcome, Pruned
from infersim.plan.confirm import (
    MAX_FAILURES,
    Simulator,
    confirm_cheapest,
    rank,
    search_max_rate,
)
from infersim.plan.executors import Executor
from infersim.plan.planned import base_document, plan_description, plan_name, source_label
from infersim.plan.sizing import (
    DEFAULT_KV_TRANSFER,
    MAX_PRICE_BAND,
    PRICE_BAND,
    prices_for,
    size_candidates,
)
from infersim.plan.target import MAX_REQUESTS, STEADY_STATE_S, RunLength, load_shape
from infersim.scenario import Scenario
from infersim.scenario.seeds import derive_seed
from infersim.slo import SLO, slo_of

# Seeds each finalist is confirmed over, by default.
SEEDS = 3


def plan_capacity(scenario: str | Path | Scenario | Mapping[str, Any], *, rate: float | None,
                  hardware: Sequence[str] | None = None, budget: float | None = None,
                  executor: Executor, slo: SLO | None = None, requests: int | None = None,
                  seed: int | None = None, confirm: int = 3, max_simulations: int = 200,
                  bisection_steps: int = 4, progress: Callable[[str], None] | None = None,
                  min_span_s: float = STEADY_STATE_S, max_requests: int = MAX_REQUESTS,
                  seeds: int = SEEDS, precisions: Sequence[str] | None = None,
                  prices: Mapping[str, float] | None = None,
                  kv_transfer: str = DEFAULT_KV_TRANSFER) -> PlanOutcome:
    """Search pools for the cheapest plan meeting the SLOs at ``rate`` (or, with ``budget``, the
    most goodput per dollar within it), and each chip family's best plan or why it has none.
    See the module docstring for the three stages.

    ``scenario`` is the base: a scenario file or shipped name, a :class:`Scenario`, or a mapping
    of scenario fields (its pools are placeholders the planner replaces). ``seeds`` is how many
    seeds confirm each plan; ``slo.headroom`` the share of each target kept free; ``precisions``
    the precisions searched (default the base's); ``prices`` chip -> USD per chip-hour over the
    scenario's ``prices:`` and the hardware profiles'; ``kv_transfer`` which chips may prefill
    for which (``same_chip``, ``same_vendor`` or ``any``)."""
    if rate is None and budget is None:
        raise InfersimError(field="--rate", expected="a target rate (or a --budget)", given=None)
    if rate is not None and not rate > 0:
        raise InfersimError(field="--rate", expected="a rate > 0 (requests/s)", given=rate)
    if budget is not None and not budget > 0:
        raise InfersimError(field="--budget", expected="a budget > 0 ($/h)", given=budget)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise InfersimError(field="--seeds", expected="an integer >= 1", given=seeds)
    base, base_data = base_document(scenario)
    arrival = base.workload.arrival
    if arrival is None or not hasattr(arrival, "rate"):
        raise InfersimError(file=base.source, field="workload.arrival",
                            expected="an open-loop arrival with a rate (poisson or gamma) to plan "
                                     "for", given=getattr(arrival, "process", None))
    slo = slo or slo_of(base)
    if not slo.targets():
        raise InfersimError(file=base.source, field="slo", expected="at least one target "
                            "(ttft_ms, itl_ms, tpot_ms or e2el_ms) to plan against", given={})
    if not 0 <= slo.headroom < 1:
        raise InfersimError(field="--headroom", expected="a share in [0, 1)", given=slo.headroom)
    hardware = list(hardware) if hardware else sorted({p.hardware for p in base.pools.values()})
    for name in hardware:
        try:
            load_hardware(name)
        except InfersimError as err:
            raise InfersimError(field="--hardware", expected=err.expected or "a known chip",
                                given=name) from None
    if not (min_span_s >= 0 and math.isfinite(min_span_s)):
        raise InfersimError(field="--min-span", expected="seconds >= 0", given=min_span_s)
    if isinstance(max_requests, bool) or not isinstance(max_requests, int) or max_requests < 1:
        raise InfersimError(field="--max-requests", expected="an integer >= 1",
                            given=max_requests)
    price_book = prices_for(hardware, {**{k: v for k, v in base.prices.items()
                                          if k in {load_hardware(h).name for h in hardware}},
                                       **(prices or {})})
    if price_book.per_chip_hour != {load_hardware(h).name: load_hardware(h).price_per_chip_hour
                                    for h in hardware}:
        # The planned scenario carries the prices it was planned at, so its runs bill them.
        base_data = {**base_data, "prices": {**(base_data.get("prices") or {}),
                                             **price_book.per_chip_hour}}
    sim_requests = requests or base.workload.requests
    load = load_shape(base, requests=sim_requests)
    run_length = RunLength(requests=load.requests, min_span_s=float(min_span_s),
                           max_requests=max_requests)
    options = {"precisions": precisions, "prices": price_book, "kv_transfer": kv_transfer}
    candidates, pruned = size_candidates(base, load, slo, rate, hardware, budget, **options)
    simulator = Simulator(executor, base, base_data, slo, seed, run_length, progress)
    first_seed = simulator.seed_of(None)
    seed_list = [first_seed] + [derive_seed(first_seed, ("planner confirmation",), k)
                                for k in range(1, seeds)]
    notes: list[str] = []
    if not candidates:
        return PlanOutcome(rate=rate, budget=budget, slo=slo, load=load, evaluations=(),
                           best=None, pruned=tuple(pruned), simulations=0,
                           notes=("the cost model ruled out every shape; see pruned",),
                           run_length=run_length,
                           families=families_of(hardware, [], pruned, budget),
                           seeds=seeds, headroom=slo.headroom)
    if rate is not None:
        # Cheapest first, in widening price bands: while no candidate of the band holds the
        # SLOs, every pool size up to twice the price joins (see _sized_counts).
        band = PRICE_BAND
        evaluations = confirm_cheapest(candidates, rate, slo, load, simulator, confirm,
                                       max_simulations, seeds=seed_list)
        while (not any(ev.slo_met for ev in evaluations) and band < MAX_PRICE_BAND
               and simulator.count < max_simulations):
            band *= 2
            candidates, pruned = size_candidates(base, load, slo, rate, hardware, budget,
                                                 band=band, **options)
            evaluations = confirm_cheapest(candidates, rate, slo, load, simulator, confirm,
                                           max_simulations, seeds=seed_list,
                                           known={ev.candidate.key: ev for ev in evaluations})
    else:
        # Budget only: the candidates that promise the most requests per dollar go first.
        candidates = sorted(candidates, key=lambda c: (-c.capacity_rps / c.cost_per_hour, c.label))
        evaluations = [Evaluation(candidate=c) for c in candidates]
    evaluations = search_max_rate(evaluations, rate, slo, load, simulator, confirm,
                                  bisection_steps)
    ranked = rank(evaluations, budget_mode=rate is None)
    best = next((ev for ev in ranked if ev.slo_met), None)
    if simulator.count >= max_simulations:
        notes.append(f"the search stopped at --max-simulations {max_simulations}: some "
                     "candidates were not simulated")
    if best is None:
        notes.append("no simulated candidate met the SLOs; widen --hardware or relax the SLOs")
    elif best.max_rate and run_length.capped(best.max_rate):
        # A queue that grows slowly needs time to show: a short burst can pass the SLOs at a
        # rate the cluster could not hold for an hour.
        span = run_length.requests_at(best.max_rate) / best.max_rate
        notes.append(f"runs were capped at {max_requests} requests: at the best plan's maximum "
                     f"rate ({best.max_rate:.4g} req/s) they span {span:.0f} s of arrivals, "
                     f"under the {min_span_s:g} s asked for; raise --max-requests for "
                     "steady-state figures")
    best_data = None
    if best is not None:
        best_rate = rate if rate is not None else best.max_rate
        best_data = simulator.data(best.candidate, best_rate)
        # The base's own name and description speak of its placeholder pools: say what this is.
        best_data["name"] = plan_name(base.name, best.candidate)
        best_data["description"] = plan_description(
            best.candidate, rate=rate, slo=slo, source=source_label(base),
            requests=run_length.requests_at(best_rate), max_rate=best.max_rate, budget=budget)
        best_data = {"name": best_data.pop("name"), "description": best_data.pop("description"),
                     **best_data}
    return PlanOutcome(rate=rate, budget=budget, slo=slo, load=load, evaluations=tuple(ranked),
                       best=best, pruned=tuple(pruned), simulations=simulator.count,
                       best_scenario=best_data, notes=tuple(notes), run_length=run_length,
                       families=families_of(hardware, ranked, pruned, budget),
                       seeds=seeds, headroom=slo.headroom)


def families_of(hardware: Sequence[str], ranked: Sequence[Evaluation], pruned: Sequence[Pruned],
                budget: float | None) -> tuple[FamilyVerdict, ...]:
    """One row per chip asked for — its best confirmed plan on that chip alone, or why there is
    none — then each pairing of two chips whose confirmed plan beats both chips alone. Ranked
    evaluations come best first, so the first confirmed is the best."""
    names = list(dict.fromkeys(load_hardware(h).name for h in hardware))
    alone = {name: next((ev.candidate.cost_per_hour for ev in ranked
                         if ev.slo_met and ev.candidate.family == name), math.inf)
             for name in names}
    families = names + sorted({ev.candidate.family for ev in ranked
                               if ev.slo_met and ev.candidate.family not in names
                               and all(ev.candidate.cost_per_hour < alone[p.hardware]
                                       for p in ev.candidate.pools)})
    rows = []
    for family in families:
        mine = [ev for ev in ranked if ev.candidate.family == family]
        cut = [p for p in pruned if p.family == family]
        best = next((ev for ev in mine if ev.slo_met), None)
        simulated = [ev for ev in mine if ev.slo_met is not None]
        reason = "" if best is not None else _why_none(mine, simulated, cut, budget)
        rows.append(FamilyVerdict(family=family, best=best, reason=reason,
                                  candidates=len(mine), simulated=len(simulated),
                                  pruned=len(cut)))
    return tuple(rows)


def _why_none(mine: Sequence[Evaluation], simulated: Sequence[Evaluation],
              cut: Sequence[Pruned], budget: float | None) -> str:
    """Why a chip family has no plan, in the words a capacity planner would use."""
    if simulated:
        dearest = max(simulated, key=lambda ev: ev.candidate.cost_per_hour)
        if len(simulated) == len(mine):
            return (f"misses the SLOs at every size the cost model sized ({len(simulated)} "
                    f"simulated, up to {dearest.candidate.cost_per_hour:.2f} $/h): "
                    f"{dearest.reason}")
        return (f"misses the SLOs at its {len(simulated)} cheapest sizes (up to "
                f"{dearest.candidate.cost_per_hour:.2f} $/h; the search stops each layout of a "
                f"chip after {MAX_FAILURES} misses in a row, {len(mine) - len(simulated)} dearer "
                f"sizes not simulated): {dearest.reason}")
    if mine:
        return (f"not simulated: {len(mine)} candidates, none reached before the search "
                "stopped (raise --max-simulations)")
    if not cut:
        return "no candidate"
    over = [p for p in cut if "budget" in p.why]
    if over and budget is not None:
        return f"over budget: {over[0].why}"
    if all(p.why.startswith("has no ") for p in cut):
        return f"cannot run it: {cut[0].why}"
    fits = [p for p in cut if p.why.startswith("does not fit")]
    if fits:
        first = next((p for p in cut if not p.why.startswith("does not fit")), fits[0])
        return f"does not fit: {first.what}: {first.why}"
    counts = Counter(p.why.split(":")[0] for p in cut)
    common = counts.most_common(1)[0][0]
    example = next(p for p in cut if p.why.startswith(common))
    return (f"misses the SLOs at any size (cost model; {len(cut)} shapes ruled out), e.g. "
            f"{example.what}: {example.why}")
