"""Service-level objectives: which requests, and which runs, meet their latency targets.

An SLO is a set of targets in milliseconds, any subset of ``ttft_ms``, ``tpot_ms``, ``itl_ms``
and ``e2el_ms``, read at one ``percentile`` (99 unless stated). There are two verdicts, and this
module is the only place that states either:

- **a request meets its SLO** when each of its own latencies is within its target (``<=``), as
  vLLM bench's ``--goodput`` counts it. TTFT, TPOT and E2EL are the request's own; ITL is its
  *largest* inter-token gap (the strictest reading: one stall the user sees is a miss). A request
  with a single output token has no TPOT and no gap, and so cannot miss those two targets.
  ``request_goodput`` counts completed requests per second that meet every target;
- **a run meets a target** when the ``percentile``-th percentile of that metric over completed
  requests (pooled token gaps for ITL) is within it (``<=``; a NaN percentile, from a run that
  completed nothing, misses).

Which targets hold a request: its workload class's own (a class in a mix may carry an ``slo``,
merged from the workload's and its mixes'), else the scenario's ``slo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from infersim.errors import InfersimError

SLO_METRICS = ("ttft", "itl", "tpot", "e2el")
SLO_KEYS = ("ttft_ms", "tpot_ms", "itl_ms", "e2el_ms")
DEFAULT_PERCENTILE = 99.0


def check_slo(slo: Mapping[str, Any]) -> dict[str, float]:
    """The targets (and ``percentile``) of an SLO mapping, checked: each a number > 0 (a
    percentile also <= 100); ``None`` values dropped; an unknown key is an error naming it."""
    unknown = sorted(set(slo) - {*SLO_KEYS, "percentile"})
    if unknown:
        raise InfersimError(field=f"slo.{unknown[0]}",
                            expected="one of " + ", ".join((*SLO_KEYS, "percentile")),
                            given=unknown[0])
    checked = {}
    for key, value in slo.items():
        if value is None:
            continue
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
        if key == "percentile":
            ok = ok and value <= 100
        if not ok:
            raise InfersimError(field=f"slo.{key}", expected="a number > 0" + (
                " and <= 100" if key == "percentile" else ""), given=value)
        checked[key] = float(value)
    return checked


def targets_of(slo: Any) -> dict[str, float]:
    """The set targets of a scenario's ``slo`` block (no percentile), e.g. ``{"ttft_ms": 500.0}``,
    in the block's field order."""
    return {k: v for k, v in slo.model_dump(exclude_none=True).items() if k != "percentile"}


def stated_targets(scenario: Any) -> dict[str, float]:
    """The targets a scenario states for the whole run: its ``slo``'s, else, when that sets
    none, the workload's ``slo``'s (what a capacity plan is held to)."""
    targets = targets_of(scenario.slo)
    if not targets and scenario.workload.slo is not None:
        targets = scenario.workload.slo.targets()
    return targets


def class_targets(scenario: Any) -> dict[str, dict[str, float]]:
    """Per workload class, the targets its requests are held to: the class's own (from its mix
    or the workload's ``slo``), else the scenario's ``slo``. Empty for a trace (one class, held
    to the scenario's targets)."""
    from infersim.workload import request_classes

    if scenario.workload.trace is not None:
        return {}
    default = targets_of(scenario.slo)
    classes = request_classes(scenario.workload, base_dir=scenario.base_dir)
    return {c.name: dict(c.slo) or default for c in classes}


def percentile_key(metric: str, percentile: float) -> str:
    """The summary key of a metric's percentile: ``("ttft", 99.0) -> "p99_ttft_ms"``."""
    p = float(percentile)
    return f"p{int(p) if p.is_integer() else p}_{metric}_ms"


