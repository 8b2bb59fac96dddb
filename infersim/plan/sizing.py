"""Stage 1 of the planner: size every shape with the cost model (no simulation).

A *shape* is a chip at one (tp, pp) with the capacities the roofline model gives an instance of
it for this load; shapes combine into colocated and disaggregated families whose pool sizes are
then enumerated (see :func:`size_candidates`). Shapes the cost model rules out are returned with
the reason.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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
from infersim.plan.candidate import Candidate, PoolPlan
from infersim.plan.planned import batch_limits, template_pool
from infersim.plan.target import LoadShape
from infersim.scenario import resolve
from infersim.slo import SLO

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
        if tp > chip.tensor_parallel_chips:
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
    tp = min(max(TP_CHOICES), chip.tensor_parallel_chips)
    probe = _deployment(model, chip, precision, kv_precision, tp, 1, ideal)
    need = min_chips(probe, memory_fraction, kv_tokens=int(64 * load.full_length))
    pp = max(1, math.ceil(need / tp))
    if pp > model.num_layers:   # a stage holds at least one layer: no layout holds it
        return []
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
    template = template_pool(base)
    precision = template.get("precision") or base.precision
    kv_precision = template.get("kv_precision")
    memory_fraction = float(template.get("memory_fraction", 0.9))
    max_batch_size, max_batch_tokens = batch_limits(base)
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
