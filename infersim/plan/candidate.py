"""The planner's values: a planned pool, a candidate cluster, its simulated evaluation and the
outcome of a whole search."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from infersim.plan.target import LoadShape, RunLength
from infersim.slo import SLO

LAYOUTS = ("colocated", "disaggregated")


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
    precision: str | None = None   # None: the base scenario's

    @property
    def chips(self) -> int:
        return self.tp * self.pp * self.instances

    def describe(self) -> str:
        layout = f"tp{self.tp}" + (f"pp{self.pp}" if self.pp > 1 else "")
        return f"{self.instances}x {self.hardware} {layout}" + (
            f" {self.precision}" if self.precision else "")


@dataclass(frozen=True)
class Candidate:
    """One cluster the planner may recommend, with its cost-model estimates."""

    layout: str
    pools: tuple[PoolPlan, ...]
    cost_per_hour: float
    capacity_rps: float          # requests/s the cost model says it carries at full utilisation
    utilisation_target: float    # the target it was sized for
    units: str = ""              # what is bought, when chips come in whole units ("1 NVL72 rack")

    @property
    def chips(self) -> int:
        return sum(pool.chips for pool in self.pools)

    @property
    def family(self) -> str:
        """The chips the plan runs on: one name, or ``prefill chip -> decode chip``."""
        names = [p.hardware for p in self.pools]
        return names[0] if len(set(names)) == 1 else " -> ".join(names)

    @property
    def label(self) -> str:
        parts = [f"{p.role} {p.describe()}" for p in self.pools]
        return " + ".join(parts)

    @property
    def key(self) -> tuple:
        return (self.layout, tuple((p.role, p.hardware, p.tp, p.pp, p.instances, p.max_batch_size,
                                    p.max_batch_tokens, p.precision) for p in self.pools))


@dataclass(frozen=True)
class Evaluation:
    """A candidate's simulated verdict at the target rate and its search for the maximum rate."""

    candidate: Candidate
    summary: Mapping[str, Any] | None = None     # at the target rate
    slo_met: bool | None = None                   # None: not simulated
    reason: str = ""
    max_rate: float | None = None                 # highest rate found to hold the SLOs
    max_rate_summary: Mapping[str, Any] | None = None
    # Confirmation over several seeds: the seeds run, and per SLO metric (summary key) the mean
    # over them with its confidence interval, (mean, low, high).
    seeds: tuple[int, ...] = ()
    intervals: Mapping[str, tuple[float, float, float]] = field(default_factory=dict)

    @property
    def goodput_per_dollar(self) -> float | None:
        """Requests per dollar at the maximum sustainable rate: goodput as DistServe defines it
        (the highest request rate served within the SLOs) divided by the hourly price."""
        if not self.max_rate:
            return None
        return self.max_rate * 3600.0 / self.candidate.cost_per_hour


class Pruned(NamedTuple):
    """Something the search ruled out without simulating it, and why."""

    family: str      # the chip (or ``prefill chip -> decode chip``) it would have run on
    what: str        # the shape, pairing or candidate
    why: str


@dataclass(frozen=True)
class FamilyVerdict:
    """One row of the planner's answer: a chip family's best plan, or why it has none."""

    family: str
    best: Evaluation | None
    reason: str = ""                 # why there is no plan (empty when there is one)
    candidates: int = 0              # candidates the cost model admitted
    simulated: int = 0               # of them, simulated
    pruned: int = 0                  # shapes, pairings and candidates ruled out before simulation


@dataclass(frozen=True)
class PlanOutcome:
    rate: float | None
    budget: float | None
    slo: SLO
    load: LoadShape
    evaluations: tuple[Evaluation, ...]         # ranked: best first
    best: Evaluation | None
    pruned: tuple[Pruned, ...]                   # what the cost model ruled out, and why
    simulations: int
    best_scenario: dict | None = None            # the best plan as scenario data (YAML-ready)
    notes: tuple[str, ...] = field(default=())
    run_length: RunLength | None = None          # requests per simulation at each rate
    families: tuple[FamilyVerdict, ...] = ()     # one row per chip family
    seeds: int = 1                               # seeds each finalist was confirmed over
    headroom: float = 0.0                        # share of each target kept free

    def best_of(self, layout: str) -> Evaluation | None:
        for ev in self.evaluations:
            if ev.candidate.layout == layout and ev.slo_met:
                return ev
        return None
