"""A prefill instance: computes prompts in batches and hands each request on.

Requests wait in a first-come-first-served queue. When the instance is free it takes as many
queued prompts as fit the step's token budget (``max_batch_tokens``, counting the tokens to compute: a prompt's
leading blocks found in the instance's prefix cache are reused, see :mod:`infersim.sim.prefix`)
and sequence limit
(``max_batch_size``) and computes them in one engine step, timed by the cost model; the first
output token of each comes out when the step ends. A prompt longer than the budget is computed
alone, in consecutive budget-sized chunks (each attending to the chunks before it). One SimPy event
per batch: the instance costs the engine almost nothing per request.

The batch's KV (every prompt's, cached prefix included) must fit the instance's KV memory
besides the KV it still holds for requests already prefilled: a prefilled request's KV stays
here until a decode instance admits the request (its KV moved over and a batch slot free there;
:meth:`PrefillInstance.release`). When held KV fills the memory the instance stops taking
prompts: a saturated decode pool back-pressures prefill. Requests with one output token (done at
prefill) free their KV when the step ends.
"""

from __future__ import annotations

from collections import deque

from infersim.sim.clock import NORMAL, URGENT, Clock, call_later, heappush
from infersim.sim.costs import StepCosts
from infersim.sim.instance import Instance
from infersim.sim.ports import RunContext
from infersim.sim.router import InstanceLoads
from infersim.sim.spec import PoolSpec


