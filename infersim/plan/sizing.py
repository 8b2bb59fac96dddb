"""Stage 1 of the planner: size every shape with the cost model (no simulation).

A *shape* is a chip at one (tp, pp, precision) with the capacities the roofline model gives an
instance of it for this load. The search space per chip: every TP of ``TP_CHOICES`` inside its
scale-up domain and every PP of ``PP_CHOICES`` (never more stages than the model has layers)
whose KV room holds the workload's longest request; machines that hold a model only across
many chips (SRAM wafers and LPUs) get pipelines sized to the weights plus that request's KV, or
plus a batch of mean requests. Shapes combine into colocated families (one mixed pool, each
chunk budget of ``CHUNK_CHOICES`` tried) and disaggregated ones (a prefill shape and a decode
shape, the pairing allowed by ``kv_transfer``), whose pool sizes — hence the P:D ratio — are
then enumerated (see :func:`size_candidates`). Everything ruled out is returned as a
:class:`~infersim.plan.candidate.Pruned` with the reason: nothing disappears silently.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
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
from infersim.plan.candidate import Candidate, PoolPlan, Pruned
from infersim.plan.planned import batch_limits, template_pool
from infersim.plan.target import LoadShape
from infersim.scenario import resolve
from infersim.slo import SLO

# The highest utilisation the cost model may plan a pool for: queueing grows without bound as
# utilisation nears 1, and the cost model's rates are means.
MAX_UTILISATION = 0.9
# Candidates of a chip family are every pool size from that minimum up to this multiple of the
# family's cheapest sized cluster's price; while no plan is confirmed, the band doubles, up to
# MAX_PRICE_BAND.
PRICE_BAND = 2.0
MAX_PRICE_BAND = 8.0
TP_CHOICES = (1, 2, 4, 8)
PP_CHOICES = (1, 2)
# Chips that hold a model only across many of them (SRAM machines) pipeline TP groups of these.
PIPELINE_TP_CHOICES = (8, 16, 32)
# Mean requests of KV a pipelined instance is also sized for, beside the longest request alone.
PIPELINE_KV_REQUESTS = 32
CHUNK_CHOICES = (8192, 4096, 2048, 1024, 512, 256)
# The decode step at the *mean* context must leave this share of the ITL target free: the tail
# (p99) step carries longer contexts and, colocated, a prefill chunk.
ITL_STEP_SHARE = 0.8
TTFT_PREFILL_SHARE = 0.8
# Which prefill -> decode chip pairings may ship KV between them.
KV_TRANSFER = ("same_chip", "same_vendor", "any")
DEFAULT_KV_TRANSFER = "same_vendor"


@dataclass(frozen=True)
class _Shape:
    """One chip at one (tp, pp, precision) with the capacities the cost model gives it."""

    hardware: str
    precision: str | None           # None: the base scenario's
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

    @property
    def label(self) -> str:
        return (f"{self.hardware} tp{self.tp}" + (f"pp{self.pp}" if self.pp > 1 else "")
                + (f" {self.precision}" if self.precision else ""))


@dataclass(frozen=True)
class Prices:
    """What chips cost: USD per chip-hour (the hardware profile's, or an override) and the unit
    they are bought in (an NVL72 rack, a CS-3 system): a plan pays for whole units."""

    per_chip_hour: Mapping[str, float]
    unit_chips: Mapping[str, int]
    unit_name: Mapping[str, str]

    def cost(self, chips_by_type: Mapping[str, int]) -> tuple[float, str]:
        """$/h of a cluster and, where whole units are bought, what is bought."""
        total, bought = 0.0, []
        for name, chips in chips_by_type.items():
            unit = self.unit_chips.get(name, 1)
            units = math.ceil(chips / unit - 1e-9)
            total += units * unit * self.per_chip_hour[name]
            if unit > 1:
                what = self.unit_name.get(name) or f"{unit}-chip unit"
                bought.append(f"{units} {what}" + ("s" if units != 1 else ""))
        return total, ", ".join(bought)


def prices_for(hardware: Sequence[str], overrides: Mapping[str, float] | None = None) -> Prices:
    """The prices of ``hardware``: the profiles' own, with ``overrides`` (chip -> $/chip-hour)."""
    per_chip, unit, unit_name = {}, {}, {}
    for name in hardware:
        chip = load_hardware(name)
        per_chip[chip.name] = float(chip.price_per_chip_hour)
        unit[chip.name] = int(chip.purchase_unit_chips)
        unit_name[chip.name] = chip.purchase_unit_name
    for name, value in (overrides or {}).items():
        if name not in per_chip:
            raise InfersimError(field="prices", expected="a chip being planned ("
                                + ", ".join(per_chip) + ")", given=name)
        per_chip[name] = float(value)
    return Prices(per_chip, unit, unit_name)


def _deployment(model, chip, precision: str, kv_precision: str | None, tp: int, pp: int,
                ideal: bool) -> Deployment:
    return Deployment(model=model, hardware=chip, precision=precision, kv_precision=kv_precision,
                      tp=tp, pp=pp, ideal=ideal)


def _layouts_for(chip, model, precision, kv_precision, ideal, memory_fraction, load: LoadShape
                 ) -> tuple[list[tuple[int, int]], list[tuple[str, str]]]:
    """(tp, pp) choices for a chip whose KV room holds the longest request, and the layouts
    tried that do not (with why). TPs stay inside the scale-up domain, stages never outnumber
    the model's layers."""
    longest = max(1, math.ceil(load.max_length))
    layers = model.num_layers
    fitting: list[tuple[int, int]] = []
    misses: list[tuple[str, str]] = []

    def room(tp: int, pp: int) -> int:
        dep = _deployment(model, chip, precision, kv_precision, tp, pp, ideal)
        return placement(dep, memory_fraction).kv_capacity_tokens

    for tp in TP_CHOICES:
        if tp > chip.tensor_parallel_chips:
            break
        for pp in PP_CHOICES:
            if pp > layers:
                continue
            tokens = room(tp, pp)
            if tokens >= longest:
                fitting.append((tp, pp))
            else:
                misses.append((f"tp{tp}" + (f"pp{pp}" if pp > 1 else ""),
                               f"room for {tokens} tokens of KV, under the longest request's "
                               f"{longest}"))
    if fitting:
        return fitting, misses
    # SRAM machines (and big models on small chips) need many chips in sequence: layers are
    # spread over pipeline stages, each stage a TP group inside the scale-up domain.
    limit = chip.tensor_parallel_chips
    for tp in [t for t in PIPELINE_TP_CHOICES if t <= limit] or [min(max(TP_CHOICES), limit)]:
        probe = _deployment(model, chip, precision, kv_precision, tp, 1, ideal)
        for kv_tokens in (longest, int(PIPELINE_KV_REQUESTS * load.full_length)):
            pp = max(1, math.ceil(min_chips(probe, memory_fraction, kv_tokens=kv_tokens) / tp))
            if pp > layers:
                misses.append((f"tp{tp}", f"needs {pp} pipeline stages of {tp} chips, more than "
                                          f"the model's {layers} layers"))
                continue
            if (tp, pp) not in fitting and room(tp, pp) >= longest:
                fitting.append((tp, pp))
    return fitting, misses


def _shape(chip, model, precision, kv_precision, ideal, memory_fraction, tp, pp,
           load: LoadShape, slo: SLO, max_batch_size: int, max_batch_tokens: int,
           price_per_chip_hour: float, label_precision: str | None) -> _Shape | str:
    """Capacities of one instance, or the reason the shape cannot serve this load."""

    dep = _deployment(model, chip, precision, kv_precision, tp, pp, ideal)
    place = placement(dep, memory_fraction)
    prompt = max(1, round(load.mean_prompt))
    context = max(1, round(load.mean_context))
    prefill_one = prefill_time(dep, [prompt])
    if slo.ttft_ms is not None and prefill_one > TTFT_PREFILL_SHARE * slo.limit("ttft") / 1000.0:
        return (f"prefill of a mean prompt takes {prefill_one * 1000:.0f} ms, over "
                f"{TTFT_PREFILL_SHARE:.0%} of the TTFT target")
    kv_batch = max(1, int(place.kv_capacity_tokens // load.full_length))
    batch_cap = min(max_batch_size, kv_batch)
    budget = _step_budget(slo)
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
    return _Shape(hardware=chip.name, precision=label_precision, tp=tp, pp=pp,
                  price_per_instance_hour=price_per_chip_hour * tp * pp,
                  decode_batch=batch_cap, decode_batch_kv=kv_batch, decode_tokens_per_s=decode_rate,
                  prefill_tokens_per_s=prefill_rate, prefill_one_s=prefill_one,
                  kv_bytes_per_token=place.kv_bytes_per_token,
                  scaleout_bandwidth=chip.scaleout_bandwidth * tp * pp,
                  scaleout_latency_s=chip.scaleout_latency_s)


def _step_budget(slo: SLO) -> float | None:
    """The longest decode step the ITL (or TPOT) target, less the headroom, allows (s)."""
    bounds = [slo.limit(m) for m in ("itl", "tpot") if getattr(slo, f"{m}_ms") is not None]
    return min(bounds) / 1000.0 if bounds else None


def _colocated(dep: Deployment, load: LoadShape, slo: SLO,
               batch_cap: int) -> tuple[int, int, float] | None:
    """The batching limits of a colocated (chunked-prefill) instance and its busy time per request.

    A step that carries a prefill chunk also advances every decoding sequence, so that step's
    time is a token gap for all of them: the chunk and the decode batch share the ITL target.
    For each chunk size, the largest decode batch that keeps such a step inside the target is
    found; the pair that serves a request in the least busy time wins. Returns
    ``(chunk tokens, decode batch, busy seconds per request)``, or None if no pair fits.
    """
    budget = _step_budget(slo)
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


def _undominated(shapes: Sequence[_Shape], role: str) -> tuple[list[_Shape], list[Pruned]]:
    """The shapes of each chip worth pairing for ``role`` (prefill or decode), and the rest with
    the shape that beats them: as many tokens/s per $ or more and (prefill) as fast a prompt."""

    def score(s: _Shape) -> tuple[float, float]:
        if role == "prefill":
            return s.prefill_tokens_per_s / s.price_per_instance_hour, -s.prefill_one_s
        return s.decode_tokens_per_s / s.price_per_instance_hour, 0.0

    keep, pruned = [], []
    for shape in shapes:
        a = score(shape)
        beaten_by = next((other for other in shapes if other is not shape
                          and other.hardware == shape.hardware
                          and all(o >= x for o, x in zip(score(other), a, strict=True))
                          and (score(other) != a or other.tp * other.pp < shape.tp * shape.pp
                               or (other.tp * other.pp == shape.tp * shape.pp
                                   and shapes.index(other) < shapes.index(shape)))), None)
        if beaten_by is None:
            keep.append(shape)
        else:
            pruned.append(Pruned(shape.hardware, f"{role} on {shape.label}",
                                 f"dominated by {beaten_by.label}: no more {role} tokens/s per $"
                                 + (" and no faster prompt" if role == "prefill" else "")))
    return keep, pruned


def _pairing_allowed(pre, dec, kv_transfer: str) -> bool:
    if kv_transfer == "any" or pre.name == dec.name:
        return True
    return kv_transfer == "same_vendor" and bool(pre.vendor) and pre.vendor == dec.vendor


def size_candidates(base, load: LoadShape, slo: SLO, rate: float | None, hardware: Sequence[str],
                    budget: float | None = None, *, band: float = PRICE_BAND,
                    precisions: Sequence[str] | None = None, prices: Prices | None = None,
                    kv_transfer: str = DEFAULT_KV_TRANSFER,
                    ) -> tuple[list[Candidate], list[Pruned]]:
    """Every candidate cluster the cost model admits, and everything it ruled out (and why).

    With a ``rate``, every pool size from the least that carries the rate at
    ``MAX_UTILISATION`` up to ``band`` times the cheapest such cluster of the same chip family
    (see :func:`_sized_counts`). With only a ``budget``, each shape is scaled to the largest
    balanced cluster the budget buys. ``precisions`` are searched (default: the base's);
    ``prices`` override the profiles' and set purchase units; ``kv_transfer`` bounds which chips
    may prefill for which (``same_chip``, ``same_vendor`` or ``any``).
    """
    if kv_transfer not in KV_TRANSFER:
        raise InfersimError(field="kv_transfer", expected=" or ".join(KV_TRANSFER),
                            given=kv_transfer)
    # resolve() loads the model the way a run does (shipped name or path beside the scenario).
    model = resolve(base).model
    template = template_pool(base)
    default_precision = template.get("precision") or base.precision
    searched = list(precisions) if precisions else [default_precision]
    kv_precision = template.get("kv_precision")
    memory_fraction = float(template.get("memory_fraction", 0.9))
    max_batch_size, max_batch_tokens = batch_limits(base)
    prices = prices or prices_for(hardware)
    pruned: list[Pruned] = []
    shapes: list[_Shape] = []
    chip_of: dict[str, Any] = {}
    for name in hardware:
        chip = load_hardware(name)
        chip_of[chip.name] = chip
        for precision in searched:
            label_precision = None if precision == default_precision else precision
            try:
                chip.flops(precision)
            except InfersimError:
                pruned.append(Pruned(chip.name, f"{chip.name} {precision}",
                                     f"has no {precision} peak"))
                continue
            layouts, misses = _layouts_for(chip, model, precision, kv_precision, base.ideal,
                                           memory_fraction, load)
            suffix = f" {label_precision}" if label_precision else ""
            pruned += [Pruned(chip.name, f"{chip.name} {what}{suffix}", why)
                       for what, why in misses]
            if not layouts:
                pruned.append(Pruned(chip.name, f"{chip.name}{suffix}",
                                     "does not fit: the model and the longest request's KV fit "
                                     "no layout tried"))
            for tp, pp in layouts:
                shape = _shape(chip, model, precision, kv_precision, base.ideal, memory_fraction,
                               tp, pp, load, slo, max_batch_size, max_batch_tokens,
                               prices.per_chip_hour[chip.name], label_precision)
                if isinstance(shape, str):
                    pruned.append(Pruned(chip.name, f"{chip.name} tp{tp}" + (f"pp{pp}" if pp > 1
                                                                             else "") + suffix,
                                         shape))
                else:
                    shapes.append(shape)

    prefill_load = (rate or 1.0) * load.mean_prompt     # tokens/s (per request/s if no rate)
    decode_load = (rate or 1.0) * load.mean_output
    # A family is one layout of shapes whose pool sizes are still free: its chip family, per
    # pool the busy instance-seconds per second it must carry at 100% and the price of one
    # instance, and how to build the candidate for a vector of instance counts.
    families: list[tuple[str, tuple[float, ...], tuple[float, ...], Callable[..., Candidate]]] = []

    def precision_of(shape: _Shape) -> str:
        return shape.precision or default_precision

    for shape in shapes:
        # Colocated: every instance prefills in chunks and decodes; its busy time per request is
        # prompt / prefill rate + output / decode rate. The chunk keeps the ITL target.
        chip = chip_of[shape.hardware]
        batch_cap = min(max_batch_size, shape.decode_batch_kv)
        dep = _deployment(model, chip, precision_of(shape), kv_precision, shape.tp, shape.pp,
                          base.ideal)
        colocated = _colocated(dep, load, slo, batch_cap)
        if colocated is None:
            pruned.append(Pruned(shape.hardware, f"colocated {shape.label}",
                                 f"a decode step carrying even a {min(CHUNK_CHOICES)}-token "
                                 "prefill chunk misses the ITL target"))
            continue
        chunk, batch, busy_per_request = colocated

        def build_colocated(n: int, shape=shape, batch=batch, chunk=chunk,
                            busy_per_request=busy_per_request) -> Candidate:
            pool = PoolPlan("serve", "mixed", shape.hardware, shape.tp, shape.pp, n, batch, chunk,
                            shape.precision)
            cost, units = prices.cost({shape.hardware: pool.chips})
            return _candidate("colocated", (pool,), cost, n / busy_per_request, rate, units)

        families.append((shape.hardware, (busy_per_request * (rate or 1.0),),
                         (shape.price_per_instance_hour,), build_colocated))

    prefills, beaten = _undominated(shapes, "prefill")
    pruned += beaten
    decodes, beaten = _undominated(shapes, "decode")
    pruned += beaten
    refused: set[tuple[str, str]] = set()
    for pre in prefills:
        for dec in decodes:
            pair = f"{pre.hardware} -> {dec.hardware}"
            if not _pairing_allowed(chip_of[pre.hardware], chip_of[dec.hardware], kv_transfer):
                if (pre.hardware, dec.hardware) not in refused:
                    refused.add((pre.hardware, dec.hardware))
                    pruned.append(Pruned(pair, f"disaggregated {pair}",
                                         f"kv_transfer is {kv_transfer}: KV is not shipped "
                                         "between these chips"))
                continue
            # KV shipped per request must not eat the TTFT target either.
            transfer_s = (load.mean_prompt * pre.kv_bytes_per_token
                          / min(pre.scaleout_bandwidth, dec.scaleout_bandwidth)
                          + max(pre.scaleout_latency_s, dec.scaleout_latency_s))
            if slo.ttft_ms is not None and pre.prefill_one_s + transfer_s > \
                    TTFT_PREFILL_SHARE * slo.limit("ttft") / 1000.0:
                family = pre.hardware if pre.hardware == dec.hardware else pair
                pruned.append(Pruned(family, f"disaggregated {pre.label} -> {dec.label}",
                                     "prefill plus KV transfer of a mean prompt misses the TTFT "
                                     "target"))
                continue

            def build_disaggregated(n_p: int, n_d: int, pre=pre, dec=dec) -> Candidate:
                pools = (PoolPlan("prefill", "prefill", pre.hardware, pre.tp, pre.pp, n_p,
                                  max_batch_size, max_batch_tokens, pre.precision),
                         PoolPlan("decode", "decode", dec.hardware, dec.tp, dec.pp, n_d,
                                  dec.decode_batch, max_batch_tokens, dec.precision))
                chips: dict[str, int] = {}
                for pool in pools:
                    chips[pool.hardware] = chips.get(pool.hardware, 0) + pool.chips
                cost, units = prices.cost(chips)
                capacity = min(n_p * pre.prefill_tokens_per_s / load.mean_prompt,
                               n_d * dec.decode_tokens_per_s / load.mean_output)
                return _candidate("disaggregated", pools, cost, capacity, rate, units)

            # Prefill-only steps take whole prompts up to the token budget.
            family = pre.hardware if pre.hardware == dec.hardware else pair
            families.append((family, (prefill_load / pre.prefill_tokens_per_s,
                                      decode_load / dec.decode_tokens_per_s),
                             (pre.price_per_instance_hour, dec.price_per_instance_hour),
                             build_disaggregated))

    if rate is not None:
        sized = [build(*counts) for counts, build in _sized_counts(families, band)]
    else:
        assert budget is not None
        sized = [build(*_budget_counts(busy, price, budget)) for _, busy, price, build in families]
    out: dict[tuple, Candidate] = {}
    over_budget: dict[tuple, Candidate] = {}
    for candidate in sized:
        if budget is not None and candidate.cost_per_hour > budget + 1e-9:
            over_budget.setdefault(candidate.key, candidate)
        else:
            out.setdefault(candidate.key, candidate)
    by_family: dict[str, list[Candidate]] = {}
    for candidate in over_budget.values():
        by_family.setdefault(candidate.family, []).append(candidate)
    for family, group in by_family.items():
        cheapest = min(c.cost_per_hour for c in group)
        pruned.append(Pruned(family, f"{len(group)} sized clusters",
                             f"cost more than the budget of {budget:g} $/h (cheapest "
                             f"{cheapest:.2f} $/h)"))
    ranked = sorted(out.values(), key=lambda c: (c.cost_per_hour, c.chips, c.label))
    return ranked, pruned


def _candidate(layout: str, pools: tuple[PoolPlan, ...], cost: float, capacity: float,
               rate: float | None, units: str = "") -> Candidate:
    # Utilisation of the busiest pool at the target rate, as the cost model predicts it.
    return Candidate(layout, pools, cost, capacity_rps=capacity,
                     utilisation_target=rate / capacity if rate is not None else math.nan,
                     units=units)


MAX_COUNT_VECTORS = 20_000  # instance-count vectors tried per chip family at one rate


def _sized_counts(families, band: float):
    """Every instance-count vector worth trying at a target rate, with its family's builder.

    A pool needs at least ``ceil(busy / MAX_UTILISATION)`` instances; above that, every count
    is a candidate as long as the cluster costs at most ``band`` times the cheapest cluster the
    cost model sized *on the same chips* — so a chip is never crowded out by a cheaper one. The
    bound is on *price*, not on headroom over this rate: a cluster sized for twice the load also
    carries this one, and if it is cheaper than what this rate's search confirms it must have
    been tried here. Minimum counts grow with the rate, so the clusters a higher-rate search
    tries under a price are a subset of those a lower-rate one tries.
    """
    minimal = []
    for family, busy, prices, build in families:
        counts = tuple(max(1, math.ceil(b / MAX_UTILISATION - 1e-9)) for b in busy)
        minimal.append((family, counts, prices, build))
    floor: dict[str, float] = {}
    for family, counts, prices, _ in minimal:
        cost = sum(n * p for n, p in zip(counts, prices, strict=True))
        floor[family] = min(cost, floor.get(family, math.inf))
    for family, counts, prices, build in minimal:
        ceiling = band * floor[family] + 1e-9
        floor_cost = sum(n * p for n, p in zip(counts, prices, strict=True))
        ranges = [range(n, n + int((ceiling - floor_cost) // p) + 1)
                  for n, p in zip(counts, prices, strict=True)]
        # At a very high rate the pools need thousands of instances and the band holds millions
        # of count vectors (100 k req/s hung the planner, gigabytes deep): beyond
        # MAX_COUNT_VECTORS a family's counts are thinned evenly, keeping each minimum.
        total = math.prod(len(r) for r in ranges)
        if total > MAX_COUNT_VECTORS:
            stride = math.ceil((total / MAX_COUNT_VECTORS) ** (1 / len(ranges)))
            ranges = [range(r.start, r.stop, stride) for r in ranges]
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
