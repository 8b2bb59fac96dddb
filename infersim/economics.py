"""What a simulated cluster costs: dollars per hour, per million tokens, per request, and energy.

A cluster is paid for by the hour whether its chips work or wait, so every figure here charges the
whole cluster for the whole simulated span: ``cost = Σ pools chips × price_per_chip_hour ×
duration``. Tokens are those of the requests that completed: an operator bills delivered work,
so requests cut off by a time limit raise the price of the ones that finished.

**Splitting the bill between input and output tokens.** Prefill turns prompt tokens into KV
cache; decode turns KV cache into output tokens. The split rule (also written into every summary
under ``cost.split_rule``):

* a ``prefill`` pool's whole cost is charged to input tokens;
* a ``decode`` pool's whole cost is charged to output tokens;
* a ``mixed`` pool's cost is split by ``prefill_share``, the fraction of its busy time spent on
  prefill work, as the engine measures it: prompt-only steps count as prefill, decode steps as
  decode, and a chunked step doing both is split by the cost model's time for each part alone.
  The pool's idle time is split in the same proportion as its busy time, since idle capacity is
  held for both phases alike; a mixed pool that never ran a step charges its idle cost to output
  tokens.

``$/Mtok input = input cost / input tokens × 10⁶`` and likewise for output; the cost of one task of
a workload class is then its tokens priced at those two rates, so the classes' costs add up to the
cluster's bill. **Energy** uses each chip's board power: its TDP while its instance runs a step
and its idle power otherwise; joules split between input and output by the same rule as dollars.

*Busy chips are charged their full TDP, an upper bound.* "Busy" means a step is in progress, not
that the chip is saturated: a decode instance stepping a batch of 9 sequences out of 256 is busy
all the time while its tensor cores idle and its memory streams the weights (the default
scenario's decode pool, 100 % busy at a mean batch of 9). Real chips draw well under TDP there,
so joules per token at small batches are overstated, by up to ``TDP / idle`` (H100: 700 / 70 W)
in the limit of an almost idle chip. A tighter figure would charge ``idle + (TDP − idle) ×
activity`` with the roofline activity of each step (its compute and memory time over its step
time); the engine's result records busy seconds per pool but not the steps' roofline terms, so
this module keeps TDP and says so in every summary (``cost.split_rule``). Read energy as a bound
for capacity planning (power and cooling provisioning), not as a metered figure.

Everything here is a pure function of busy seconds, token counts and chip data, in SI units
(seconds, joules, watts, USD).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

SPLIT_RULE = (
    "prefill pools -> input tokens; decode pools -> output tokens; mixed pools split by "
    "prefill_share (the engine's step-time share of prefill vs decode work); idle time splits "
    "like busy time; tokens are those of completed requests; "
    "energy: a chip draws its TDP whenever its instance has a step in progress, whatever the "
    "batch (an upper bound, loosest at small decode batches), and its idle power otherwise"
)

Role = Literal["prefill", "decode", "mixed"]


@dataclass(frozen=True)
class PoolUsage:
    """How one pool of identical instances was used during a run, and what its chips cost."""

    name: str
    role: Role
    instances: int
    chips_per_instance: int
    busy_s: float  # instance-seconds spent running steps, summed over the pool's instances
    price_per_chip_hour: float  # USD
    tdp_watts: float  # per chip, drawn while busy (an upper bound: busy is not saturated)
    idle_watts: float  # per chip, drawn while idle
    prefill_share: float | None = None  # mixed pools: fraction of busy time on prefill work
    prefill_share_source: str = ""  # mixed pools: where prefill_share came from (for reports)

    @property
    def chips(self) -> int:
        return self.instances * self.chips_per_instance

    def __post_init__(self) -> None:
        if self.role not in ("prefill", "decode", "mixed"):
            raise ValueError(f"pool {self.name!r}: unknown role {self.role!r}")
        if self.instances < 1 or self.chips_per_instance < 1:
            raise ValueError(f"pool {self.name!r}: instances and chips must be >= 1")
        if self.busy_s < 0:
            raise ValueError(f"pool {self.name!r}: busy_s must be >= 0, got {self.busy_s}")
        if self.role == "mixed":
            if self.prefill_share is None:
                raise ValueError(f"mixed pool {self.name!r} needs a prefill_share")
            if not 0.0 <= self.prefill_share <= 1.0:
                raise ValueError(f"pool {self.name!r}: prefill_share must be in [0, 1], "
                                 f"got {self.prefill_share}")

    def input_share(self) -> float:
        """Fraction of this pool's cost and energy charged to input (prompt) tokens."""
        if self.role == "prefill":
            return 1.0
        if self.role == "decode":
            return 0.0
        return float(self.prefill_share)  # validated in __post_init__


