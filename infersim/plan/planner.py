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
   target rate (at most ``max_simulations`` runs in all); a candidate is *confirmed* when every SLO percentile holds, every request
   completed, and at least ``attainment`` (90%) of the requests met every target on their own. The search stops once enough are confirmed (and each layout has its cheapest
   confirmed candidate, so the report can say whether disaggregation won at this load).

3. **Find each confirmed candidate's maximum sustainable rate** by doubling then bisecting the
   arrival rate, keeping the highest rate at which the SLOs still hold — the plan's *goodput*
   in DistServe's sense. Goodput per dollar (requests per $ at that rate) ranks plans under a
   ``budget``, and breaks ties between plans of one price.

Everything is deterministic: the same scenario, rate, options and seed give the same plans.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from infersim.api import simulate
from infersim.cost import (
    Deployment,
    StepBatch,
    decode_time,
    min_chips,
    placement,
    prefill_time,
    step_time,
)
from infersim.errors import InfersimError
from infersim.hardware import load_hardware
from infersim.plan.executors import Executor, RunFailure
from infersim.plan.runner import plain
from infersim.scenario import (
    Scenario,
    find_scenario,
    load_scenario,
    read_yaml,
    resolve,
    validate_data,
)
from infersim.workload import build_workload

LAYOUTS = ("colocated", "disaggregated")
# The highest utilisation the cost model may plan a pool for: queueing grows without bound as
# utilisation nears 1, and the cost model's rates are means.
MAX_UTILISATION = 0.9
# Candidates are every pool size from that minimum up to this multiple of the cheapest sized
# cluster's price; while no plan is confirmed, the band doubles, up to MAX_PRICE_BAND.
PRICE_BAND = 2.0
MAX_PRICE_BAND = 8.0
TP_CHOICES = (1, 2, 4, 8)
CHUNK_CHOICES = (8192, 4096, 2048, 1024, 512)
# The decode step at the *mean* context must leave this share of the ITL target free: the tail
# (p99) step carries longer contexts and, colocated, a prefill chunk.
ITL_STEP_SHARE = 0.8
TTFT_PREFILL_SHARE = 0.8
SLO_METRICS = ("ttft", "itl", "tpot", "e2el")
# Arrivals every planner simulation should span before its verdict is read as sustainable, and
# the most requests one simulation may take to get there.
STEADY_STATE_S = 60.0
MAX_REQUESTS = 4000


# --------------------------------------------------------------------------------------------
# What is planned for
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SLO:
    """Latency targets (ms) at one percentile; ``None`` targets are not checked.

    ``attainment`` is the share of requests that must meet every target on their own (each
    request's TTFT, TPOT and E2E, and its *largest* token gap): percentiles over pooled token gaps
    can hold while every request stalls once — a decode slot that frees up seconds after the
    first token is one gap in hundreds — so a plan must also keep most users inside the SLO, as
    DistServe's goodput does (90% by default).
    """

    ttft_ms: float | None = None
    itl_ms: float | None = None
    tpot_ms: float | None = None
    e2el_ms: float | None = None
    percentile: float = 99.0
    attainment: float = 0.9

    def targets(self) -> dict[str, float]:
        return {m: getattr(self, f"{m}_ms") for m in SLO_METRICS
                if getattr(self, f"{m}_ms") is not None}

    def summary_key(self, metric: str) -> str:
        p = self.percentile
        return f"p{int(p) if float(p).is_integer() else p}_{metric}_ms"

    @property
    def step_budget_s(self) -> float | None:
        """The longest decode step the ITL (or TPOT) target allows."""
        bounds = [v for v in (self.itl_ms, self.tpot_ms) if v is not None]
        return min(bounds) / 1000.0 if bounds else None


@dataclass(frozen=True)
class RunLength:
    """How many requests a planner simulation at a given rate draws.

    A fixed count covers ever fewer seconds of arrivals as the rate rises — 200 requests are
    4 s at 50 req/s — and a queue that grows slowly passes the SLOs over a short burst at a rate
    the cluster could not hold for an hour. So each run takes at least ``requests`` (the
    scenario's or ``--requests``) and enough to span ``min_span_s`` of arrivals, at most
    ``max_requests`` (which bounds only the scaling, never the count asked for).
    """

    requests: int
    min_span_s: float = STEADY_STATE_S
    max_requests: int = MAX_REQUESTS

    def requests_at(self, rate: float) -> int:
        spanning = math.ceil(rate * self.min_span_s - 1e-9)
        return max(self.requests, min(self.max_requests, spanning))

    def capped(self, rate: float) -> bool:
        """Whether the cap keeps a run at ``rate`` short of the minimum span."""
        return self.requests_at(rate) < rate * self.min_span_s - 1e-9


