"""A mixed (colocated) instance: prefill and decode share one engine, vLLM style.

The KV cache never leaves the instance. Two schedulers:

- **chunked prefill** (``chunked_prefill: true``, vLLM's default): every step has a token budget
  (``max_batch_tokens``). All running decodes go first, one token each; prompt chunks fill the rest
  of the budget, first come first served, each chunk attending to the chunks of its prompt already
  computed. A prompt's last chunk produces its first output token; from the next step on it
  decodes. While prompts are being computed every step is timed by the cost model as one mixed
  batch; when none are, the instance jumps over pure decode steps exactly like a decode instance.
- **prefill-first** (``chunked_prefill: false``): a step either prefills whole prompts (these take
  priority, up to the budget) or decodes; running sequences emit nothing during a prefill step.

Busy time is split between prefill and decode work (``prefill_busy_s``, for billing input and
output tokens apart): a step that only computes prompts is all prefill, a pure decode step or
epoch all decode, and a chunked step that does both is split in proportion to the time its prompt
chunks and its decodes would each take as a step of their own (the cost model's split of that
step). Swap stalls count as decode work.

KV memory is paged and shared by the running decodes and the prompts in progress. When it runs out
the most recently joined decode is preempted; under ``recompute`` it goes back to the head of the
prefill line and its prompt plus generated tokens are computed again before it resumes (without
emitting a token), under ``swap`` it waits in host memory and comes back first. That is
``kv_reservation: on_demand``; under ``full`` (TensorRT-LLM's ``GUARANTEED_NO_EVICT``) a prompt
starts only when blocks for all of its prompt and output tokens are free besides the other
admitted requests' reservations, which it keeps until it finishes, so memory never runs out and
nothing is preempted.
"""

from __future__ import annotations

from collections import deque

import simpy

from infersim.sim.batch import boundary_at_or_after, epoch_span
from infersim.sim.decode import DecodeInstance


