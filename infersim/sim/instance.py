"""What every serving instance is, whatever its role: a named member of a pool.

An instance is a group of chips of one pool, running the pool's deployment. It has a global
number (rows of the records and time series), a number within its pool (its name,
``decode.3``), a row in the router's load arrays, and a KV memory of whole blocks sized by the
cost model. The prefill, decode and mixed instances add their own scheduling on top.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy

from infersim.sim.costs import StepCosts
from infersim.sim.router import InstanceLoads
from infersim.sim.spec import PoolSpec

if TYPE_CHECKING:
    from infersim.sim.engine import Engine


class Instance:
    """The identity, the router row and the KV block capacity shared by every instance kind."""

    role = ""

    def __init__(self, env: simpy.Environment, engine: Engine, pool: PoolSpec, costs: StepCosts,
                 index: int, local_index: int, loads: InstanceLoads, slot: int) -> None:
        self.env = env
        self.engine = engine
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
