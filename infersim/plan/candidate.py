"""The planner's values: a planned pool, a candidate cluster, its simulated evaluation and the
outcome of a whole search."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