class MixedInstance(DecodeInstance):
    """One colocated engine: a prefill line, a running batch, one scheduler step at a time."""

    role = "mixed"

    def __init__(self, *args, **kwargs) -> None:
        self.prefill_queue: deque[int] = deque()
        self._progress: dict[int, int] = {}  # request -> prompt tokens computed so far
        self.prefill_blocks = 0  # KV blocks held by prompts partly computed
        self.prefill_busy_s = 0.0  # busy time attributable to prompt tokens (see _step)
        super().__init__(*args, **kwargs)
        self.prefix_cache = self.engine.new_prefix_cache()

    @property
    def queue_length(self) -> int:
        return len(self.prefill_queue)

    def _start(self, env: simpy.Environment) -> None:
        # a mixed instance runs as a SimPy process (rarer and more varied turns than decode)
        self._idle = None
        self.process = env.process(self.serve())

    def enqueue(self, rid: int) -> None:
        engine = self.engine
        self.prefill_queue.append(rid)
        self.pending_blocks += self._pending(rid)
        self._add_load(engine.prompt[rid] + engine.output[rid] - 1, 1)
        self.loads.kv_committed_fraction[self.slot] = ((self._committed() + self.pending_blocks)
                                                       / self.capacity_blocks)
        if self.batch.n < min(self.pool.max_batch_size, self.pool.max_batch_tokens):
            self._wake()

    def _blocks_used(self) -> int:
        return self.batch.blocks() + self.prefill_blocks

    def _pending(self, rid: int) -> int:
        """Blocks promised to ``rid`` while it waits for its first chunk: its prompt's, or under
        full reservation all it will reserve."""
        if self.full_reservation:
            return self._reservation(rid)
        return -(-self.engine.prompt[rid] // self.pool.block_size)

    def _committed(self) -> int:
        """KV blocks taken by admitted requests, as the router sees them."""
        return self.reserved_blocks if self.full_reservation else self._blocks_used()

    def _reserve_fits(self, rid: int, planned: int) -> int | None:
        """Full reservation: the blocks ``rid`` would reserve if they fit besides the reserved
        ones and ``planned`` more for this step, else None; 0 once it has its reservation
        (started) or when memory is taken on demand."""
        if not self.full_reservation or self.engine.records.prefill_instance[rid] >= 0:
            return 0
        reserve = self._reservation(rid)
        return reserve if self.reserved_blocks + planned + reserve <= self.capacity_blocks \
            else None

    def _target(self, rid: int) -> int:
        """Tokens to compute before ``rid`` decodes: its prompt, or all of it after a recompute."""
        resumed = self._resume.get(rid)
        return self.engine.prompt[rid] if resumed is None else resumed

    # -- the process --------------------------------------------------------------------------

    def serve(self):  # SimPy process
        env, batch = self.env, self.batch
        cap = self.capacity_blocks
        while True:
            now = env.now
            self._retire(now)
            stall = 0.0
            while batch.n and self._blocks_used() > cap:
                stall += self._preempt(batch.last_joined())
            used = self._blocks_used()
            if self.waiting:  # swapped-out sequences come back before new prompts
                admitted_stall, used = self._admit(now, used)
                stall += admitted_stall
            committed = self.reserved_blocks if self.full_reservation else used
            self.loads.kv_committed_fraction[self.slot] = ((committed + self.pending_blocks)
                                                           / self.capacity_blocks)
            if now >= self.sample_due:
                self.sample_due = now + self.engine.timeseries.interval_s
                self.engine.sample(self, now, batch_size=batch.n, kv_used=used)
            if stall > 0:
                self.busy_s += stall
                yield env.timeout(stall)
                continue
            plan = self._plan_chunks() if self.pool.chunked_prefill else self._plan_prompts()
            if plan:
                yield from self._step(now, plan)
            elif batch.n:
                yield from self._decode_epoch(now, reserved=self.prefill_blocks)
            elif self.prefill_queue:
                self._restart_youngest_prompt()
            else:
                self._idle = env.event()
                yield self._idle

    def _decode_epoch(self, now: float, reserved: int = 0):
        """Run steps of constant membership until the next departure, full memory or wake-up."""
        batch, env = self.batch, self.env
        s0, n = batch.steps_done, batch.n
        steps = batch.steps_that_fit(batch.next_finish_step() - s0, reserved)
        a, b = self.costs.decode_coefficients(n)
        k0 = batch.kv_tokens()
        span = epoch_span(steps, a, b, k0, n)
        self._epoch = (now, s0, steps, a, b, k0, n)
        try:
            yield env.timeout(span)
        except simpy.Interrupt:
            # work arrived mid-epoch: stop at the first step boundary at or after now
            steps = boundary_at_or_after(env.now - now, a, b, k0, n, steps)
            span = epoch_span(steps, a, b, k0, n)
            yield env.timeout(max(0.0, now + span - env.now))
        self._epoch = None
        self._truncating = False
        self._log_epoch(now, s0, steps, a, b, k0, n)

    def _wake(self) -> None:
        """New work: wake the idle process, or cut its epoch short at the next boundary."""
        if self._idle is not None:
            idle, self._idle = self._idle, None
            idle.succeed()
        elif self._epoch is not None and not self._truncating:
            self._truncating = True
            self.process.interrupt()

    def _cached(self, rid: int) -> int:
        """Leading prompt tokens a fresh prompt reuses from this instance's prefix cache."""
        if self.prefix_cache is None or rid in self._resume:
            return 0
        return self.prefix_cache.cached_tokens(self.engine.table.prefix_hashes[rid],
                                               self.engine.prompt[rid])

    def _plan_chunks(self) -> list[tuple[int, int, int, int]]:
        """Chunked prefill: (request, chunk tokens, tokens before the chunk, new KV blocks)."""
        batch, block = self.batch, self.pool.block_size
        budget = self.pool.max_batch_tokens - batch.n
        seqs = self.pool.max_batch_size - batch.n
        free = self.capacity_blocks - self._blocks_used()
        plan, reserving = [], 0
        for rid in self.prefill_queue:
            if budget <= 0 or seqs <= 0:
                break
            reserve = self._reserve_fits(rid, reserving)
            if reserve is None:
                break
            done = self._progress.get(rid)
            if done is None:  # first chunk: the cached prefix comes in with it
                done = self._cached(rid)
                held = 0
            else:
                held = -(-done // block)
            chunk = min(self._target(rid) - done, budget)
            extra = -(-(done + chunk) // block) - held
            if extra > free:
                break
            plan.append((rid, chunk, done, extra))
            free -= extra
            reserving += reserve
            budget -= chunk
            seqs -= 1
        return plan

    def _plan_prompts(self) -> list[tuple[int, int, int, int]]:
        """Prefill-first: whole prompts, FCFS, within the token budget and KV memory."""
        block = self.pool.block_size
        seqs = self.pool.max_batch_size - self.batch.n
        free = self.capacity_blocks - self._blocks_used()
        plan, tokens, reserving = [], 0, 0
        for rid in self.prefill_queue:
            target = self._target(rid)
            cached = self._cached(rid)
            need = -(-target // block)
            reserve = self._reserve_fits(rid, reserving)
            if reserve is None or len(plan) >= seqs or need > free or (
                    plan and tokens + target - cached > self.pool.max_batch_tokens):
                break
            plan.append((rid, target - cached, cached, need))
            free -= need
            reserving += reserve
            tokens += target - cached
        return plan

    def _step(self, now: float, plan: list[tuple[int, int, int, int]]):
        """One engine step computing ``plan``'s prompt chunks (and, if chunked, the decodes)."""
        batch, engine, records, block = self.batch, self.engine, self.engine.records, \
            self.pool.block_size
        chunks = [chunk for _, chunk, _, _ in plan]
        before = [done for _, _, done, _ in plan]
        prefill_part = None  # the step's time attributable to its prompt tokens: all of it
        if self.pool.chunked_prefill:
            span = self.costs.mixed_step_s(chunks, before, batch.n, batch.kv_tokens())
            if batch.n:
                prefill_part = span * self._prefill_fraction(chunks, before)
        elif len(plan) == 1 and chunks[0] > self.pool.max_batch_tokens:
            span = self.costs.chunked_prefill_s(chunks[0], self.pool.max_batch_tokens, before[0])
        else:
            span = self.costs.batch_prefill_s(chunks, before)
        for rid, chunk, done, extra in plan:
            if records.prefill_instance[rid] < 0:  # its first chunk ever
                records.prefill_start_at[rid] = now
                records.prefill_instance[rid] = self.index
                records.cached_prompt_tokens[rid] = done
                self.pending_blocks -= self._pending(rid)
                if self.full_reservation:
                    self.reserved_blocks += self._reservation(rid)
            self.prefill_blocks += extra
            self._progress[rid] = done + chunk
        used = self._blocks_used()
        self.peak_blocks = max(self.peak_blocks, used)
        yield self.env.timeout(span)
        end = self.env.now
        self.prefill_busy_s += span if prefill_part is None else prefill_part
        if self.pool.chunked_prefill and batch.n:
            self._log_epoch(now, batch.steps_done, 1, span, 0.0, batch.kv_tokens(), batch.n)
        else:
            self.busy_s += span  # running sequences (if any) emitted nothing this step
        for rid, _, _, _ in plan:
            target = self._target(rid)
            if self._progress[rid] < target:
                continue
            self.prefill_queue.remove(rid)
            del self._progress[rid]
            self.prefill_blocks -= -(-target // block)
            resumed = self._resume.pop(rid, None)
            if resumed is not None:
                batch.join(rid, resumed, engine.output[rid] - (resumed - engine.prompt[rid]))
                continue
            if self.prefix_cache is not None:
                self.prefix_cache.insert(engine.table.prefix_hashes[rid])
            records.first_token_at[rid] = end
            if engine.output[rid] == 1:
                self._add_load(-engine.prompt[rid], -1)
                if self.full_reservation:
                    self.reserved_blocks -= self._reservation(rid)
                engine.finish(rid, end)
            else:
                self._add_load(-engine.prompt[rid], 0)
                batch.join(rid, engine.prompt[rid] + 1, engine.output[rid] - 1)
                records.decode_start_at[rid] = end
                records.decode_instance[rid] = self.index

    def _prefill_fraction(self, chunks: list[int], before: list[int]) -> float:
        """The prompt chunks' share of a mixed step, by the cost model: the time the chunks
        would take as a step of their own, over that plus the running batch's own decode step."""
        prefill = self.costs.step_s(chunks, before, ())
        a, b = self.costs.decode_coefficients(self.batch.n)
        # a pure decode step, exactly (decode_step_coefficients): a + b * sum of the KV lengths
        decode = a + b * self.batch.kv_tokens()
        return prefill / (prefill + decode)

    def _preempt(self, rid: int) -> float:
        stall = super()._preempt(rid)
        if self.pool.preemption == "recompute":
            # recomputing is a prefill: back to the head of the prefill line
            self.waiting.remove(rid)
            self.prefill_queue.appendleft(rid)
        return stall

    def _restart_youngest_prompt(self) -> None:
        """Partly computed prompts hold all free memory and none can go on: the youngest one
        gives its blocks back and starts over (vLLM preempts the same way)."""
        block = self.pool.block_size
        for rid in reversed(self.prefill_queue):
            done = self._progress.get(rid, 0)
            if done and rid != self.prefill_queue[0]:
                del self._progress[rid]
                self.prefill_blocks -= -(-done // block)
                self.engine.records.preemptions[rid] += 1
                return
        raise RuntimeError(f"{self.name}: prefill cannot progress with the memory it has")