@dataclass(frozen=True)
class ClassTokens:
    """Delivered work of one workload class (e.g. 'coding-agent')."""

    name: str
    requests: int
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class PoolEconomics:
    name: str
    role: str
    chips: int
    dollars_per_hour: float
    cost_usd: float
    input_cost_usd: float
    output_cost_usd: float
    utilization: float  # busy instance-seconds / (instances × duration)
    input_share: float  # fraction of this pool's cost and energy charged to input tokens
    input_share_source: str  # "prefill pool", "decode pool", or how a mixed pool's was found
    energy_j: float
    average_power_w: float


@dataclass(frozen=True)
class ClassEconomics:
    name: str
    requests: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    usd_per_task: float
    energy_j: float
    joules_per_task: float


@dataclass(frozen=True)
class CostReport:
    """The bill of one run. Per-token figures are NaN when no token of that kind was delivered."""

    duration_s: float
    chips: int
    dollars_per_hour: float
    cost_usd: float
    input_cost_usd: float
    output_cost_usd: float
    requests: int
    input_tokens: int
    output_tokens: int
    usd_per_million_input_tokens: float
    usd_per_million_output_tokens: float
    usd_per_million_tokens: float
    usd_per_request: float
    energy_j: float
    input_energy_j: float
    output_energy_j: float
    average_power_w: float
    joules_per_output_token: float
    joules_per_token: float
    split_rule: str
    pools: tuple[PoolEconomics, ...]
    classes: tuple[ClassEconomics, ...]

    def to_dict(self) -> dict:
        """A JSON-ready dict; pools and classes keyed by name."""
        data = asdict(self)
        data["pools"] = {p["name"]: {k: v for k, v in p.items() if k != "name"}
                         for p in data["pools"]}
        data["classes"] = {c["name"]: {k: v for k, v in c.items() if k != "name"}
                           for c in data["classes"]}
        return data


def mixed_prefill_share(name: str, stats: Mapping[str, Any]) -> tuple[float, str]:
    """A mixed pool's share of busy time spent on prefill, as the engine measured it (the
    step-time share of prefill work, ``prefill_busy_s`` over ``busy_s``), and where it came from.
    A mixed pool that never ran a step has no busy time to split: its idle cost goes to output
    tokens, the tokens such a pool holds capacity to decode."""
    busy = float(stats.get("busy_s", 0.0))
    if busy <= 0:
        return 0.0, "pool never busy: idle cost to output tokens"
    if "prefill_busy_s" not in stats:
        raise ValueError(f"mixed pool {name!r}: the engine reported busy_s but no prefill_busy_s")
    return (min(max(float(stats["prefill_busy_s"]) / busy, 0.0), 1.0),
            "engine step-time share of prefill work")


def class_tokens(class_names: Sequence[str], class_index: np.ndarray, completed: np.ndarray,
                 prompt_tokens: np.ndarray, output_tokens: np.ndarray) -> list[ClassTokens]:
    """Delivered work (completed requests only) of every class of a workload, in its own order,
    even one that finished no request; ``class_index`` numbers each request's class."""
    done = np.asarray(completed, dtype=bool)
    index = np.asarray(class_index)[done]
    n = len(class_names)
    requests = np.bincount(index, minlength=n)
    # float sums of integers below 2**53 are exact, whatever the order
    prompt = np.bincount(index, weights=np.asarray(prompt_tokens)[done], minlength=n)
    output = np.bincount(index, weights=np.asarray(output_tokens)[done], minlength=n)
    return [ClassTokens(str(name), int(requests[i]), int(prompt[i]), int(output[i]))
            for i, name in enumerate(class_names)]


def _per(numerator: float, denominator: float, scale: float = 1.0) -> float:
    return numerator / denominator * scale if denominator > 0 else float("nan")