@dataclass(frozen=True)
class LoadShape:
    """The workload as the cost model sees it: mean lengths of a draw of its requests."""

    mean_prompt: float
    mean_output: float
    requests: int

    @property
    def mean_context(self) -> float:
        """Average KV length a decoding sequence attends to over its life."""
        return self.mean_prompt + self.mean_output / 2.0

    @property
    def full_length(self) -> float:
        return self.mean_prompt + self.mean_output


@dataclass(frozen=True)
class PoolPlan:
    name: str
    role: str                    # "prefill" | "decode" | "mixed"
    hardware: str
    tp: int
    pp: int
    instances: int
    max_batch_size: int
    max_batch_tokens: int

    @property
    def chips(self) -> int:
        return self.tp * self.pp * self.instances

    def describe(self) -> str:
        layout = f"tp{self.tp}" + (f"pp{self.pp}" if self.pp > 1 else "")
        return f"{self.instances}x {self.hardware} {layout}"


@dataclass(frozen=True)
class Candidate:
    """One cluster the planner may recommend, with its cost-model estimates."""

    layout: str
    pools: tuple[PoolPlan, ...]
    cost_per_hour: float
    capacity_rps: float          # requests/s the cost model says it carries at full utilisation
    utilisation_target: float    # the target it was sized for

    @property
    def chips(self) -> int:
        return sum(pool.chips for pool in self.pools)

    @property
    def label(self) -> str:
        parts = [f"{p.role} {p.describe()}" for p in self.pools]
        return " + ".join(parts)

    @property
    def key(self) -> tuple:
        return (self.layout, tuple((p.role, p.hardware, p.tp, p.pp, p.instances, p.max_batch_size,
                                    p.max_batch_tokens) for p in self.pools))


@dataclass(frozen=True)
class Evaluation:
    """A candidate's simulated verdict at the target rate and its search for the maximum rate."""

    candidate: Candidate
    summary: Mapping[str, Any] | None = None     # at the target rate
    slo_met: bool | None = None                   # None: not simulated
    reason: str = ""
    max_rate: float | None = None                 # highest rate found to hold the SLOs
    max_rate_summary: Mapping[str, Any] | None = None

    @property
    def goodput_per_dollar(self) -> float | None:
        """Requests per dollar at the maximum sustainable rate: goodput as DistServe defines it
        (the highest request rate served within the SLOs) divided by the hourly price."""
        if not self.max_rate:
            return None
        return self.max_rate * 3600.0 / self.candidate.cost_per_hour


@dataclass(frozen=True)
class PlanOutcome:
    rate: float | None
    budget: float | None
    slo: SLO
    load: LoadShape
    evaluations: tuple[Evaluation, ...]         # ranked: best first
    best: Evaluation | None
    pruned: tuple[tuple[str, str], ...]          # (shape, why) the cost model ruled out
    simulations: int
    best_scenario: dict | None = None            # the best plan as scenario data (YAML-ready)
    notes: tuple[str, ...] = field(default=())
    run_length: RunLength | None = None          # requests per simulation at each rate

    def best_of(self, layout: str) -> Evaluation | None:
        for ev in self.evaluations:
            if ev.candidate.layout == layout and ev.slo_met:
                return ev
        return None


# --------------------------------------------------------------------------------------------
# Stage 1: the cost model
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Shape:
    """One chip at one (tp, pp) with the capacities the cost model gives it for this load."""

    hardware: str
    tp: int
    pp: int
    price_per_instance_hour: float
    decode_batch: int               # sequences per decode step within the ITL target
    decode_batch_kv: int            # whole requests the KV cache holds at once
    decode_tokens_per_s: float      # per instance
    prefill_tokens_per_s: float     # per instance, prefill-only pool
    prefill_one_s: float            # one mean prompt, alone
    kv_bytes_per_token: float
    scaleout_bandwidth: float       # per instance (tp·pp NICs)
    scaleout_latency_s: float


def _deployment(model, chip, precision: str, kv_precision: str | None, tp: int, pp: int, ideal: bool):

    return Deployment(model=model, hardware=chip, precision=precision, kv_precision=kv_precision,
                      tp=tp, pp=pp, ideal=ideal)


