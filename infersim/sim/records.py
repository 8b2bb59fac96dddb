"""What the engine writes down while it runs, in compact columnar form.

Per request: one flat row of instants (preallocated numpy columns, NaN until the event happens).

Per decoding instance: an *epoch log*. Between two changes of its batch membership a decode
instance runs m identical-membership steps; with n sequences whose KV lengths sum to K0 at the
epoch's first step, step j (0-based) takes ``a + b*(K0 + j*n)`` seconds, so the end of step j is
``start + (j+1)*a + b*((j+1)*K0 + n*(j+1)*j/2)``. Storing (start, first global step, m, a, b, K0,
n) per epoch is enough to rebuild every token time exactly.

Per request: its *decode runs*. A request's decode is one or more stretches of consecutive global
steps on one instance (a preemption ends a stretch): (request, instance, first step, steps). A run
emits one token at the end of each of its steps.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


class RequestRecords:
    """Preallocated per-request columns, filled in as events happen."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.arrival_at = np.full(n, np.nan)
        self.prefill_start_at = np.full(n, np.nan)
        self.first_token_at = np.full(n, np.nan)  # as the client gets it
        self.prefill_end_at = np.full(n, np.nan)  # a prefill instance's step produced it
        self.kv_transfer_start_at = np.full(n, np.nan)
        self.kv_transfer_end_at = np.full(n, np.nan)
        self.decode_start_at = np.full(n, np.nan)
        self.last_token_at = np.full(n, np.nan)
        self.prefill_instance = np.full(n, -1, dtype=np.int32)  # global instance index
        self.decode_instance = np.full(n, -1, dtype=np.int32)
        self.cached_prompt_tokens = np.zeros(n, dtype=np.int64)  # reused from a prefix cache
        self.preemptions = np.zeros(n, dtype=np.int32)
        self.rejected = np.zeros(n, dtype=bool)
        self.completed = np.zeros(n, dtype=bool)


class Epoch(NamedTuple):
    """A stretch of ``steps`` decode steps of constant membership, from global step
    ``first_step`` on: ``n`` sequences whose KV lengths sum to ``k0`` at its first step, so step j
    (0-based) takes ``a + b*(k0 + j*n)`` seconds (see module docstring)."""

    start_at: float
    first_step: int
    steps: int
    a: float
    b: float
    k0: int
    n: int


class EpochLog:
    """Constant-membership stretches of one decoding instance (see module docstring).

    Rows are kept flat, seven float64 numbers per epoch (one ``extend`` per epoch is the cheapest
    way to log from Python); the integer fields are exact in float64 far beyond any run's size.
    """

    __slots__ = ("rows",)
    FIELDS = Epoch._fields
    _INTS = ("first_step", "steps", "k0", "n")

    def __init__(self) -> None:
        self.rows = array("d")  # flat: FIELDS of epoch 0, then of epoch 1, ...

    def append(self, epoch: Epoch, steps: int) -> None:
        """Log the first ``steps`` steps of ``epoch`` (all of them, or fewer if cut short)."""
        start_at, first_step, _, a, b, k0, n = epoch
        self.rows.extend((start_at, first_step, steps, a, b, k0, n))

    def __len__(self) -> int:
        return len(self.rows) // len(self.FIELDS)

    def arrays(self) -> dict[str, np.ndarray]:
        rows = np.frombuffer(self.rows, dtype=np.float64).reshape(-1, len(self.FIELDS))
        cols = {name: rows[:, i] for i, name in enumerate(self.FIELDS)}
        return {name: cols[name].astype(np.int64) if name in self._INTS else cols[name].copy()
                for name in sorted(self.FIELDS)}


def step_end_times(epochs: dict[str, np.ndarray]) -> np.ndarray:
    """End instant of every global step of one instance, indexed by global step number.

    Epochs tile the step numbers 0..S-1 in order (an instance numbers only the steps that emit
    tokens), so the result has one entry per step.
    """
    steps = epochs["steps"]
    total = int(steps.sum())
    if total == 0:
        return np.empty(0)
    which = np.repeat(np.arange(len(steps)), steps)
    j = np.arange(total, dtype=np.int64) - np.repeat(epochs["first_step"], steps)
    m = (j + 1).astype(np.float64)
    k0 = epochs["k0"][which].astype(np.float64)
    n = epochs["n"][which].astype(np.float64)
    return epochs["start_at"][which] + (m * epochs["a"][which]
                                        + epochs["b"][which] * (m * k0 + n * m * (m - 1) / 2.0))


class RunLog:
    """Decode runs of all requests: (request, instance, first global step, steps)."""

    __slots__ = ("rows",)
    FIELDS = ("request", "instance", "first_step", "steps")

    def __init__(self) -> None:
        self.rows = array("q")  # flat: FIELDS of run 0, then of run 1, ...

    def append(self, request: int, instance: int, first_step: int, steps: int) -> None:
        if steps > 0:
            self.rows.extend((request, instance, first_step, steps))

    def __len__(self) -> int:
        return len(self.rows) // len(self.FIELDS)

    def arrays(self) -> dict[str, np.ndarray]:
        rows = np.frombuffer(self.rows, dtype=np.int64).reshape(-1, len(self.FIELDS))
        return {name: rows[:, self.FIELDS.index(name)].copy() for name in sorted(self.FIELDS)}


class Timeseries:
    """Per-instance state samples, taken on events but at most one per ``interval_s`` each."""

    __slots__ = ("batch_size", "busy", "instance", "interval_s", "kv_blocks_capacity",
                 "kv_blocks_used", "queue_length", "time_at")

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self.instance = array("i")
        self.time_at = array("d")
        self.busy = array("b")
        self.batch_size = array("i")
        self.kv_blocks_used = array("q")
        self.kv_blocks_capacity = array("q")
        self.queue_length = array("i")

    def sample(self, instance: int, now: float, busy: bool, batch_size: int, kv_used: int,
               kv_capacity: int, queue_length: int) -> None:
        """Add a row (the caller throttles: one row per instance per ``interval_s`` at most)."""
        self.instance.append(instance)
        self.time_at.append(now)
        self.busy.append(busy)
        self.batch_size.append(batch_size)
        self.kv_blocks_used.append(kv_used)
        self.kv_blocks_capacity.append(kv_capacity)
        self.queue_length.append(queue_length)


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """What one instance leaves behind when the run stops."""

    index: int  # global instance number
    name: str  # "decode.3"
    pool: str
    local_index: int
    role: str
    busy_s: float
    peak_kv_blocks: int
    kv_blocks_capacity: int
    epochs: EpochLog | None = None  # decode and mixed instances
    prefill_busy_s: float = 0.0  # mixed instances: busy time spent on prompt tokens


@dataclass(frozen=True)
class RunRecords:
    """Everything a stopped run wrote down, from which :func:`~infersim.sim.result.build_result`
    makes the result tables."""

    table: Any  # the workload's RequestTable (lengths and classes by request id)
    requests: RequestRecords
    runs: RunLog
    timeseries: Timeseries
    instances: list[InstanceRecord]  # by global instance number
    links: list[dict[str, Any]]  # one row per KV link (see KVLink.record)
    pools: Sequence[Any]  # the cluster's PoolSpecs, in order
    seed: int
