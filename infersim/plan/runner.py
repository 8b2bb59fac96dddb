"""The bridge from sweeps, plans and checks to the simulator: one scenario + overrides + seed in,
one summary out.

The driver loads and validates every run's scenario (so a bad override fails before anything is
dispatched, and the run's hash is known up front), then ships the *resolved* scenario — plain JSON
data, quantities in SI units, seed included — to the worker, which validates it again and
simulates. A worker therefore never needs the scenario file: a Ray node on another machine only
needs infersim itself (shipped chips and models resolve from its own installation) and any data
file the scenario names by a relative path (a model's config.json, a trace). The worker checks
that the scenario it rebuilt has the hash the driver filed the run under.

Everything that crosses to a worker is a module-level function or a frozen value of plain data,
so it pickles to a spawned process or a Ray task.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infersim.api import simulate
from infersim.plan.sweep import RunTask
from infersim.scenario import Scenario, load_scenario, validate_data


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


def load(scenario: str | Path, overrides: Sequence[str] = (), seed: int | None = None) -> Scenario:
    return load_scenario(scenario, overrides=tuple(overrides), seed=seed)


def simulate_summary(scenario: Scenario) -> dict[str, Any]:
    """Run a loaded scenario and return its summary as plain JSON data."""
    return plain(simulate(scenario).summary)


@dataclass(frozen=True)
class ResolvedRun:
    """A run as it travels to a worker: the resolved scenario data and where it came from."""

    data: Mapping[str, Any]
    source: str            # the scenario file, for error messages
    base_dir: str          # where its relative paths point
    scenario_hash: str     # what the driver filed the run under


def resolved_run(scenario: Scenario) -> ResolvedRun:
    return ResolvedRun(data=scenario.resolved(), source=scenario.source,
                       base_dir=str(scenario.base_dir), scenario_hash=scenario.hash)


def run_resolved(item: ResolvedRun) -> dict[str, Any]:
    """Validate a resolved scenario in the worker and simulate it."""
    scenario = validate_data(dict(item.data), file=item.source, base_dir=Path(item.base_dir))
    if scenario.hash != item.scenario_hash:
        # A resolved scenario that does not rebuild to itself would file results under the
        # wrong name: a bug (driver and worker on different infersim versions, say), not input.
        raise RuntimeError(f"scenario {item.source} rebuilt with hash {scenario.hash} in the "
                           f"worker, {item.scenario_hash} in the driver")
    return simulate_summary(scenario)


class SimulatorRunner:
    """The sweep :class:`~infersim.plan.sweep.Runner` backed by :func:`infersim.simulate`."""

    run = staticmethod(run_resolved)

    def __init__(self) -> None:
        self._loaded: dict[tuple, Scenario] = {}

    def _load(self, task: RunTask) -> Scenario:
        key = (task.scenario, task.overrides, task.seed)
        if key not in self._loaded:
            self._loaded[key] = load(task.scenario, task.overrides, task.seed)
        return self._loaded[key]

    def base_seed(self, scenario: str, fixed: Sequence[str]) -> int:
        return int(load(scenario, fixed).seed)

    def run_hash(self, task: RunTask) -> str:
        # The resolved scenario includes the seed, so its hash names the run completely.
        return str(self._load(task).hash)

    def payload(self, task: RunTask) -> ResolvedRun:
        return resolved_run(self._load(task))