class PrefillInstance(Instance):
    """One prefill engine: a FCFS queue and one batched step at a time."""

    role = "prefill"

    def __init__(self, env: Clock, ctx: RunContext, pool: PoolSpec, costs: StepCosts,
                 index: int, local_index: int, loads: InstanceLoads, slot: int) -> None:
        super().__init__(env, ctx, pool, costs, index, local_index, loads, slot)
        self.queue: deque[int] = deque()
        self._prefill_cache = costs.prefill_cache  # prompt length -> step time, one-prompt steps
        self.committed_blocks = 0  # KV blocks of the prompts queued or being computed
        self.held_blocks = 0  # KV blocks of prefilled requests no decode instance admitted yet
        self.running = 0
        self._idle = False  # waiting for work (no batch in progress, nothing queued)
        self._batch: tuple[list[int], int, int, float] | None = None  # in progress
        self._batch_started_at: float | None = None
        self.prefix_cache = ctx.new_prefix_cache()
        # the first look at the queue, where SimPy would start a process
        call_later(env, 0.0, self._wake, priority=URGENT)

    @property
    def queue_length(self) -> int:
        return len(self.queue)

    def _publish_kv(self) -> None:
        self.loads.kv_committed_fraction[self.slot] = ((self.committed_blocks + self.held_blocks)
                                                       / self.capacity_blocks)

    def enqueue(self, rid: int) -> None:
        prompt = self.ctx.prompt[rid]
        self.queue.append(rid)
        loads, slot = self.loads, self.slot
        # self._add_load(prompt, 1), written out: once per request
        self.load_tokens += prompt
        self.load_requests += 1
        loads.outstanding_tokens[slot] = self.load_tokens
        loads.outstanding_requests[slot] = self.load_requests
        self.committed_blocks += -(-prompt // self.block_size)
        # self._publish_kv(), written out: once per request
        loads.kv_committed_fraction[slot] = ((self.committed_blocks + self.held_blocks)
                                             / self.capacity_blocks)
        if self._idle:  # resume in this instant's turn, as a triggered SimPy event would
            self._idle = False
            call_later(self.env, 0.0, self._wake)

    def _take_batch(self) -> tuple[list[int], list[int]]:
        """FCFS prompts within the step's token budget (counting only the tokens to compute)
        and sequence limit; returns the batch and each prompt's prefix-cache hit in tokens."""
        queue, cache = self.queue, self.prefix_cache
        prompt, hashes = self.ctx.prompt, self.ctx.prefix_hashes
        budget, limit = self.pool.max_batch_tokens, self.pool.max_batch_size
        block, free = self.pool.block_size, self.capacity_blocks - self.held_blocks
        batch: list[int] = []
        tokens = 0
        if cache is None or hashes is None:  # the common case, written out: every prompt computed in full
            while queue and len(batch) < limit:
                p = prompt[queue[0]]
                need = -(-p // block)
                if (batch and tokens + p > budget) or need > free:
                    break
                batch.append(queue.popleft())
                tokens += p
                free -= need
            return batch, [0] * len(batch)
        cached: list[int] = []
        while queue and len(batch) < limit:
            rid = queue[0]
            hit = cache.cached_tokens(hashes[rid], prompt[rid])
            new = prompt[rid] - hit
            need = -(-prompt[rid] // block)
            if (batch and tokens + new > budget) or need > free:
                break
            batch.append(queue.popleft())
            cached.append(hit)
            tokens += new
            free -= need
        return batch, cached

    def _wake(self, _value=None) -> None:
        """Start of the run, or work arrived at an idle instance: start the next batch."""
        self._next_batch(self.env.now)

    def _next_batch(self, now: float) -> None:
        """Take the next batch off the queue and compute it (one engine step), or go idle."""
        if not self.queue:
            self._idle = True
            if now >= self.sample_due:
                self._sample(now, 0, 0)
            return
        ctx, records = self.ctx, self.ctx.records
        batch, cached = self._take_batch()
        if not batch:  # held KV leaves no room for the next prompt: wait for a release
            self._idle = True
            if now >= self.sample_due:
                self._sample(now, 0, self.held_blocks)
            return
        prompt = ctx.prompt
        prompts = [prompt[rid] for rid in batch]
        budget = self.pool.max_batch_tokens
        if len(batch) == 1 and prompts[0] - cached[0] > budget:  # over the budget: chunk it
            span = self.costs.chunked_prefill_s(prompts[0] - cached[0], budget, cached[0])
        elif len(batch) == 1 and not cached[0]:  # one whole prompt: its memoised time first
            known = self._prefill_cache.get(prompts[0])
            span = self.costs.prefill_s(prompts) if known is None else known
        else:
            span = self.costs.batch_prefill_s([p - c for p, c in zip(prompts, cached,
                                                                     strict=True)], cached)
        start_at, instance = records.prefill_start_at, records.prefill_instance
        for rid in batch:
            start_at[rid] = now
            instance[rid] = self.index
        if self.prefix_cache is not None:
            for rid, hit in zip(batch, cached, strict=True):
                if hit:
                    records.cached_prompt_tokens[rid] = hit
        self.running = len(batch)
        block = self.block_size
        blocks = sum([-(-p // block) for p in prompts])
        if blocks + self.held_blocks > self.peak_blocks:
            self.peak_blocks = blocks + self.held_blocks
        if now >= self.sample_due:
            self._sample(now, len(batch), blocks + self.held_blocks)
        if ctx.prefill_started is not None:  # layer-wise KV overlap
            ctx.prefill_started(self, batch, now, now + span)
        self._batch_started_at = now
        self._batch = (batch, sum(prompts), blocks, span)
        # call_later(env, span, self._batch_done), written out: about once per request
        env = self.env
        heappush(env.queue, (now + span, NORMAL, next(env.sequence), self._batch_done, None))

    def _batch_done(self, _value: object) -> None:
        """The step ended: every prompt of the batch has its first token."""
        assert self._batch is not None
        batch, tokens, blocks, span = self._batch
        self._batch = None
        self._batch_started_at = None
        self.busy_s += span
        self.running = 0
        loads, slot = self.loads, self.slot
        # self._add_load(-tokens, -len(batch)), written out: about once per request
        self.load_tokens -= tokens
        self.load_requests -= len(batch)
        loads.outstanding_tokens[slot] = self.load_tokens
        loads.outstanding_requests[slot] = self.load_requests
        self.committed_blocks -= blocks
        prompt, output, block = self.ctx.prompt, self.ctx.output, self.block_size
        # what goes on to a decode instance stays here until one admits it
        self.held_blocks += sum([-(-prompt[rid] // block) for rid in batch if output[rid] > 1])
        self._publish_kv()
        hashes = self.ctx.prefix_hashes
        if self.prefix_cache is not None and hashes is not None:
            for rid in batch:
                self.prefix_cache.insert(hashes[rid])
        now = self.env.now
        self.ctx.prefilled(self, batch, now)
        self._next_batch(now)

    def release(self, rid: int) -> None:
        """A decode instance admitted ``rid``: its KV held here is freed."""
        self.held_blocks -= -(-self.ctx.prompt[rid] // self.block_size)
        # self._publish_kv(), written out: once per request
        self.loads.kv_committed_fraction[self.slot] = ((self.committed_blocks + self.held_blocks)
                                                       / self.capacity_blocks)
        if self._idle and self.queue:  # blocked on memory: try again in this instant's turn
            self._idle = False
            call_later(self.env, 0.0, self._wake)

    def finalize(self, stop_at: float) -> None:
        """The run stopped at ``stop_at``: count the unfinished batch's time as busy."""
        if self._batch_started_at is not None:
            self.busy_s += stop_at - self._batch_started_at
