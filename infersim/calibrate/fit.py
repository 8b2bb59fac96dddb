"""Fitting a few named, bounded knobs to measured runs, and the held-out error.

A serving deployment differs from the chip's calibrated defaults in a handful of ways that its
own benchmark can reveal: how much host time the engine spends per step (scheduling, launch,
sampling, detokenisation: ``step_overhead``), and what fractions of peak FLOP/s and memory
bandwidth its kernels reach on this model (``compute_efficiency``, ``memory_efficiency``).
Those three are the knobs (:data:`KNOBS`), each with physical bounds; one value of each is
fitted for every pool of the scenario (a benchmark measures the deployment as a whole).

The fit minimises the mean squared log ratio, simulated over measured, of every statistic in
:data:`~infersim.calibrate.formats.METRICS` over the *calibration* runs, with a bounded compass
search from the scenario's current values (:func:`compass_search`; deterministic: the same
files, scenario and seed give the same knobs). The *held-out* runs are then replayed with the fitted knobs and
their relative errors reported per statistic: that, not the fit's own residual, says how far
to trust the calibrated scenario at loads it was not fitted on.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from infersim.calibrate.formats import METRICS, BenchRun
from infersim.calibrate.replay import DEFAULT_MAX_REQUESTS, check_replayable, simulate_run
from infersim.scenario import Scenario


@dataclass(frozen=True)
class Knob:
    """A pool field calibration may set, with its physical bounds."""

    name: str
    low: float
    high: float
    why: str

    def render(self, value: float) -> str:
        return f"{value * 1e3:.3f} ms" if self.name == "step_overhead" else f"{value:.4f}"


KNOBS: tuple[Knob, ...] = (
    Knob("step_overhead", 0.0, 0.030,
         "host time per engine step: 0 to 30 ms (engines/vllm-0.6.yaml: 6.5 ms at TP4)"),
    Knob("compute_efficiency", 0.15, 1.0, "achieved fraction of peak FLOP/s"),
    Knob("memory_efficiency", 0.30, 1.0, "achieved fraction of memory bandwidth"),
)
KNOB_NAMES = tuple(k.name for k in KNOBS)


def start_values(scenario: Scenario, knobs: Sequence[Knob]) -> list[float]:
    """Each knob's current value in the scenario (the first pool's, else its chip's)."""
    resolved = check_replayable(scenario)
    name = next(iter(scenario.pools))
    dep = resolved.deployments[name]
    current = {"step_overhead": dep.effective_step_overhead_s,
               "compute_efficiency": dep.hardware.compute_efficiency,
               "memory_efficiency": dep.hardware.memory_efficiency}
    return [min(max(current[k.name], k.low), k.high) for k in knobs]


def knob_overrides(scenario: Scenario, knobs: Sequence[Knob], values: Sequence[float]
                   ) -> list[str]:
    """``--set`` strings putting each knob's value on every pool."""
    return [f"pools.{pool}.{knob.name}={value!r}"
            for pool in scenario.pools for knob, value in zip(knobs, values, strict=True)]


def log_error(simulated: dict[str, float], measured: dict[str, float]) -> list[float]:
    """Log ratios simulated/measured of the statistics both have (an unfinished replay is a
    large error, not a crash)."""
    out = []
    for key in METRICS:
        if key in measured and measured[key] > 0:
            value = simulated.get(key, math.nan)
            out.append(math.log(value / measured[key]) if value > 0 and math.isfinite(value)
                       else 5.0)
    return out


@dataclass(frozen=True)
class RunError:
    """One run's statistics, measured and simulated, and whether the fit saw it."""

    run: BenchRun
    role: str  # "fit" or "held-out"
    measured: dict[str, float]
    simulated: dict[str, float]

    def relative(self, key: str) -> float:
        return self.simulated[key] / self.measured[key] - 1.0


