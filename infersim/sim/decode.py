"""A decode instance: continuous batching over paged KV memory, simulated epoch by epoch.

A decode engine runs one step after another; each step emits one token for every running
sequence, and takes ``a + b * (total KV tokens attended)`` seconds (the cost model's decode
coefficients at that batch size). A request whose KV cache has arrived joins the batch at the
next step boundary if a sequence slot and KV blocks are free; otherwise it waits, first come,
first served. A sequence leaves when its last token is out.

Stepping token by token would cost a Python loop iteration per step. Instead the instance jumps
from one change of membership to the next (an *epoch*): with membership fixed the step times form
an arithmetic sequence whose sum is closed-form (:func:`~infersim.sim.batch.epoch_span`). The
epoch ends at the earliest of: a sequence finishing, KV memory filling up, or a newly arrived
request, which joins at the first step boundary at or after its arrival, found by solving the
quadratic (the epoch's end is then moved forward to that boundary).

The instance is driven by plain callbacks on the SimPy clock (:mod:`infersim.sim.clock`), not by
a generator process: one scheduler turn at every step boundary where membership may change. An
epoch cut short gets its new end straight away (no interrupt event), except when that end is the
arrival's own instant: then an urgent event in that instant stands in for SimPy's interrupt, so
that simultaneous events keep the order a SimPy process would give them.

KV memory is taken one of two ways (``PoolSpec.kv_reservation``). ``on_demand`` (vLLM): a sequence
joins when the blocks of its current KV fit and takes more as it grows; when the running
sequences outgrow KV memory the most recently joined is preempted (vLLM's
policy) and goes back to the head of the waiting line. Under ``recompute`` its KV is dropped and
has to be prefilled again (prompt plus generated tokens) on this instance before it resumes; under
``swap`` its KV is copied to host memory and back, at the host link's bandwidth. Either way the
instance stalls for that time: no token comes out of any sequence meanwhile. ``full``
(TensorRT-LLM's default ``GUARANTEED_NO_EVICT`` scheduler): a request joins only when blocks for
its prompt plus all its output tokens are free besides those reserved by the running sequences,
and keeps them until it leaves; its KV never outgrows them, so nothing is ever preempted, at the
price of fewer sequences in the batch while their reservations are still mostly empty. The
router's view of committed memory (``kv_aware``) is then the reservations.
"""

from __future__ import annotations

from collections import deque
from heapq import heappush
from typing import TYPE_CHECKING

import simpy

from infersim.sim.batch import (
    DecodeBatch,
    boundary_at_or_after,
    epoch_span,
    steps_completed_by,
)
from infersim.sim.clock import NORMAL, URGENT, call_later
from infersim.sim.costs import StepCosts
from infersim.sim.instance import Instance
from infersim.sim.records import EpochLog
from infersim.sim.router import InstanceLoads
from infersim.sim.spec import PoolSpec

if TYPE_CHECKING:
    from infersim.sim.engine import Engine


