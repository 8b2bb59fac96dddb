"""infersim: a discrete-event simulator of heterogeneous, disaggregated LLM inference clusters.

Data flows ``hardware → model → cost → sim → metrics → plan``; the CLI and notebooks are thin faces
over this Python API::

    import infersim
    result = infersim.simulate("scenarios/default.yaml", overrides=["workload.arrival.rate=12"])
    result.summary["p99_itl_ms"], result.summary["cost"]["usd_per_million_output_tokens"]

The names below are imported on first use, so ``import infersim`` stays cheap (the command line
starts fast and ``infersim schema`` never loads the engine).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "simulate": "infersim.api",
    "Result": "infersim.result",
    "load_scenario": "infersim.scenario",
    "Scenario": "infersim.scenario",
    "load_hardware": "infersim.hardware",
    "load_model": "infersim.model",
    "Deployment": "infersim.cost",
    "step_time": "infersim.cost",
    "InfersimError": "infersim.errors",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'infersim' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