def pool_economics(pool: PoolUsage, duration_s: float) -> PoolEconomics:
    """Dollars and joules of one pool over ``duration_s`` seconds of wall-clock time."""
    if duration_s < 0:
        raise ValueError(f"duration_s must be >= 0, got {duration_s}")
    capacity_s = pool.instances * duration_s  # instance-seconds available
    # The engine can report busy time a rounding error above capacity; never below-zero idle.
    busy_s = min(pool.busy_s, capacity_s)
    idle_s = capacity_s - busy_s
    dollars_per_hour = pool.chips * pool.price_per_chip_hour
    cost = dollars_per_hour * duration_s / 3600.0
    energy = pool.chips_per_instance * (busy_s * pool.tdp_watts + idle_s * pool.idle_watts)
    share = pool.input_share()
    source = (f"{pool.role} pool" if pool.role != "mixed"
              else pool.prefill_share_source or "given prefill_share")
    return PoolEconomics(
        name=pool.name, role=pool.role, chips=pool.chips, dollars_per_hour=dollars_per_hour,
        cost_usd=cost, input_cost_usd=cost * share, output_cost_usd=cost * (1.0 - share),
        utilization=_per(busy_s, capacity_s), input_share=share,
        input_share_source=source, energy_j=energy,
        average_power_w=_per(energy, duration_s))


def cluster_economics(
    pools: Sequence[PoolUsage],
    duration_s: float,
    classes: Sequence[ClassTokens],
) -> CostReport:
    """The whole cluster's bill for a run of ``duration_s`` that delivered ``classes``' work.

    Pass a single class for a workload without classes; totals are the sums over classes.
    """
    if not pools:
        raise ValueError("a cluster needs at least one pool")
    per_pool = tuple(pool_economics(p, duration_s) for p in pools)
    input_energy = sum(pe.energy_j * p.input_share() for pe, p in zip(per_pool, pools, strict=True))
    energy = sum(pe.energy_j for pe in per_pool)
    output_energy = energy - input_energy
    cost = sum(pe.cost_usd for pe in per_pool)
    input_cost = sum(pe.input_cost_usd for pe in per_pool)
    output_cost = cost - input_cost
    requests = sum(c.requests for c in classes)
    input_tokens = sum(c.input_tokens for c in classes)
    output_tokens = sum(c.output_tokens for c in classes)
    usd_per_in = _per(input_cost, input_tokens)  # USD per input token
    usd_per_out = _per(output_cost, output_tokens)
    j_per_in = _per(input_energy, input_tokens)
    j_per_out = _per(output_energy, output_tokens)

    def priced(tokens: int, rate: float) -> float:
        return tokens * rate if tokens else 0.0  # a class with no such tokens owes nothing

    class_rows = []
    for c in classes:
        c_cost = priced(c.input_tokens, usd_per_in) + priced(c.output_tokens, usd_per_out)
        c_energy = priced(c.input_tokens, j_per_in) + priced(c.output_tokens, j_per_out)
        class_rows.append(ClassEconomics(
            name=c.name, requests=c.requests, input_tokens=c.input_tokens,
            output_tokens=c.output_tokens, cost_usd=c_cost, usd_per_task=_per(c_cost, c.requests),
            energy_j=c_energy, joules_per_task=_per(c_energy, c.requests)))
    return CostReport(
        duration_s=duration_s,
        chips=sum(p.chips for p in pools),
        dollars_per_hour=sum(pe.dollars_per_hour for pe in per_pool),
        cost_usd=cost, input_cost_usd=input_cost, output_cost_usd=output_cost,
        requests=requests, input_tokens=input_tokens, output_tokens=output_tokens,
        usd_per_million_input_tokens=_per(input_cost, input_tokens, 1e6),
        usd_per_million_output_tokens=_per(output_cost, output_tokens, 1e6),
        usd_per_million_tokens=_per(cost, input_tokens + output_tokens, 1e6),
        usd_per_request=_per(cost, requests),
        energy_j=energy, input_energy_j=input_energy, output_energy_j=output_energy,
        average_power_w=_per(energy, duration_s),
        joules_per_output_token=_per(energy, output_tokens),
        joules_per_token=_per(energy, input_tokens + output_tokens),
        split_rule=SPLIT_RULE,
        pools=per_pool,
        classes=tuple(class_rows),
    )