def request_latencies_ms(ttft_s: np.ndarray, tpot_s: np.ndarray, e2e_s: np.ndarray,
                         max_gap_s: np.ndarray) -> dict[str, np.ndarray]:
    """Each request's latencies as its SLO reads them, in ms: a request without a TPOT or a
    token gap (one output token) reads 0 there, so it cannot miss those targets."""
    return {"ttft_ms": np.asarray(ttft_s) * 1e3,
            "tpot_ms": np.nan_to_num(np.asarray(tpot_s) * 1e3, nan=0.0),
            "e2el_ms": np.asarray(e2e_s) * 1e3,
            "itl_ms": np.nan_to_num(np.asarray(max_gap_s, dtype=float) * 1e3, nan=0.0)}


def meets(latencies_ms: Mapping[str, np.ndarray], targets: Mapping[str, float],
          among: np.ndarray) -> np.ndarray:
    """Which requests (of those where ``among`` is true) meet every target (``<=``); the
    latencies as :func:`request_latencies_ms` reads them."""
    ok = np.array(among, dtype=bool, copy=True)
    for key, target in targets.items():
        ok &= latencies_ms[key] <= target
    return ok


def target_met(value: float, target: float) -> bool:
    """A run's verdict on one target: its percentile ``value`` is within ``target`` (``<=``);
    NaN (nothing completed) misses."""
    return bool(value <= target)


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
    percentile: float = DEFAULT_PERCENTILE
    attainment: float = 0.9
    headroom: float = 0.0     # share of each target kept free: a plan must meet (1 - headroom)·target

    def limit(self, metric: str) -> float:
        """What a run's ``metric`` percentile must stay within: the target less the headroom."""
        return float(getattr(self, f"{metric}_ms")) * (1.0 - self.headroom)

    def targets(self) -> dict[str, float]:
        return {m: getattr(self, f"{m}_ms") for m in SLO_METRICS
                if getattr(self, f"{m}_ms") is not None}

    def summary_key(self, metric: str) -> str:
        return percentile_key(metric, self.percentile)

    @property
    def step_budget_s(self) -> float | None:
        """The longest decode step the ITL (or TPOT) target allows."""
        bounds = [v for v in (self.itl_ms, self.tpot_ms) if v is not None]
        return min(bounds) / 1000.0 if bounds else None


def slo_of(scenario: Any, attainment: float = 0.9) -> SLO:
    """The SLO a scenario states for the whole run (:func:`stated_targets`) at its percentile."""
    return SLO(**stated_targets(scenario), percentile=float(scenario.slo.percentile),
               attainment=attainment)


def slo_verdict(summary: Mapping[str, Any], slo: SLO, requests: int) -> tuple[bool, str]:
    """Whether a run met every SLO percentile (within its target less the headroom), completed
    every request and kept the required share of requests inside every SLO; the reason if not."""
    completed = int(summary.get("completed", 0))
    if completed < requests:
        return False, f"{requests - completed} of {requests} requests did not complete"
    for metric in slo.targets():
        key = slo.summary_key(metric)
        value = run_percentile(summary, slo, metric)
        if not target_met(value, slo.limit(metric)):
            return False, f"{key} {value:.1f} > {slo.limit(metric):g}"
    return attained(summary, slo)


def run_percentile(summary: Mapping[str, Any], slo: SLO, metric: str) -> float:
    """The summary's percentile of ``metric`` at the SLO's percentile (an error if the summary
    does not report that percentile)."""
    key = slo.summary_key(metric)
    if key not in summary:
        raise InfersimError(field=f"slo.{metric}_ms", expected=f"a percentile the summary "
                            f"reports ({key} is missing; use percentile 90 or 99)",
                            given=slo.percentile)
    return float(summary[key])


def attained(summary: Mapping[str, Any], slo: SLO) -> tuple[bool, str]:
    """Whether the share of a run's requests inside every SLO reaches the attainment asked."""
    # request_goodput and request_throughput share a denominator (the run's duration), so their
    # ratio is the share of completed requests that met every target.
    throughput = float(summary.get("request_throughput", 0.0))
    share = float(summary.get("request_goodput", 0.0)) / throughput if throughput > 0 else 0.0
    if share < slo.attainment - 1e-12:
        return False, f"{share:.0%} of requests within every SLO < {slo.attainment:.0%}"
    return True, ""
