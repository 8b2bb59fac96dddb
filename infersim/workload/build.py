"""Turn a validated ``workload:`` section into the request table the engine runs.

Randomness: every draw comes from the generator passed in, split with ``Generator.spawn`` into
independent streams for arrival times, class assignment and each class's prompt and output
lengths. So changing the output-length distribution leaves the arrival times and prompt lengths
of a run untouched (common random numbers: a what-if compares like with like), and the same seed
always gives a byte-identical table.

Order of the streams (part of the determinism contract; append new ones at the end):
``arrivals, classes, lengths, trace-shuffle``; ``lengths`` spawns one child per class (in the
mix's order), each of which spawns ``prompt, output``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import numpy as np

from infersim.errors import InfersimError
from infersim.workload import arrivals as arr
from infersim.workload.config import (
    ArrivalConfig,
    DiurnalArrival,
    GammaArrival,
    OfflineArrival,
    PoissonArrival,
    StepsArrival,
    WorkloadConfig,
)
from infersim.workload.lengths import resolve_path
from infersim.workload.mixes import RequestClass, resolve_mix
from infersim.workload.table import ClosedLoop, RequestTable, Workload
from infersim.workload.traces import load_trace, replay, with_arrivals


def arrival_times(arrival: ArrivalConfig, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` sorted arrival instants (s) of the configured process, the first at 0."""
    if isinstance(arrival, PoissonArrival):
        return arr.poisson_arrivals(n, arrival.rate, rng)
    if isinstance(arrival, GammaArrival):
        return arr.gamma_arrivals(n, arrival.rate, arrival.shape, rng)
    if isinstance(arrival, StepsArrival):
        return arr.step_arrivals(n, arrival.steps, rng)
    if isinstance(arrival, DiurnalArrival):
        return arr.diurnal_arrivals(n, arrival.mean_rate, arrival.amplitude, arrival.period_s,
                                    rng, phase_s=arrival.phase_s)
    if isinstance(arrival, OfflineArrival):
        return arr.offline_arrivals(n)
    raise TypeError(f"unknown arrival process {type(arrival).__name__}")


def request_classes(cfg: WorkloadConfig, *, base_dir: Path | None = None
                    ) -> tuple[RequestClass, ...]:
    """The leaf request classes of a synthetic workload, with their shares and SLOs."""
    slo = cfg.slo.targets() if cfg.slo else {}
    if cfg.mix is not None:
        return resolve_mix(cfg.mix, base_dir=base_dir, slo=slo)
    if cfg.prompt_tokens is None or cfg.output_tokens is None:
        raise ValueError("request_classes needs a synthetic workload (lengths or a mix)")
    return (RequestClass(name="default", share=1.0, prompt_tokens=cfg.prompt_tokens,
                         output_tokens=cfg.output_tokens, slo=MappingProxyType(dict(slo)),
                         base_dir=base_dir),)


def _synthetic_table(cfg: WorkloadConfig, n: int, streams, base_dir: Path | None
                     ) -> RequestTable:
    arrival_rng, class_rng, length_rng, _ = streams
    classes = request_classes(cfg, base_dir=base_dir)
    if len(classes) > np.iinfo(np.int16).max:
        raise InfersimError(field="workload.mix", expected="at most 32767 request classes",
                            given=len(classes))
    if len(classes) == 1:
        class_index = np.zeros(n, dtype=np.int16)
    else:
        shares = np.array([c.share for c in classes], dtype=np.float64)
        class_index = class_rng.choice(len(classes), size=n, p=shares / shares.sum()
                                       ).astype(np.int16)
    prompt = np.empty(n, dtype=np.int64)
    output = np.empty(n, dtype=np.int64)
    for j, (cls, child) in enumerate(zip(classes, length_rng.spawn(len(classes)), strict=True)):
        prompt_rng, output_rng = child.spawn(2)
        rows = np.flatnonzero(class_index == j)
        field = "workload.mix" if cfg.mix is not None else "workload"
        try:
            prompt[rows] = cls.prompt_tokens.sample(len(rows), prompt_rng, base_dir=cls.base_dir)
            output[rows] = cls.output_tokens.sample(len(rows), output_rng, base_dir=cls.base_dir)
        except InfersimError as err:
            if err.file is not None:
                raise
            raise err.with_prefix(f"{field}[{cls.name}]") from None
    times = (arrival_times(cfg.arrival, n, arrival_rng) if cfg.arrival is not None
             else np.zeros(n, dtype=np.float64))
    return RequestTable(arrival_s=times, prompt_tokens=prompt, output_tokens=output,
                        class_index=class_index, class_names=tuple(c.name for c in classes),
                        class_slo=tuple(c.slo for c in classes))


def _trace_table(cfg: WorkloadConfig, streams, base_dir: Path | None) -> RequestTable:
    arrival_rng, _, _, shuffle_rng = streams
    tc = cfg.trace
    path = resolve_path(tc.path, base_dir)
    caps = [c for c in (cfg.requests, tc.max_requests) if c is not None]
    cap = min(caps) if caps else None
    # A shuffled table draws from all its rows, so it must be read whole.
    trace = load_trace(path, tc.format, prompt_column=tc.prompt_column,
                       output_column=tc.output_column, model=tc.model, ordered=tc.ordered,
                       window_s=tc.window_s, max_requests=None if tc.shuffle else cap)
    if tc.format != "lengths":
        table = replay(trace, speedup=tc.speedup, window_s=tc.window_s, max_requests=cap)
        if cfg.arrival is None and cfg.concurrency is None:
            return table
        # The trace's lengths, in its order, under a synthetic process (or a closed loop).
        times = (arrival_times(cfg.arrival, len(table), arrival_rng) if cfg.arrival is not None
                 else np.zeros(len(table), dtype=np.float64))
        return RequestTable(arrival_s=times, prompt_tokens=table.prompt_tokens,
                            output_tokens=table.output_tokens, prefix_hashes=table.prefix_hashes,
                            prefix_block_tokens=table.prefix_block_tokens)
    if tc.shuffle:
        order = shuffle_rng.permutation(len(trace))
        trace = replace(trace, prompt_tokens=trace.prompt_tokens[order],
                        output_tokens=trace.output_tokens[order])
    n = len(trace) if cap is None else min(cap, len(trace))
    times = (arrival_times(cfg.arrival, n, arrival_rng) if cfg.arrival is not None
             else np.zeros(n, dtype=np.float64))
    return with_arrivals(trace, times, max_requests=n)


def build_workload(cfg: WorkloadConfig, rng: np.random.Generator, *,
                   base_dir: Path | None = None) -> Workload:
    """The request table (open loop) or :class:`ClosedLoop` that ``cfg`` describes.

    ``base_dir`` is the scenario file's folder: relative trace, mix and empirical-table paths
    are taken from it (the current directory when None).
    """
    if not isinstance(cfg, WorkloadConfig):
        raise TypeError(f"build_workload needs a WorkloadConfig, got {type(cfg).__name__}")
    streams = rng.spawn(4)
    if cfg.trace is not None:
        table = _trace_table(cfg, streams, base_dir)
        if cfg.slo is not None:  # a trace is one class; the workload-wide targets are its own
            table = replace(table, class_slo=(MappingProxyType(cfg.slo.targets()),))
    else:
        table = _synthetic_table(cfg, cfg.requests, streams, base_dir)
    if cfg.concurrency is not None:
        return ClosedLoop(users=cfg.concurrency, requests=table, think_time_s=cfg.think_time_s,
                          think_dist=cfg.think_dist)
    return table