def _layouts_for(chip, model, precision, kv_precision, ideal, memory_fraction, load: LoadShape):
    """(tp, pp) choices for a chip: the TPs inside its scale-up domain that fit, else a pipeline."""

    fitting = []
    for tp in TP_CHOICES:
        if tp > chip.scaleup_domain_chips:
            break
        dep = _deployment(model, chip, precision, kv_precision, tp, 1, ideal)
        if placement(dep, memory_fraction).kv_capacity_tokens >= load.full_length:
            fitting.append((tp, 1))
        if len(fitting) == 2:   # the smallest fitting TP and the next: more chips rarely pay
            break
    if fitting:
        return fitting
    # SRAM machines (and big models on small chips) need many chips in sequence: layers are
    # spread over pipeline stages, each stage a TP group inside the scale-up domain.
    tp = min(max(TP_CHOICES), chip.scaleup_domain_chips)
    probe = _deployment(model, chip, precision, kv_precision, tp, 1, ideal)
    need = min_chips(probe, memory_fraction, kv_tokens=int(64 * load.full_length))
    pp = max(1, math.ceil(need / tp))
    dep = _deployment(model, chip, precision, kv_precision, tp, pp, ideal)
    if placement(dep, memory_fraction).kv_capacity_tokens >= load.full_length:
        return [(tp, pp)]
    return []


