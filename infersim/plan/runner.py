"""The bridge from sweeps, plans and checks to the simulator: one scenario + overrides + seed in,
one summary out.

Everything here is a module-level function of plain values, so it can be pickled to a spawned
worker process or a Ray task. The scenario is loaded (and validated) in the worker from its path
and override strings rather than shipped as an object: the task stays a few hundred bytes, and
a worker on another machine resolves shipped names (``h100``, ``llama-3.1-8b``) from its own
installation exactly as the driver does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from infersim.api import simulate
from infersim.plan.sweep import RunTask
from infersim.scenario import load_scenario


def plain(value: Any) -> Any:
    """JSON-ready copy of a summary: numpy scalars to Python, tuples to lists, keys to str."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def load(scenario: str, overrides: Sequence[str] = (), seed: int | None = None) -> Any:
    return load_scenario(scenario, overrides=tuple(overrides), seed=seed)


def simulate_summary(scenario: Any) -> dict[str, Any]:
    """Run a loaded scenario and return its summary as plain JSON data."""
    return plain(simulate(scenario).summary)


def run(task: RunTask) -> dict[str, Any]:
    """One sweep run: load with the run's overrides and derived seed, simulate, summarise."""
    return simulate_summary(load(task.scenario, task.overrides, task.seed))


class SimulatorRunner:
    """The sweep :class:`~infersim.plan.sweep.Runner` backed by :func:`infersim.simulate`."""

    run = staticmethod(run)

    def base_seed(self, scenario: str, fixed: Sequence[str]) -> int:
        return int(load(scenario, fixed).seed)

    def run_hash(self, task: RunTask) -> str:
        # The resolved scenario includes the seed, so its hash names the run completely.
        return str(load(task.scenario, task.overrides, task.seed).hash)
