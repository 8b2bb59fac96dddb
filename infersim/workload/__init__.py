"""Workloads: when requests arrive and how long they are.

* :mod:`~infersim.workload.table`: the columnar :class:`RequestTable` and :class:`ClosedLoop`
  handed to the engine.
* :mod:`~infersim.workload.arrivals`: Poisson, gamma (vLLM ``--burstiness``), step, diurnal and
  offline arrival processes.
* :mod:`~infersim.workload.lengths`: prompt/output length distributions (fixed, uniform, normal,
  lognormal, quantile tables, empirical).
* :mod:`~infersim.workload.mixes`: named, sourced request mixes (``workloads/*.yaml``) and
  weighted classes with their own SLOs.
* :mod:`~infersim.workload.traces`: streaming loaders for Azure, Mooncake, BurstGPT and plain
  length-table traces, and their replay.
* :mod:`~infersim.workload.config` / :mod:`~infersim.workload.build`: the scenario's
  ``workload:`` section (:class:`WorkloadConfig`) and :func:`build_workload`.
"""

from infersim.workload.build import arrival_times, build_workload, request_classes
from infersim.workload.config import (
    ClassConfig,
    MixSpec,
    SLOConfig,
    TraceConfig,
    WorkloadConfig,
    parse_workload,
)
from infersim.workload.mixes import RequestClass, list_mixes, load_mix, resolve_mix
from infersim.workload.table import ClosedLoop, RequestTable, Workload
from infersim.workload.traces import Trace, load_trace, replay

__all__ = [
    "ClassConfig",
    "ClosedLoop",
    "MixSpec",
    "RequestClass",
    "RequestTable",
    "SLOConfig",
    "Trace",
    "TraceConfig",
    "Workload",
    "WorkloadConfig",
    "arrival_times",
    "build_workload",
    "list_mixes",
    "load_mix",
    "load_trace",
    "parse_workload",
    "replay",
    "request_classes",
    "resolve_mix",
]