def _shape(chip, model, precision, kv_precision, ideal, memory_fraction, tp, pp,
           load: LoadShape, slo: SLO, max_batch_size: int, max_batch_tokens: int) -> _Shape | str:
    """Capacities of one instance, or the reason the shape cannot serve this load."""

    dep = _deployment(model, chip, precision, kv_precision, tp, pp, ideal)
    place = placement(dep, memory_fraction)
    prompt = max(1, round(load.mean_prompt))
    context = max(1, round(load.mean_context))
    prefill_one = prefill_time(dep, [prompt])
    if slo.ttft_ms is not None and prefill_one > TTFT_PREFILL_SHARE * slo.ttft_ms / 1000.0:
        return (f"prefill of a mean prompt takes {prefill_one * 1000:.0f} ms, over "
                f"{TTFT_PREFILL_SHARE:.0%} of the TTFT target")
    kv_batch = max(1, int(place.kv_capacity_tokens // load.full_length))
    batch_cap = min(max_batch_size, kv_batch)
    budget = slo.step_budget_s
    if budget is not None:
        step_budget = ITL_STEP_SHARE * budget
        if decode_time(dep, 1, context) > step_budget:
            return (f"one decode step takes {decode_time(dep, 1, context) * 1000:.1f} ms even for "
                    f"one sequence, over {ITL_STEP_SHARE:.0%} of the ITL target")
        # decode_time grows with the batch: bisect for the largest batch inside the budget.
        lo, hi = 1, batch_cap
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if decode_time(dep, mid, context) <= step_budget:
                lo = mid
            else:
                hi = mid - 1
        batch_cap = lo
    decode_rate = batch_cap / decode_time(dep, batch_cap, context)
    per_step = max(1, max_batch_tokens // prompt)
    prefill_rate = per_step * prompt / prefill_time(dep, [prompt] * per_step)
    return _Shape(hardware=chip.name, tp=tp, pp=pp,
                  price_per_instance_hour=chip.price_per_chip_hour * tp * pp,
                  decode_batch=batch_cap, decode_batch_kv=kv_batch, decode_tokens_per_s=decode_rate,
                  prefill_tokens_per_s=prefill_rate, prefill_one_s=prefill_one,
                  kv_bytes_per_token=place.kv_bytes_per_token,
                  scaleout_bandwidth=chip.scaleout_bandwidth * tp * pp,
                  scaleout_latency_s=chip.scaleout_latency_s)


def _colocated(chip, model, precision, kv_precision, ideal, shape: _Shape, load: LoadShape,
               slo: SLO, batch_cap: int) -> tuple[int, int, float] | None:
    """The batching limits of a colocated (chunked-prefill) instance and its busy time per request.

    A step that carries a prefill chunk also advances every decoding sequence, so that step's
    time is a token gap for all of them: the chunk and the decode batch share the ITL target.
    For each chunk size, the largest decode batch that keeps such a step inside the target is
    found; the pair that serves a request in the least busy time wins. Returns
    ``(chunk tokens, decode batch, busy seconds per request)``, or None if no pair fits.
    """
    dep = _deployment(model, chip, precision, kv_precision, shape.tp, shape.pp, ideal)
    budget = slo.step_budget_s
    limit = ITL_STEP_SHARE * budget if budget is not None else math.inf
    context = max(1, round(load.mean_context))

    def with_chunk(chunk: int, batch: int) -> float:
        return step_time(dep, StepBatch(prefill_new_tokens=(chunk,), prefill_context=(0,),
                                        decode_kv_lens=(context,) * batch)).time_s

    best: tuple[int, int, float] | None = None
    for chunk in CHUNK_CHOICES:
        if with_chunk(chunk, 1) > limit:
            continue
        lo, hi = 1, batch_cap
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if with_chunk(chunk, mid) <= limit:
                lo = mid
            else:
                hi = mid - 1
        decode_s = decode_time(dep, lo, context)
        decode_rate = lo / decode_s
        # The chunk's marginal cost: what the step costs beyond the decode work it carries.
        prefill_rate = chunk / max(with_chunk(chunk, lo) - decode_s, 1e-12)
        busy = load.mean_prompt / prefill_rate + load.mean_output / decode_rate
        if best is None or busy < best[2] - 1e-15:
            best = (chunk, lo, busy)
    return best


def size_candidates(base, load: LoadShape, slo: SLO, rate: float | None, hardware: Sequence[str],
                    budget: float | None = None, *, band: float = PRICE_BAND,
                    ) -> tuple[list[Candidate], list[tuple[str, str]]]:
    """Every candidate cluster the cost model admits, and the shapes it ruled out (and why).

    With a ``rate``, every pool size from the least that carries the rate at
    ``MAX_UTILISATION`` up to ``band`` times the cheapest such cluster's price (see
    :func:`_sized_counts`). With only a ``budget``, each shape is scaled to the largest balanced
    cluster the budget buys.
    """
    # resolve() loads the model the way a run does (shipped name or path beside the scenario).
    model = resolve(base).model
    template = _template_pool(base)
    precision = template.get("precision") or base.precision
    kv_precision = template.get("kv_precision")
    memory_fraction = float(template.get("memory_fraction", 0.9))
    max_batch_size, max_batch_tokens = _batch_limits(base)
    pruned: list[tuple[str, str]] = []
    shapes: list[_Shape] = []
    chip_of: dict[str, Any] = {}
    for name in hardware:
        chip = load_hardware(name)
        chip_of[chip.name] = chip
        try:
            chip.flops(precision)
        except InfersimError:
            pruned.append((chip.name, f"has no {precision} peak"))
            continue
        layouts = _layouts_for(chip, model, precision, kv_precision, base.ideal, memory_fraction, load)
        if not layouts:
            pruned.append((chip.name, "the model and one request's KV do not fit an instance"))
        for tp, pp in layouts:
            shape = _shape(chip, model, precision, kv_precision, base.ideal, memory_fraction, tp,
                           pp, load, slo, max_batch_size, max_batch_tokens)
            if isinstance(shape, str):
                pruned.append((f"{chip.name} tp{tp}" + (f"pp{pp}" if pp > 1 else ""), shape))
            else:
                shapes.append(shape)

    prefill_load = (rate or 1.0) * load.mean_prompt     # tokens/s (per request/s if no rate)
    decode_load = (rate or 1.0) * load.mean_output
    # A family is one layout of shapes whose pool sizes are still free: per pool, the busy
    # instance-seconds per second it must carry at 100% and the price of one instance, and how
    # to build the candidate for a vector of instance counts.
    families: list[tuple[tuple[float, ...], tuple[float, ...], Callable[..., Candidate]]] = []

    for shape in shapes:
        # Colocated: every instance prefills in chunks and decodes; its busy time per request is
        # prompt / prefill rate + output / decode rate. The chunk keeps the ITL target.
        chip = chip_of[shape.hardware]
        batch_cap = min(max_batch_size, shape.decode_batch_kv)
        colocated = _colocated(chip, model, precision, kv_precision, base.ideal, shape, load,
                               slo, batch_cap)
        if colocated is None:
            pruned.append((f"colocated {shape.hardware} tp{shape.tp}",
                           "a decode step carrying even a 512-token prefill chunk misses the "
                           "ITL target"))
            continue
        chunk, batch, busy_per_request = colocated

        def build_colocated(n: int, shape=shape, batch=batch, chunk=chunk,
                            busy_per_request=busy_per_request) -> Candidate:
            pool = PoolPlan("serve", "mixed", shape.hardware, shape.tp, shape.pp, n, batch, chunk)
            return _candidate("colocated", (pool,), n * shape.price_per_instance_hour,
                              n / busy_per_request, rate)

        families.append(((busy_per_request * (rate or 1.0),), (shape.price_per_instance_hour,),
                         build_colocated))
    for pre in shapes:
        for dec in shapes:
            # KV shipped per request must not eat the TTFT target either.
            transfer_s = (load.mean_prompt * pre.kv_bytes_per_token
                          / min(pre.scaleout_bandwidth, dec.scaleout_bandwidth)
                          + max(pre.scaleout_latency_s, dec.scaleout_latency_s))
            if slo.ttft_ms is not None and pre.prefill_one_s + transfer_s > \
                    TTFT_PREFILL_SHARE * slo.ttft_ms / 1000.0:
                pruned.append((f"disaggregated {pre.hardware} tp{pre.tp} -> {dec.hardware} "
                               f"tp{dec.tp}", "prefill plus KV transfer of a mean prompt misses "
                                              "the TTFT target"))
                continue

            def build_disaggregated(n_p: int, n_d: int, pre=pre, dec=dec) -> Candidate:
                pools = (PoolPlan("prefill", "prefill", pre.hardware, pre.tp, pre.pp, n_p,
                                  max_batch_size, max_batch_tokens),
                         PoolPlan("decode", "decode", dec.hardware, dec.tp, dec.pp, n_d,
                                  dec.decode_batch, max_batch_tokens))
                cost = n_p * pre.price_per_instance_hour + n_d * dec.price_per_instance_hour
                capacity = min(n_p * pre.prefill_tokens_per_s / load.mean_prompt,
                               n_d * dec.decode_tokens_per_s / load.mean_output)
                return _candidate("disaggregated", pools, cost, capacity, rate)

            # Prefill-only steps take whole prompts up to the token budget.
            families.append(((prefill_load / pre.prefill_tokens_per_s,
                              decode_load / dec.decode_tokens_per_s),
                             (pre.price_per_instance_hour, dec.price_per_instance_hour),
                             build_disaggregated))

    if rate is not None:
        sized = [build(*counts) for counts, build in _sized_counts(families, band)]
    else:
        assert budget is not None
        sized = [build(*_budget_counts(busy, prices, budget)) for busy, prices, build in families]
    out: dict[tuple, Candidate] = {}
    over_budget: dict[tuple, Candidate] = {}
    for candidate in sized:
        if budget is not None and candidate.cost_per_hour > budget + 1e-9:
            over_budget.setdefault(candidate.key, candidate)
        else:
            out.setdefault(candidate.key, candidate)
    if over_budget:
        cheapest = min(c.cost_per_hour for c in over_budget.values())
        pruned.append((f"{len(over_budget)} sized clusters",
                       f"cost more than the budget of {budget:g} $/h (cheapest {cheapest:.2f} $/h)"))
    ranked = sorted(out.values(), key=lambda c: (c.cost_per_hour, c.chips, c.label))
    return ranked, pruned


def _candidate(layout: str, pools: tuple[PoolPlan, ...], cost: float, capacity: float,
               rate: float | None) -> Candidate:
    # Utilisation of the busiest pool at the target rate, as the cost model predicts it.
    return Candidate(layout, pools, cost, capacity_rps=capacity,
                     utilisation_target=rate / capacity if rate is not None else math.nan)


def _sized_counts(families, band: float):
    """Every instance-count vector worth trying at a target rate, with its family's builder.

    A pool needs at least ``ceil(busy / MAX_UTILISATION)`` instances; above that, every count
    is a candidate as long as the cluster costs at most ``band`` times the cheapest cluster the
    cost model sized. The bound is on *price*, not on headroom over this rate: a cluster sized
    for twice the load also carries this one, and if it is cheaper than what this rate's search
    confirms it must have been tried here. Minimum counts grow with the rate, so the clusters
    a higher-rate search tries under a price are a subset of those a lower-rate one tries.
    """
    minimal = []
    for busy, prices, build in families:
        counts = tuple(max(1, math.ceil(b / MAX_UTILISATION - 1e-9)) for b in busy)
        minimal.append((counts, prices, build))
    if not minimal:
        return
    ceiling = band * min(sum(n * p for n, p in zip(counts, prices, strict=True))
                         for counts, prices, _ in minimal) + 1e-9
    for counts, prices, build in minimal:
        floor_cost = sum(n * p for n, p in zip(counts, prices, strict=True))
        ranges = [range(n, n + int((ceiling - floor_cost) // p) + 1)
                  for n, p in zip(counts, prices, strict=True)]
        for vector in itertools.product(*ranges):
            if sum(n * p for n, p in zip(vector, prices, strict=True)) <= ceiling:
                yield vector, build


def _budget_counts(busy: tuple[float, ...], prices: tuple[float, ...],
                   budget: float) -> tuple[int, ...]:
    """Under a budget alone, each pool gets the instances its share of the budget buys, the
    budget split in proportion to what each phase costs per request."""
    spend = [b * p for b, p in zip(busy, prices, strict=True)]
    return tuple(max(1, math.floor(budget * (s / sum(spend)) / p))
                 for s, p in zip(spend, prices, strict=True))


# --------------------------------------------------------------------------------------------
# Scenario data of a candidate
# --------------------------------------------------------------------------------------------

POOL_FIELDS_SET = ("role", "hardware", "instances", "tp", "pp", "max_batch_size",
                   "max_batch_tokens", "scaleup_domain")


def _template_name(base) -> str:
    """The base pool whose settings every planned pool inherits (memory fraction, block size,
    precision, preemption ...): the base scenario's first decode or mixed pool, else its first."""
    return next((name for name, p in base.pools.items() if p.role in ("decode", "mixed")),
                next(iter(base.pools)))


def _template_pool(base) -> dict:
    """The template pool's validated settings (defaults filled in): what sizing assumes."""
    chosen = base.pools[_template_name(base)]
    return {k: v for k, v in chosen.model_dump(mode="json").items()
            if k not in POOL_FIELDS_SET and v is not None}


def _template_written(base, base_data: Mapping[str, Any]) -> dict:
    """The template pool's settings as the user wrote them: what a planned scenario repeats."""
    raw = (base_data.get("pools") or {}).get(_template_name(base)) or {}
    return {k: v for k, v in raw.items() if k not in POOL_FIELDS_SET}


def _batch_limits(base) -> tuple[int, int]:
    """The base scenario's batching limits, kept as caps: the largest ``max_batch_size`` of its
    decode/mixed pools and the largest ``max_batch_tokens`` of its prefill/mixed pools."""
    pools = list(base.pools.values())
    sizes = [p.max_batch_size for p in pools if p.role in ("decode", "mixed")] or \
        [p.max_batch_size for p in pools]
    tokens = [p.max_batch_tokens for p in pools if p.role in ("prefill", "mixed")] or \
        [p.max_batch_tokens for p in pools]
    return max(sizes), max(tokens)


def candidate_data(base_data: Mapping[str, Any], base, candidate: Candidate,
                   rate: float | None) -> dict:
    """The base scenario's data with the candidate's pools and links and the planned rate."""

    data = copy.deepcopy(dict(base_data))
    template = _template_written(base, base_data)
    pools: dict[str, dict] = {}
    for pool in candidate.pools:
        entry = {"role": pool.role, "hardware": pool.hardware, "instances": pool.instances,
                 "tp": pool.tp}
        if pool.pp > 1:
            entry["pp"] = pool.pp
        entry["max_batch_size"] = pool.max_batch_size
        entry["max_batch_tokens"] = pool.max_batch_tokens
        for key, value in template.items():
            entry.setdefault(key, value)
        pools[pool.name] = entry
    data["pools"] = pools
    if candidate.layout == "disaggregated":
        pre, dec = candidate.pools
        chips = [load_hardware(pre.hardware), load_hardware(dec.hardware)]
        if pre.hardware == dec.hardware and candidate.chips <= chips[0].scaleup_domain_chips:
            # The whole cluster fits one scale-up domain (an HGX node, an NVL72 rack): prefill
            # and decode share it and the KV cache crosses NVLink-class links, as deployed.
            for name in pools:
                pools[name]["scaleup_domain"] = "node0"
            data["links"] = []
            return _with_rate(data, base, rate)
        # KV goes NIC to NIC (RDMA over the scale-out network). An instance has one NIC per
        # chip, so each prefill instance has its own egress (``per: instance``): its chips' NICs,
        # capped at one decode instance's, since each transfer lands on one receiver whose
        # ingress the engine does not model.
        bandwidth = min(chips[0].scaleout_bandwidth * pre.tp * pre.pp,
                        chips[1].scaleout_bandwidth * dec.tp * dec.pp)
        latency = max(chips[0].scaleout_latency_s, chips[1].scaleout_latency_s)
        data["links"] = [{"between": ["prefill", "decode"], "bandwidth": float(bandwidth),
                          "latency": float(latency), "per": "instance"}]
    else:
        data["links"] = []
    return _with_rate(data, base, rate)


def _with_rate(data: dict, base, rate: float | None) -> dict:
    if rate is not None:
        data["workload"] = copy.deepcopy(dict(data["workload"]))
        data["workload"]["arrival"] = {**data["workload"]["arrival"], "rate": float(rate)}
    data["name"] = f"{base.name}-plan"
    return data


def plan_name(base_name: str, candidate: Candidate) -> str:
    """A scenario name that says what the plan is: ``<base>-plan-<layout>-<pools>``, e.g.
    ``chat-plan-disaggregated-prefill-2xh100-decode-3xmi300xtp2``."""
    pools = "-".join(f"{p.role}-{p.instances}x{p.hardware}"
                     + (f"tp{p.tp}" if p.tp > 1 else "") + (f"pp{p.pp}" if p.pp > 1 else "")
                     for p in candidate.pools)
    return f"{base_name}-plan-{candidate.layout}-{pools}"


def plan_description(candidate: Candidate, *, rate: float | None, slo: SLO, source: str,
                     requests: int, max_rate: float | None = None,
                     budget: float | None = None) -> str:
    """What a planned scenario is, in words: its pools and chips, the load and price it was
    planned for, the SLOs simulation confirmed it against, and where it came from (no date, so
    the same plan is always described by the same bytes)."""
    pools = ", ".join(f"{p.role} {p.describe()}" + (f" (max {p.max_batch_size} sequences"
                                                     f" and {p.max_batch_tokens} tokens a step)")
                      for p in candidate.pools)
    targets = ", ".join(f"{slo.summary_key(m).split('_')[0]} {m.upper()} <= {v:g} ms"
                        for m, v in slo.targets().items())
    load = (f"at {rate:g} req/s" if rate is not None else
            f"for the most goodput per $ under {budget:g} $/h, at {max_rate:.4g} req/s")
    chips = f"{candidate.chips} chip" + ("s" if candidate.chips != 1 else "")
    text = (f"A {candidate.layout} plan of {chips}: {pools}; "
            f"{candidate.cost_per_hour:.2f} $/h {load}. Confirmed by simulation of {requests} "
            f"requests against {targets}, every request completed and at least "
            f"{slo.attainment:.0%} of requests within every target")
    if rate is not None and max_rate:
        text += f"; held the SLOs up to {max_rate:.4g} req/s"
    return text + f"; planned by infersim plan from {source}."


def base_document(source: str | Path | Scenario | Mapping[str, Any]) -> tuple[Any, dict]:
    """The base scenario (validated) and its raw data with relative paths made absolute, so the
    planned scenario can be written anywhere.

    ``source`` is a scenario file (or a shipped scenario's name), a :class:`Scenario`, or a
    mapping of scenario fields. For a Scenario the data is what its author set (defaults stay
    implicit, as in a file); a mapping's relative paths are read from the working directory.
    """
    if isinstance(source, Scenario):
        scenario = source
        data = scenario.model_dump(mode="json", exclude_unset=True)
    elif isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
        scenario = load_scenario(data)
    elif isinstance(source, (str, Path)):
        scenario = load_scenario(source)
        file = find_scenario(source)
        data = read_yaml(file, str(source))
    else:
        raise InfersimError(field="scenario", expected="a scenario file, a Scenario or a "
                            "mapping of scenario fields", given=source)
    base_dir = scenario.base_dir.resolve()
    model = data.get("model")
    if isinstance(model, str) and (base_dir / model).is_file():
        data["model"] = str((base_dir / model).resolve())
    trace = (data.get("workload") or {}).get("trace")
    if isinstance(trace, dict) and isinstance(trace.get("path"), str) and \
            (base_dir / trace["path"]).exists():
        trace["path"] = str((base_dir / trace["path"]).resolve())
    return scenario, data


def source_label(base) -> str:
    """How a planned scenario names its base: the file it came from, else the scenario's name."""
    return str(base.source) if base.source is not None else f"scenario '{base.name}'"


# --------------------------------------------------------------------------------------------
# Stages 2 and 3: simulation
# --------------------------------------------------------------------------------------------

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


def slo_verdict(summary: Mapping[str, Any], slo: SLO, requests: int) -> tuple[bool, str]:
    """Whether a run met every SLO percentile, completed every request and kept the required
    share of requests inside every SLO; the reason if not."""
    completed = int(summary.get("completed", 0))
    if completed < requests:
        return False, f"{requests - completed} of {requests} requests did not complete"
    for metric, target in slo.targets().items():
        key = slo.summary_key(metric)
        if key not in summary:
            raise InfersimError(field=f"slo.{metric}_ms", expected=f"a percentile the summary "
                                f"reports ({key} is missing; use percentile 90 or 99)",
                                given=slo.percentile)
        value = float(summary[key])
        if not value <= target:
            return False, f"{key} {value:.1f} > {target:g}"
    # request_goodput and request_throughput share a denominator (the run's duration), so their
    # ratio is the share of completed requests that met every target.
    throughput = float(summary.get("request_throughput", 0.0))
    share = float(summary.get("request_goodput", 0.0)) / throughput if throughput > 0 else 0.0
    if share < slo.attainment - 1e-12:
        return False, f"{share:.0%} of requests within every SLO < {slo.attainment:.0%}"
    return True, ""


class _Simulator:
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


def plan_capacity(scenario: str | Path | Scenario | Mapping[str, Any], *, rate: float | None, hardware: Sequence[str] | None = None,
                  budget: float | None = None, executor: Executor, slo: SLO | None = None,
                  requests: int | None = None, seed: int | None = None, confirm: int = 3,
                  max_simulations: int = 64, bisection_steps: int = 4,
                  progress: Callable[[str], None] | None = None,
                  min_span_s: float = STEADY_STATE_S,
                  max_requests: int = MAX_REQUESTS) -> PlanOutcome:
    """Search pools for the cheapest plan meeting the SLOs at ``rate`` (or, with ``budget``, the
    most goodput per dollar within it). See the module docstring for the three stages.

    ``scenario`` is the base: a scenario file or shipped name, a :class:`Scenario`, or a mapping
    of scenario fields (its pools are placeholders the planner replaces)."""
    if rate is None and budget is None:
        raise InfersimError(field="--rate", expected="a target rate (or a --budget)", given=None)
    if rate is not None and not rate > 0:
        raise InfersimError(field="--rate", expected="a rate > 0 (requests/s)", given=rate)
    if budget is not None and not budget > 0:
        raise InfersimError(field="--budget", expected="a budget > 0 ($/h)", given=budget)
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
    sim_requests = requests or base.workload.requests
    load = load_shape(base, requests=sim_requests)
    run_length = RunLength(requests=load.requests, min_span_s=float(min_span_s),
                           max_requests=max_requests)
    candidates, pruned = size_candidates(base, load, slo, rate, hardware, budget)
    simulator = _Simulator(executor, base, base_data, slo, seed, run_length, progress)
    notes: list[str] = []
    if not candidates:
        return PlanOutcome(rate=rate, budget=budget, slo=slo, load=load, evaluations=(),
                           best=None, pruned=tuple(pruned), simulations=0,
                           notes=("the cost model ruled out every shape; see pruned",),
                           run_length=run_length)
    if rate is not None:
        # Cheapest first, in widening price bands: while no candidate of the band holds the
        # SLOs, every pool size up to twice the price joins (see _sized_counts).
        band = PRICE_BAND
        evaluations = _confirm(candidates, rate, slo, load, simulator, confirm, max_simulations)
        while (not any(ev.slo_met for ev in evaluations) and band < MAX_PRICE_BAND
               and simulator.count < max_simulations):
            band *= 2
            candidates, pruned = size_candidates(base, load, slo, rate, hardware, budget,
                                                 band=band)
            evaluations = _confirm(candidates, rate, slo, load, simulator, confirm,
                                   max_simulations, known={ev.candidate.key: ev
                                                           for ev in evaluations})
    else:
        # Budget only: the candidates that promise the most requests per dollar go first.
        candidates = sorted(candidates, key=lambda c: (-c.capacity_rps / c.cost_per_hour, c.label))
        evaluations = [Evaluation(candidate=c) for c in candidates]
    evaluations = _search_max_rate(evaluations, rate, slo, load, simulator, confirm,
                                   bisection_steps)
    ranked = _rank(evaluations, budget_mode=rate is None)
    best = next((ev for ev in ranked if ev.slo_met), None)
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
                       best_scenario=best_data, notes=tuple(notes), run_length=run_length)


def slo_of(base, attainment: float = 0.9) -> SLO:
    """The scenario's SLO (``slo:``), else the workload's (``workload.slo``)."""
    s = base.slo
    targets = {f"{m}_ms": getattr(s, f"{m}_ms") for m in SLO_METRICS}
    if not any(v is not None for v in targets.values()) and base.workload.slo is not None:
        targets = {f"{m}_ms": getattr(base.workload.slo, f"{m}_ms") for m in SLO_METRICS}
    return SLO(**targets, percentile=float(s.percentile), attainment=attainment)


def load_shape(base, requests: int | None = None) -> LoadShape:
    """Mean prompt and output lengths of the workload, drawn as a run would draw them."""

    rng = np.random.default_rng(np.random.SeedSequence(base.seed).spawn(1)[0])
    workload = build_workload(base.workload, rng, base_dir=base.base_dir)
    table = getattr(workload, "requests", workload)
    return LoadShape(mean_prompt=float(np.mean(table.prompt_tokens)),
                     mean_output=float(np.mean(table.output_tokens)),
                     requests=int(requests or len(table.prompt_tokens)))


def _confirm(candidates: Sequence[Candidate], rate: float, slo: SLO, load: LoadShape,
             simulator: _Simulator, confirm: int, max_simulations: int,
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


def _search_max_rate(evaluations: list[Evaluation], rate: float | None, slo: SLO, load: LoadShape,
                     simulator: _Simulator, confirm: int, steps: int) -> list[Evaluation]:
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


def _rank(evaluations: Sequence[Evaluation], *, budget_mode: bool) -> list[Evaluation]:
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