@dataclass(frozen=True)
class Calibration:
    knobs: tuple[Knob, ...]
    start: tuple[float, ...]
    values: tuple[float, ...]
    overrides: tuple[str, ...]
    runs: tuple[RunError, ...]
    evaluations: int

    def median_abs_error(self, key: str, role: str) -> float | None:
        """Median over the runs of ``role`` of |simulated/measured - 1| for one statistic."""
        errs = [abs(r.relative(key)) for r in self.runs if r.role == role and key in r.measured]
        return float(np.median(errs)) if errs else None


def split_runs(runs: Sequence[BenchRun], fit_on: Sequence[int] | None) -> list[str]:
    """Each run's role. Default: runs 0, 2, 4, ... fit and 1, 3, ... are held out (a single
    run fits and nothing is held out)."""
    if fit_on is None:
        fit_on = range(0, len(runs), 2)
    chosen = set(fit_on)
    return ["fit" if i in chosen else "held-out" for i in range(len(runs))]


def calibrate(scenario: Scenario, runs: Sequence[BenchRun], roles: Sequence[str], *,
              knobs: Sequence[Knob] = KNOBS, max_evals: int = 60,
              max_requests: int = DEFAULT_MAX_REQUESTS,
              progress: Callable[[int], None] | None = None) -> Calibration:
    """Fit ``knobs`` on the runs whose role is ``fit``; replay every run with the result."""
    fit_runs = [run for run, role in zip(runs, roles, strict=True) if role == "fit"]
    lows = np.array([k.low for k in knobs])
    spans = np.array([k.high - k.low for k in knobs])
    start = start_values(scenario, knobs)
    evaluations = 0

    def objective(unit: np.ndarray) -> float:
        nonlocal evaluations
        evaluations += 1
        if progress is not None:
            progress(evaluations)
        values = lows + spans * np.clip(unit, 0.0, 1.0)
        overrides = knob_overrides(scenario, knobs, values.tolist())
        errs: list[float] = []
        for run in fit_runs:
            errs += log_error(simulate_run(scenario, run, overrides, max_requests=max_requests),
                              dict(run.metrics))
        return float(np.mean(np.square(errs))) if errs else 0.0

    x0 = (np.array(start) - lows) / spans
    unit = compass_search(objective, x0, max_evals) if knobs and fit_runs else x0
    values = [float(f"{v:.6g}") for v in (lows + spans * unit)]
    overrides = knob_overrides(scenario, knobs, values)
    results = tuple(
        RunError(run=run, role=role, measured=dict(run.metrics),
                 simulated=simulate_run(scenario, run, overrides, max_requests=max_requests))
        for run, role in zip(runs, roles, strict=True))
    return Calibration(knobs=tuple(knobs), start=tuple(start), values=tuple(values),
                       overrides=tuple(overrides), runs=results, evaluations=evaluations)


def compass_search(objective: Callable[[np.ndarray], float], x0: np.ndarray, max_evals: int,
                   *, step: float = 0.25, tolerance: float = 1e-3) -> np.ndarray:
    """Minimise ``objective`` over the unit cube from ``x0``: try a step up and down along each
    axis in turn, move to the first point that improves, halve the step when none does; stop
    when the step falls under ``tolerance`` or ``max_evals`` evaluations are spent. Needs no
    gradient (a simulation has none) and never leaves the bounds."""
    best_x = np.clip(np.asarray(x0, dtype=float), 0.0, 1.0)
    if max_evals <= 0:
        return best_x
    best = objective(best_x)
    evals = 1
    while step >= tolerance and evals < max_evals:
        improved = False
        for axis in range(len(best_x)):
            for sign in (-1.0, 1.0):
                trial = best_x.copy()
                trial[axis] = min(max(trial[axis] + sign * step, 0.0), 1.0)
                if trial[axis] == best_x[axis] or evals >= max_evals:
                    continue
                value = objective(trial)
                evals += 1
                if value < best:
                    best, best_x, improved = value, trial, True
                    break
        if not improved:
            step /= 2.0
    return best_x
