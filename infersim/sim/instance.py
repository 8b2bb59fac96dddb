"""What every serving instance is, whatever its role: a named member of a pool.

An instance is a group of chips of one pool, running the pool's deployment. It has a global
number (rows of the records and time series), a number within its pool (its name,
``decode.3``), a row in the router's load arrays, and a KV memory of whole blocks sized by the
cost model. It sees the run only through its :class:`~infersim.sim.ports.RunContext`. The
prefill, decode and mixed instances add their own scheduling on top.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from infersim.sim.clock import Clock
from infersim.sim.costs import StepCosts
from infersim.sim.ports import RunContext
from infersim.sim.records import InstanceRecord
from infersim.sim.router import InstanceLoads
from infersim.sim.spec import PoolSpec


class Instance(ABC):
    """The identity, the router row and the KV block capacity shared by every instance kind.

    Abstract: each kind says how many requests wait in its queue and how it closes its books
    when the clock stops."""

    role = ""

    def __init__(self, env: Clock, ctx: RunContext, pool: PoolSpec, costs: StepCosts,
                 index: int, local_index: int, loads: InstanceLoads, slot: int) -> None:
        self.env = env
        self.ctx = ctx
        self.pool = pool
        self.costs = costs
        self.index = index  # global instance number (records, timeseries)
        self.local_index = local_index  # number within its pool
        self.name = f"{pool.name}.{local_index}"
        self.loads = loads
        self.slot = slot  # this instance's row in the router's load arrays
        self.block_size = pool.block_size
        self.capacity_blocks = costs.kv_capacity_tokens // pool.block_size
        self.capacity_tokens = self.capacity_blocks * pool.block_size
        # the most KV tokens one request may need here: a decode or mixed instance that reserves
        # a request's whole KV reserves blocks for prompt + output tokens, one more than the KV
        # ever holds (the last token is never fed back)
        full = pool.role != "prefill" and pool.kv_reservation == "full"
        self.kv_limit_tokens = self.capacity_tokens - 1 if full else self.capacity_tokens
        self.load_tokens = 0  # outstanding work, as published in ``loads``
        self.load_requests = 0
        self.busy_s = 0.0
        self.peak_blocks = 0
        self.sample_due = float("-inf")  # next time this instance may add a time-series row

    @property
    @abstractmethod
    def queue_length(self) -> int:
        """Requests waiting here (for the time series)."""

    def _add_load(self, tokens: int, requests: int) -> None:
        """Outstanding work changed: keep the count here, publish it to the router."""
        self.load_tokens += tokens
        self.load_requests += requests
        self.loads.outstanding_tokens[self.slot] = self.load_tokens
        self.loads.outstanding_requests[self.slot] = self.load_requests

    def _sample(self, now: float, batch_size: int, kv_used: int) -> None:
        """Add a time-series row (callers check ``now >= self.sample_due`` first)."""
        timeseries = self.ctx.timeseries
        self.sample_due = now + timeseries.interval_s
        timeseries.sample(self.index, now, batch_size > 0, batch_size, kv_used,
                          self.capacity_blocks, self.queue_length)

    def record(self) -> InstanceRecord:
        """What this instance leaves behind (after :meth:`finalize`)."""
        return InstanceRecord(index=self.index, name=self.name, pool=self.pool.name,
                              local_index=self.local_index, role=self.role, busy_s=self.busy_s,
                              peak_kv_blocks=self.peak_blocks,
                              kv_blocks_capacity=self.capacity_blocks,
                              **self._record_fields())  # type: ignore[arg-type]

    def _record_fields(self) -> dict[str, object]:
        """Fields of :class:`InstanceRecord` that only some kinds of instance have."""
        return {}

    @abstractmethod
    def finalize(self, stop_at: float) -> None:
        """The run stopped at ``stop_at``: account for the work in progress."""
