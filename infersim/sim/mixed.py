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

The instance runs on the continuous-batching core (:mod:`infersim.sim.batching`): at each turn it
retires, preempts and admits like a decode instance, then (:meth:`MixedInstance._run`) starts a
prompt step if any prompt work fits (its end, :meth:`MixedInstance._step_end`, hands finished
prompts to the batch and takes the next turn), else an epoch of pure decode steps, else sleeps
until a prompt arrives.
"""

from __future__ import annotations

from collections import deque

from infersim.sim.batching import BatchingInstance
from infersim.sim.clock import Clock, call_later
from infersim.sim.costs import StepCosts
from infersim.sim.ports import RunContext
from infersim.sim.records import Epoch
from infersim.sim.router import InstanceLoads
from infersim.sim.spec import PoolSpec

# (request, tokens computed this step, tokens computed before, new KV blocks)
Chunk = tuple[int, int, int, int]


class MixedInstance(BatchingInstance):
    """One colocated engine: a prefill line, a running batch, one scheduler step at a time."""

    role = "mixed"

    def __init__(self, env: Clock, ctx: RunContext, pool: PoolSpec, costs: StepCosts,
                 index: int, local_index: int, loads: InstanceLoads, slot: int) -> None:
        self.prefill_queue: deque[int] = deque()
        self._progress: dict[int, int] = {}  # request -> prompt tokens computed so far
        self.prefill_busy_s = 0.0  # busy time attributable to prompt tokens (see _step)
        self._step_in_progress: tuple[float, list[Chunk], float, float | None] | None = None
        super().__init__(env, ctx, pool, costs, index, local_index, loads, slot)
        self.prefix_cache = ctx.new_prefix_cache()

    @property
    def queue_length(self) -> int:
        return len(self.prefill_queue)

    def enqueue(self, rid: int) -> None:
        ctx, kv = self.ctx, self.kv
        self.prefill_queue.append(rid)
        kv.pending += self._pending(rid)
        self._add_load(ctx.prompt[rid] + ctx.output[rid] - 1, 1)
        kv.publish(self.batch.blocks() + kv.prefill)
        if self.batch.n < self.max_seqs:
            self._wake()

    def _pending(self, rid: int) -> int:
        """Blocks promised to ``rid`` while it waits for its first chunk: its prompt's, or under
        full reservation all it will reserve."""
        kv, ctx = self.kv, self.ctx
        if kv.full:
            return kv.reservation(ctx.prompt[rid], ctx.output[rid])
        return kv.blocks(ctx.prompt[rid])

    def _reserve_fits(self, rid: int, planned: int) -> int | None:
        """Full reservation: the blocks ``rid`` would reserve if they fit besides the reserved
        ones and ``planned`` more for this step, else None; 0 once it has its reservation
        (started) or when memory is taken on demand."""
        kv, ctx = self.kv, self.ctx
        if not kv.full or ctx.records.prefill_instance[rid] >= 0:
            return 0
        reserve = kv.reservation(ctx.prompt[rid], ctx.output[rid])
        return reserve if kv.reserved + planned + reserve <= kv.capacity_blocks else None

    def _target(self, rid: int) -> int:
        """Tokens to compute before ``rid`` decodes: its prompt, or all of it after a recompute."""
        resumed = self._resume.get(rid)
        return self.ctx.prompt[rid] if resumed is None else resumed

    def _requeue(self, rid: int) -> None:
        if self.swap:
            self.waiting.appendleft(rid)  # comes back before new prompts
        else:
            # recomputing is a prefill: back to the head of the prefill line
            self.prefill_queue.appendleft(rid)

    # -- after the turn -------------------------------------------------------------------------

    def _run(self, now: float) -> None:
        """Compute prompt work if any fits, else run the decodes' epoch, else sleep."""
        plan = self._plan_chunks() if self.pool.chunked_prefill else self._plan_prompts()
        if plan:
            self._step(now, plan)
        elif self.batch.n:
            self._start_epoch(now, self.kv.prefill)
        elif self.prefill_queue:
            self._restart_youngest_prompt()
            self._turn()
        else:
            self._idle = True

    def _cached(self, rid: int) -> int:
        """Leading prompt tokens a fresh prompt reuses from this instance's prefix cache."""
        hashes = self.ctx.prefix_hashes
        if self.prefix_cache is None or hashes is None or rid in self._resume:
            return 0
        return self.prefix_cache.cached_tokens(hashes[rid], self.ctx.prompt[rid])

    def _plan_chunks(self) -> list[Chunk]:
        """Chunked prefill: prompt chunks that fill the step's budget after the decodes."""
        batch, kv = self.batch, self.kv
        block = kv.block_size
        budget = self.pool.max_batch_tokens - batch.n
        seqs = self.pool.max_batch_size - batch.n
        free = kv.capacity_blocks - batch.blocks() - kv.prefill
        plan: list[Chunk] = []
        reserving = 0
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

    def _plan_prompts(self) -> list[Chunk]:
        """Prefill-first: whole prompts, FCFS, within the token budget and KV memory."""
        batch, kv = self.batch, self.kv
        seqs = self.pool.max_batch_size - batch.n
        free = kv.capacity_blocks - batch.blocks() - kv.prefill
        plan: list[Chunk] = []
        tokens = reserving = 0
        for rid in self.prefill_queue:
            target = self._target(rid)
            cached = self._cached(rid)
            need = kv.blocks(target)
            reserve = self._reserve_fits(rid, reserving)
            if reserve is None or len(plan) >= seqs or need > free or (
                    plan and tokens + target - cached > self.pool.max_batch_tokens):
                break
            plan.append((rid, target - cached, cached, need))
            free -= need
            reserving += reserve
            tokens += target - cached
        return plan

    def _step(self, now: float, plan: list[Chunk]) -> None:
        """Start one engine step computing ``plan``'s prompt chunks (and, if chunked, the
        decodes); :meth:`_step_end` handles its end."""
        batch, kv, records = self.batch, self.kv, self.ctx.records
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
                kv.pending -= self._pending(rid)
                if kv.full:
                    kv.reserved += kv.reservation(self.ctx.prompt[rid], self.ctx.output[rid])
            kv.prefill += extra
            self._progress[rid] = done + chunk
        self.peak_blocks = max(self.peak_blocks, batch.blocks() + kv.prefill)
        self._step_in_progress = (now, plan, span, prefill_part)
        call_later(self.env, span, self._step_end)

    def _step_end(self, _value: object = None) -> None:
        """The step ended: book it, hand finished prompts to the batch, take the next turn."""
        assert self._step_in_progress is not None
        now, plan, span, prefill_part = self._step_in_progress
        self._step_in_progress = None
        batch, ctx, kv = self.batch, self.ctx, self.kv
        records, prompt, output = ctx.records, ctx.prompt, ctx.output
        end = self.env.now
        self.prefill_busy_s += span if prefill_part is None else prefill_part
        if self.pool.chunked_prefill and batch.n:
            # the running decodes' token of this step: a one-step epoch lasting ``span``
            n, k0 = batch.n, batch.kv_tokens()
            self._log_epoch(self._one_step(now, span, k0, n), 1, span)
        else:
            self.busy_s += span  # running sequences (if any) emitted nothing this step
        for rid, _, _, _ in plan:
            target = self._target(rid)
            if self._progress[rid] < target:
                continue
            self.prefill_queue.remove(rid)
            del self._progress[rid]
            kv.prefill -= kv.blocks(target)
            resumed = self._resume.pop(rid, None)
            if resumed is not None:
                batch.join(rid, resumed, output[rid] - (resumed - prompt[rid]))
                continue
            if self.prefix_cache is not None and ctx.prefix_hashes is not None:
                self.prefix_cache.insert(ctx.prefix_hashes[rid])
            records.first_token_at[rid] = end
            if output[rid] == 1:
                self._add_load(-prompt[rid], -1)
                if kv.full:
                    kv.reserved -= kv.reservation(prompt[rid], output[rid])
                ctx.finished(rid, end)
            else:
                self._add_load(-prompt[rid], 0)
                batch.join(rid, prompt[rid] + 1, output[rid] - 1)
                records.decode_start_at[rid] = end
                records.decode_instance[rid] = self.index
        self._turn()

    def _one_step(self, now: float, span: float, k0: int, n: int) -> Epoch:
        """A mixed step as an epoch of one step: a = its time, b = 0."""
        return Epoch(now, self.batch.steps_done, 1, span, 0.0, k0, n)

    def _prefill_fraction(self, chunks: list[int], before: list[int]) -> float:
        """The prompt chunks' share of a mixed step, by the cost model: the time the chunks
        would take as a step of their own, over that plus the running batch's own decode step."""
        prefill = self.costs.step_s(chunks, before, ())
        a, b = self.costs.decode_coefficients(self.batch.n)
        # a pure decode step, exactly (decode_step_coefficients): a + b * sum of the KV lengths
        decode = a + b * self.batch.kv_tokens()
        return prefill / (prefill + decode)

    def _restart_youngest_prompt(self) -> None:
        """Partly computed prompts hold all free memory and none can go on: the youngest one
        gives its blocks back and starts over (vLLM preempts the same way)."""
        for rid in reversed(self.prefill_queue):
            done = self._progress.get(rid, 0)
            if done and rid != self.prefill_queue[0]:
                del self._progress[rid]
                self.kv.prefill -= self.kv.blocks(done)
                self.ctx.records.preemptions[rid] += 1
                return
        raise RuntimeError(f"{self.name}: prefill cannot progress with the memory it has")

    def _record_fields(self) -> dict[str, object]:
        return {**super()._record_fields(), "prefill_busy_s": self.prefill_busy_s}