class DecodeInstance(Instance):
    """One decode engine: a waiting line and a continuously batched running set."""

    role = "decode"

    def __init__(self, env: simpy.Environment, engine: Engine, pool: PoolSpec, costs: StepCosts,
                 index: int, local_index: int, loads: InstanceLoads, slot: int) -> None:
        super().__init__(env, engine, pool, costs, index, local_index, loads, slot)
        self.batch = DecodeBatch(pool.block_size, self.capacity_blocks)
        self.max_seqs = min(pool.max_batch_size, pool.max_batch_tokens)
        self.host_bandwidth = pool.host_bandwidth * pool.deployment.chips
        self.waiting: deque[int] = deque()
        self.epochs = EpochLog()
        self._epoch_rows = self.epochs.rows  # appended to directly on the hot path
        self._decode_coefficients = costs.decode_cache  # batch size -> (a, b), filled by costs
        self.pending_blocks = 0  # promised to requests routed here that have not joined yet
        self.full_reservation = pool.kv_reservation == "full"
        self.reserved_blocks = 0  # full reservation: blocks reserved by the running sequences
        self.used_blocks = 0  # held at the last step boundary
        self._resume: dict[int, int] = {}  # preempted request -> KV length to resume with
        self._idle = False  # nothing to run: the next work wakes the instance
        self._epoch: tuple[float, int, int, float, float, int, int] | None = None
        self._epoch_steps = 0  # steps the epoch in progress will run (less once cut short)
        self._epoch_span = 0.0  # and their duration
        self._timer = 0  # token of the call that ends the epoch in progress
        self._truncating = False
        self._queue, self._eid = env._queue, env._eid  # the clock's queue, for call_later inline
        self._start(env)

    @property
    def queue_length(self) -> int:
        return len(self.waiting)

    # -- called by the engine -----------------------------------------------------------------

    def assign(self, rid: int) -> None:
        """A request has been routed here; its KV is on its way."""
        engine, loads, slot = self.engine, self.loads, self.slot
        if self.full_reservation:
            self.pending_blocks += self._reservation(rid)
            committed = self.reserved_blocks
        else:
            self.pending_blocks += -(-(engine.prompt[rid] + 1) // self.block_size)
            committed = self.used_blocks
        self._add_load(engine.output[rid] - 1, 1)
        loads.kv_committed_fraction[slot] = ((committed + self.pending_blocks)
                                             / self.capacity_blocks)

    def _reservation(self, rid: int) -> int:
        """Blocks a fully reserving instance sets aside for ``rid``: its prompt and all its output
        tokens (the most its KV ever holds is one token less: the last token is never fed back)."""
        engine = self.engine
        return -(-(engine.prompt[rid] + engine.output[rid]) // self.block_size)

    def _add_load(self, tokens: int, requests: int) -> None:
        """Outstanding work changed: keep the count here, publish it to the router."""
        self.load_tokens += tokens
        self.load_requests += requests
        self.loads.outstanding_tokens[self.slot] = self.load_tokens
        self.loads.outstanding_requests[self.slot] = self.load_requests

    def deliver(self, rid: int) -> None:
        """The request's KV has arrived: it may join at the next step boundary."""
        self.waiting.append(rid)
        # behind others that wait (FCFS), or with no free slot, it cannot join sooner anyway
        if len(self.waiting) == 1 and self.batch.n < self.max_seqs:
            self._wake()

    # -- the process --------------------------------------------------------------------------

    def _start(self, env: simpy.Environment) -> None:
        # the first scheduler turn, where SimPy would start a process
        call_later(env, 0.0, self._turn, priority=URGENT)

    def _turn(self, _value=None) -> None:
        """A scheduler turn at a step boundary: retire, preempt, admit, then run or sleep.

        This runs about twice per request, so the common path is written out inline (the
        helpers it stands for are named in comments).
        """
        env, batch = self.env, self.batch
        now = env._now
        heap = batch._heap
        if heap and heap[0][0] <= batch.steps_done:  # batch.finishing_now()
            self._retire(now)
        stall = 0.0
        used = batch.blocks()
        cap = self.capacity_blocks
        while used > cap:
            stall += self._preempt(batch.last_joined())
            used = batch.blocks()
        if self.waiting:
            admitted_stall, used = self._admit(now, used)
            stall += admitted_stall
        self.used_blocks = used
        self.loads.kv_committed_fraction[self.slot] = (
            (self.reserved_blocks if self.full_reservation else used) + self.pending_blocks) / cap
        n = batch.n
        if now >= self.sample_due:
            engine = self.engine
            self.sample_due = now + engine.timeseries.interval_s
            engine.sample(self, now, batch_size=n, kv_used=used)
        if stall > 0:
            self.busy_s += stall
            call_later(env, stall, self._turn)
        elif n == 0:
            self._idle = True
        else:  # self._start_epoch(now)
            s0 = batch.steps_done
            steps = batch.steps_that_fit(batch.next_finish_step() - s0)
            coef = self._decode_coefficients.get(n)
            a, b = coef if coef is not None else self.costs.decode_coefficients(n)
            k0 = batch.base_sum + n * s0
            self._epoch = (now, s0, steps, a, b, k0, n)
            self._epoch_steps = steps
            # epoch_span(steps, a, b, k0, n), written out
            self._epoch_span = span = steps * a + b * (steps * k0 + n * steps * (steps - 1) / 2.0)
            self._timer = timer = self._timer + 1
            # call_later(env, span, self._epoch_end, timer), written out
            heappush(self._queue, (now + span, NORMAL, next(self._eid), self._epoch_end, timer))

    def _retire(self, now: float) -> None:
        """Sequences whose last token came out at this boundary leave the batch."""
        batch, engine = self.batch, self.engine
        runs, output, index, done = engine.runs.rows, engine.output, self.index, batch.steps_done
        full = self.full_reservation
        for rid, join_step in batch.pop_finished():
            if done > join_step:  # engine.runs.append(rid, index, join_step, done - join_step)
                runs.extend((rid, index, join_step, done - join_step))
            self._add_load(1 - output[rid], -1)  # self._leave_loads(rid)
            if full:
                self.reserved_blocks -= self._reservation(rid)
            engine.finish(rid, now)

    def _start_epoch(self, now: float) -> None:
        """Run steps of constant membership until the next departure or full memory."""
        batch = self.batch
        s0, n = batch.steps_done, batch.n
        steps = batch.steps_that_fit(batch.next_finish_step() - s0)
        a, b = self.costs.decode_coefficients(n)
        k0 = batch.base_sum + n * s0
        self._epoch = (now, s0, steps, a, b, k0, n)
        self._epoch_steps = steps
        self._epoch_span = span = epoch_span(steps, a, b, k0, n)
        self._timer += 1
        call_later(self.env, span, self._epoch_end, self._timer)

    def _cut_epoch(self, urgent: bool) -> None:
        """Work arrived mid-epoch: end it at the first step boundary at or after now.

        Called straight from :meth:`_wake` (``urgent`` false) when that boundary lies ahead;
        when it is now, from an urgent event in this instant, as SimPy delivers an interrupt,
        so that the turn lines up behind the same-instant events SimPy would put first.
        """
        start, _, steps, a, b, k0, n = self._epoch
        now = self.env._now
        steps = boundary_at_or_after(now - start, a, b, k0, n, steps)
        span = epoch_span(steps, a, b, k0, n)
        delay = max(0.0, start + span - now)
        if delay == 0.0 and not urgent:
            call_later(self.env, 0.0, self._cut_epoch, True, priority=URGENT)
            return
        self._epoch_steps = steps
        self._epoch_span = span
        self._timer += 1
        call_later(self.env, delay, self._epoch_end, self._timer)

    def _epoch_end(self, token: int) -> None:
        if token != self._timer:
            return  # the epoch was cut short: a later call ends it
        start, s0, _, a, b, k0, n = self._epoch
        self._epoch = None
        self._truncating = False
        steps = self._epoch_steps
        if steps > 0:  # self._log_epoch(start, s0, steps, a, b, k0, n, self._epoch_span)
            self._epoch_rows.extend((start, s0, steps, a, b, k0, n))
            self.busy_s += self._epoch_span
            block = self.block_size
            if (k0 + n * (steps - 1 + block - 1)) // block > self.peak_blocks:
                self.peak_blocks = max(self.peak_blocks, self.batch.blocks(s0 + steps - 1))
            self.batch.steps_done += steps
        self._turn()

    def _wake(self) -> None:
        """New work: wake the idle instance, or cut its epoch short at the next boundary."""
        if self._idle:  # resume in this instant's turn, as a triggered SimPy event would
            self._idle = False
            call_later(self.env, 0.0, self._turn)
        elif self._epoch is not None and not self._truncating:
            self._truncating = True
            self._cut_epoch(False)

    def _log_epoch(self, start: float, s0: int, steps: int, a: float, b: float, k0: int,
                   n: int, span: float | None = None) -> None:
        """Book ``steps`` steps of an epoch (``span``: their duration, when already known)."""
        if steps <= 0:
            return
        self.epochs.append(start, s0, steps, a, b, k0, n)
        self.busy_s += epoch_span(steps, a, b, k0, n) if span is None else span
        # blocks only grow within an epoch: its last step holds the most
        block = self.block_size
        if (k0 + n * (steps - 1 + block - 1)) // block > self.peak_blocks:  # cheap bound first
            self.peak_blocks = max(self.peak_blocks, self.batch.blocks(s0 + steps - 1))
        self.batch.steps_done += steps

    def _blocks_used(self) -> int:
        return self.batch.blocks()

    def _leave_loads(self, rid: int) -> None:
        self._add_load(1 - self.engine.output[rid], -1)

    def _preempt(self, rid: int) -> float:
        """Evict ``rid`` to the head of the waiting line; returns the stall it causes."""
        batch, engine = self.batch, self.engine
        join_step = batch.join_step(rid)
        engine.runs.append(rid, self.index, join_step, batch.steps_done - join_step)
        kv_len = batch.kv_len(rid)
        batch.leave(rid)
        self._resume[rid] = kv_len
        self.waiting.appendleft(rid)
        engine.records.preemptions[rid] += 1
        if self.pool.preemption == "swap":
            return self.costs.kv_bytes(kv_len - 1) / self.host_bandwidth  # swap out
        return 0.0

    def _admit(self, now: float, used: int) -> tuple[float, int]:
        """Join waiting requests FCFS while slots and KV blocks last, ``used`` blocks being in
        use; returns the stall this causes and the blocks in use afterwards."""
        batch, engine, waiting = self.batch, self.engine, self.waiting
        block, cap = self.pool.block_size, self.capacity_blocks
        full = self.full_reservation
        stall = 0.0
        while waiting and batch.n < self.max_seqs:
            rid = waiting[0]
            resumed = self._resume.get(rid)
            kv_len = engine.prompt[rid] + 1 if resumed is None else resumed
            need = -(-kv_len // block)
            if full:
                # whole-request reservation: what its KV will grow to must fit besides the
                # reservations of the running sequences (which bound their blocks, so the
                # blocks in use fit too); it is never preempted, so never resumed
                reserve = self._reservation(rid)
                if self.reserved_blocks + reserve > cap:
                    break
                self.reserved_blocks += reserve
            elif used + need > cap:
                break
            used += need
            waiting.popleft()
            generated = kv_len - engine.prompt[rid]
            batch.join(rid, kv_len, engine.output[rid] - generated)
            if resumed is None:
                engine.records.decode_start_at[rid] = now
                engine.records.decode_instance[rid] = self.index
                self.pending_blocks -= reserve if full else need
            else:
                del self._resume[rid]
                if self.pool.preemption == "swap":
                    stall += self.costs.kv_bytes(kv_len - 1) / self.host_bandwidth  # swap in
                else:
                    stall += self.costs.prefill_s([kv_len])  # recompute prompt + generated
        return stall, used

    def finalize(self, stop_at: float) -> None:
        """The run stopped at ``stop_at``: log the steps completed so far and the open runs."""
        if self._epoch is not None:
            start, s0, steps, a, b, k0, n = self._epoch
            done = steps_completed_by(stop_at - start, a, b, k0, n, steps)
            self._epoch = None
            self._log_epoch(start, s0, done, a, b, k0, n)
        batch = self.batch
        for rid in list(batch.members):
            join_step = batch.join_step(rid)
            self.engine.runs.append(rid, self.index, join_step, batch.steps_done - join_step)
