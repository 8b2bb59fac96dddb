"""A prefill instance: computes prompts in batches and hands each request on.

Requests wait in a first-come-first-served queue. When the instance is free it takes as many
queued prompts as fit the step's token budget (``max_batch_tokens``, counting the tokens to compute: a prompt's
leading blocks found in the instance's prefix cache are reused, see :mod:`infersim.sim.prefix`)
and sequence limit
(``max_batch_size``) and computes them in one engine step, timed by the cost model; the first
output token of each comes out when the step ends. A prompt longer than the budget is computed
alone, in consecutive budget-sized chunks (each attending to the chunks before it). One SimPy event
per batch: the instance costs the engine almost nothing per request.

The batch's KV (every prompt's, cached prefix included) must fit the instance's KV memory; it is
freed when the step ends, as the KV streams out to the decode side (a prefill instance is not
held up by slow transfers).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import simpy

from infersim.sim.costs import StepCosts
from infersim.sim.router import InstanceLoads
from infersim.sim.spec import PoolSpec

if TYPE_CHECKING:
    from infersim.sim.engine import Engine


class PrefillInstance:
    """One prefill engine: a FCFS queue and one batched step at a time."""

    role = "prefill"

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
        self.capacity_blocks = costs.kv_capacity_tokens // pool.block_size
        self.capacity_tokens = self.capacity_blocks * pool.block_size
        self.queue: deque[int] = deque()
        self.committed_blocks = 0  # KV blocks of the prompts queued or being computed
        self.busy_s = 0.0
        self.running = 0
        self.peak_blocks = 0
        self._idle: simpy.Event | None = None
        self._batch_started_at: float | None = None
        self.sample_due = float("-inf")  # next time this instance may add a time-series row
        self.prefix_cache = engine.new_prefix_cache()
        self.process = env.process(self.prefill())

    @property
    def queue_length(self) -> int:
        return len(self.queue)

    def enqueue(self, rid: int) -> None:
        prompt = self.engine.prompt[rid]
        self.queue.append(rid)
        self.loads.outstanding_tokens[self.slot] += prompt
        self.loads.outstanding_requests[self.slot] += 1
        self.committed_blocks += -(-prompt // self.pool.block_size)
        self.loads.kv_committed_fraction[self.slot] = self.committed_blocks / self.capacity_blocks
        if self._idle is not None:
            idle, self._idle = self._idle, None
            idle.succeed()

    def _sample(self, now: float, batch_size: int, kv_used: int) -> None:
        if now >= self.sample_due:
            self.sample_due = now + self.engine.timeseries.interval_s
            self.engine.sample(self, now, batch_size=batch_size, kv_used=kv_used)

    def _take_batch(self) -> tuple[list[int], list[int]]:
        """FCFS prompts within the step's token budget (counting only the tokens to compute)
        and sequence limit; returns the batch and each prompt's prefix-cache hit in tokens."""
        engine, queue, cache = self.engine, self.queue, self.prefix_cache
        prompt, hashes = engine.prompt, engine.table.prefix_hashes
        budget, limit = self.pool.max_batch_tokens, self.pool.max_batch_size
        block, free = self.pool.block_size, self.capacity_blocks
        batch: list[int] = []
        cached: list[int] = []
        tokens = 0
        while queue and len(batch) < limit:
            rid = queue[0]
            hit = cache.cached_tokens(hashes[rid], prompt[rid]) if cache is not None else 0
            new = prompt[rid] - hit
            need = -(-prompt[rid] // block)
            if batch and (tokens + new > budget or need > free):
                break
            batch.append(queue.popleft())
            cached.append(hit)
            tokens += new
            free -= need
        return batch, cached

    def prefill(self):  # SimPy process
        env, engine, records = self.env, self.engine, self.engine.records
        block, budget = self.pool.block_size, self.pool.max_batch_tokens
        while True:
            if not self.queue:
                self._idle = env.event()
                self._sample(env.now, 0, 0)
                yield self._idle
                continue
            batch, cached = self._take_batch()
            prompts = [engine.prompt[rid] for rid in batch]
            new = [p - c for p, c in zip(prompts, cached, strict=True)]
            if len(batch) == 1 and new[0] > budget:  # one prompt over the budget: chunk it
                span = self.costs.chunked_prefill_s(new[0], budget, cached[0])
            else:
                span = self.costs.batch_prefill_s(new, cached)
            start = env.now
            for rid, hit in zip(batch, cached, strict=True):
                records.prefill_start_at[rid] = start
                records.prefill_instance[rid] = self.index
                if hit:
                    records.cached_prompt_tokens[rid] = hit
            self.running = len(batch)
            blocks = sum(-(-p // block) for p in prompts)
            self.peak_blocks = max(self.peak_blocks, blocks)
            self._sample(start, len(batch), blocks)
            if engine.cluster.layerwise_kv_overlap:
                engine.prefill_started(self, batch, start, start + span)
            self._batch_started_at = start
            yield env.timeout(span)
            self._batch_started_at = None
            self.busy_s += span
            self.running = 0
            self.loads.outstanding_tokens[self.slot] -= sum(prompts)
            self.loads.outstanding_requests[self.slot] -= len(batch)
            self.committed_blocks -= blocks
            self.loads.kv_committed_fraction[self.slot] = (self.committed_blocks
                                                           / self.capacity_blocks)
            if self.prefix_cache is not None:
                for rid in batch:
                    self.prefix_cache.insert(engine.table.prefix_hashes[rid])
            engine.prefilled(self, batch, env.now)

    def finalize(self, stop_at: float) -> None:
        """The run stopped at ``stop_at``: count the unfinished batch's time as busy."""
        if self._batch_started_at is not None:
            self.busy_s += stop_at - self._batch_started_at
