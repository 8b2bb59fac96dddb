"""Continuous batching, shared by decode and mixed instances: retire → preempt → admit, then run.

An engine that batches continuously runs one step after another; each step emits one token for
every running sequence and takes ``a + b * (total KV tokens attended)`` seconds (the cost model's
decode coefficients at that batch size). At every step boundary where membership may change the
scheduler takes one *turn*:

1. **retire**: sequences whose last token came out leave the batch;
2. **preempt**: on-demand KV (vLLM) only: while the next step's blocks exceed memory, the most
   recently joined sequence is evicted (vLLM's policy); under ``recompute`` its KV is dropped and
   computed again (prompt plus generated tokens) before it resumes, under ``swap`` it is copied
   to host memory and back at the host link's bandwidth;
3. **admit**: waiting sequences join first come, first served, while a slot is free and their KV
   fits (:class:`~infersim.sim.kv.KVLedger`: on demand, the blocks of their current KV; in full,
   their whole reservation);
4. then a stall (swap, recompute: the whole instance stops, no token comes out), a step of the
   instance's own (a mixed instance's prompt chunks), an *epoch*, or sleep until work arrives.

Stepping token by token would cost a Python loop iteration per step. Instead the instance jumps
from one change of membership to the next: with membership fixed the step times form an
arithmetic sequence whose sum is closed-form (:func:`~infersim.sim.batch.epoch_span`). An
:class:`~infersim.sim.records.Epoch` ends at the earliest of: a sequence finishing, KV memory
filling up, or new work, which joins at the first step boundary at or after its arrival, found by
solving the quadratic (the epoch's end is then moved forward to that boundary).

The driver: instances are plain callbacks on the SimPy clock (:mod:`infersim.sim.clock`), not
generator processes, for speed (a turn runs about twice per request; a generator resumption and an
event object per turn cost more than the turn itself). The handlers are named after the events
they handle: :meth:`_turn` (a step boundary), :meth:`_epoch_end`, :meth:`_wake` (new work). An
epoch cut short gets its new end straight away (no interrupt event), except when that end is the
wake's own instant: then an urgent call in that instant stands in for SimPy's interrupt, so that
simultaneous events keep the order a SimPy process would give them. A bare call cannot be
cancelled: the epoch's end carries a token, and a call with a stale token is ignored.
"""

from __future__ import annotations

from collections import deque
from heapq import heappop

from infersim.sim.batch import DecodeBatch, boundary_at_or_after, epoch_span, steps_completed_by
from infersim.sim.clock import NORMAL, URGENT, Clock, call_later, heappush
from infersim.sim.costs import StepCosts
from infersim.sim.instance import Instance
from infersim.sim.kv import KVLedger
from infersim.sim.ports import RunContext
from infersim.sim.records import Epoch, EpochLog
from infersim.sim.router import InstanceLoads
from infersim.sim.spec import PoolSpec

_new_tuple = tuple.__new__


class BatchingInstance(Instance):
    """A continuously batched running set over paged KV memory, driven turn by turn."""

    def __init__(self, env: Clock, ctx: RunContext, pool: PoolSpec, costs: StepCosts,
                 index: int, local_index: int, loads: InstanceLoads, slot: int) -> None:
        super().__init__(env, ctx, pool, costs, index, local_index, loads, slot)
        self.batch = DecodeBatch(pool.block_size, self.capacity_blocks)
        self.kv = KVLedger(self.capacity_blocks, pool.block_size,
                           full=pool.kv_reservation == "full",
                           fractions=loads.kv_committed_fraction, slot=slot)
        # max_batch_size holds per micro-batch: a pipelined instance keeps one in flight per
        # stage (vLLM runs a scheduler per stage), bounded by KV as always
        self.max_seqs = min(pool.max_batch_size, pool.max_batch_tokens) * pool.deployment.pp
        self.host_bandwidth = pool.host_bandwidth * pool.deployment.chips
        self.swap = pool.preemption == "swap"
        self.waiting: deque[int] = deque()  # admitted next, FCFS
        self.epochs = EpochLog()
        self._epoch_rows = self.epochs.rows  # appended to directly once per epoch
        self._decode_coefficients = costs.decode_cache  # batch size -> (a, b), filled by costs
        self._resume: dict[int, int] = {}  # preempted request -> KV length to resume with
        self._idle = False  # nothing to run: the next work wakes the instance
        self._epoch: Epoch | None = None  # the epoch in progress
        self._epoch_steps = 0  # steps it will run (fewer once cut short)
        self._epoch_span = 0.0  # and their duration
        self._timer = 0  # token of the call that ends the epoch in progress
        self._truncating = False  # its end has been moved to the next boundary already
        # the first turn, where SimPy would start a process
        call_later(env, 0.0, self._turn, priority=URGENT)

    # -- the turn -------------------------------------------------------------------------------

    def _turn(self, _value: object = None) -> None:
        """A step boundary: retire, preempt, admit, then stall, run or sleep."""
        now = self.env.now
        batch, kv = self.batch, self.kv
        finishes = batch.finishes
        done = batch.steps_done
        if finishes and finishes[0][0] <= done:  # a sequence's last token came out
            self._retire(now)
        stall = 0.0
        cap = kv.capacity_blocks
        # used = batch.blocks() + kv.prefill, written out: once per turn
        block = batch.block_size
        k, t = divmod(done + block - 1, block)
        used = batch._q_sum + batch.n * k + kv.prefill
        if t:
            used += sum(batch._residues[block - t:])
        while used > cap and batch.n:
            stall += self._preempt(batch.last_joined())
            used = batch.blocks() + kv.prefill
        if self.waiting:
            admitted_stall, used = self._admit(now, used)
            stall += admitted_stall
        kv.used = used
        # kv.publish(used), written out: once per turn
        kv.fractions[kv.slot] = ((kv.reserved if kv.full else used) + kv.pending) / cap
        if now >= self.sample_due:
            self._sample(now, batch.n, used)
        if stall > 0:
            self.busy_s += stall
            call_later(self.env, stall, self._turn)
        else:
            self._run(now)

    def _run(self, now: float) -> None:
        """After the turn: run an epoch, or sleep (instances with more to do override this)."""
        if self.batch.n:
            self._start_epoch(now, 0)
        else:
            self._idle = True

    def _retire(self, now: float) -> None:
        """Sequences whose last token came out at this boundary leave the batch."""
        batch, ctx, kv = self.batch, self.ctx, self.kv
        runs, output, prompt, index, done = (ctx.runs.rows, ctx.output, ctx.prompt, self.index,
                                             batch.steps_done)
        finished = ctx.finished
        # batch.pop_finished(), written out: once per request
        heap, members, residues = batch.finishes, batch.members, batch._residues
        block = batch.block_size
        gone = []
        while heap and heap[0][0] <= done:
            step, rid = heappop(heap)
            member = members.get(rid)
            if member is None or member[1] != step:
                continue  # left early (preempted): a stale entry
            base, _, join_step = members.pop(rid)
            q, r = divmod(base, block)
            batch.n -= 1
            batch.base_sum -= base
            batch._q_sum -= q
            residues[r] -= 1
            gone.append((rid, join_step))
        loads, slot = self.loads, self.slot
        for rid, join_step in gone:
            if done > join_step:  # ctx.runs.append(rid, index, join_step, done - join_step)
                runs.extend((rid, index, join_step, done - join_step))
            # self._add_load(1 - output[rid], -1), written out: once per request
            self.load_tokens += 1 - output[rid]
            self.load_requests -= 1
            loads.outstanding_tokens[slot] = self.load_tokens
            loads.outstanding_requests[slot] = self.load_requests
            if kv.full:
                kv.reserved -= kv.reservation(prompt[rid], output[rid])
            finished(rid, now)

    def _preempt(self, rid: int) -> float:
        """Evict ``rid`` (its KV dropped or swapped out); returns the stall it causes."""
        batch, ctx = self.batch, self.ctx
        join_step = batch.join_step(rid)
        ctx.runs.append(rid, self.index, join_step, batch.steps_done - join_step)
        kv_len = batch.kv_len(rid)
        batch.leave(rid)
        self._resume[rid] = kv_len
        self._requeue(rid)
        ctx.records.preemptions[rid] += 1
        if self.swap:
            return self.costs.kv_bytes(kv_len - 1) / self.host_bandwidth  # swap out
        return 0.0

    def _requeue(self, rid: int) -> None:
        """Where a preempted sequence waits: the head of the waiting line."""
        self.waiting.appendleft(rid)

    def _admit(self, now: float, used: int) -> tuple[float, int]:
        """Join waiting requests FCFS while slots and KV blocks last, ``used`` blocks being in
        use; returns the stall this causes and the blocks in use afterwards."""
        batch, ctx, kv, waiting = self.batch, self.ctx, self.kv, self.waiting
        prompt, output, records = ctx.prompt, ctx.output, ctx.records
        block, cap, full = kv.block_size, kv.capacity_blocks, kv.full
        stall = 0.0
        reserve = 0
        while waiting and batch.n < self.max_seqs:
            rid = waiting[0]
            resumed = self._resume.get(rid)
            kv_len = prompt[rid] + 1 if resumed is None else resumed
            need = -(-kv_len // block)
            if full:
                # whole-request reservation: what its KV will grow to must fit besides the
                # reservations of the running sequences (which bound their blocks, so the
                # blocks in use fit too); it is never preempted, so never resumed
                reserve = kv.reservation(prompt[rid], output[rid])
                if kv.reserved + reserve > cap:
                    break
                kv.reserved += reserve
            elif used + need > cap:
                break
            used += need
            waiting.popleft()
            batch.join(rid, kv_len, output[rid] - (kv_len - prompt[rid]))
            if resumed is None:
                records.decode_start_at[rid] = now
                records.decode_instance[rid] = self.index
                kv.pending -= reserve if full else need
                self._admitted(rid, now)
            else:
                del self._resume[rid]
                if self.swap:
                    stall += self.costs.kv_bytes(kv_len - 1) / self.host_bandwidth  # swap in
                else:
                    stall += self.costs.prefill_s([kv_len])  # recompute prompt + generated
        return stall, used

    def _admitted(self, rid: int, now: float) -> None:
        """``rid`` joined the batch for the first time (decode instances report it)."""

    # -- epochs ---------------------------------------------------------------------------------

    def _start_epoch(self, now: float, reserved: int) -> None:
        """Run steps of constant membership until the next departure or full memory
        (``reserved`` blocks being held by something else: prompts partly computed)."""
        batch = self.batch
        s0, n = batch.steps_done, batch.n
        # batch.next_finish_step(), its usual case written out: the heap's head is current
        finish, rid = batch.finishes[0]
        member = batch.members.get(rid)
        if member is None or member[1] != finish:
            finish = batch.next_finish_step()
        limit = finish - s0
        # batch.steps_that_fit(limit, reserved), its usual case written out: each sequence
        # wastes less than a block, so this bound settles it
        block = batch.block_size
        if limit > 0 and ((batch.base_sum + n * (s0 + limit - 1 + block - 1)) // block
                          <= batch.capacity_blocks - reserved):
            steps = limit
        else:
            steps = batch.steps_that_fit(limit, reserved)
        coef = self._decode_coefficients.get(n)
        a, b = coef if coef is not None else self.costs.decode_coefficients(n)
        k0 = batch.base_sum + n * s0  # batch.kv_tokens()
        # Epoch(...) minus NamedTuple's Python-level __new__ (half a microsecond, per epoch)
        self._epoch = _new_tuple(Epoch, (now, s0, steps, a, b, k0, n))
        self._epoch_steps = steps
        # epoch_span(steps, a, b, k0, n), written out: once per epoch
        self._epoch_span = span = steps * a + b * (steps * k0 + n * steps * (steps - 1) / 2.0)
        self._timer = timer = self._timer + 1
        # call_later(env, span, self._epoch_end, timer), written out: once per epoch
        env = self.env
        heappush(env.queue, (now + span, NORMAL, next(env.sequence), self._epoch_end, timer))

    def _wake(self) -> None:
        """New work: wake the idle instance, or cut its epoch short at the next boundary."""
        if self._idle:  # resume in this instant's turn, as a triggered SimPy event would
            self._idle = False
            call_later(self.env, 0.0, self._turn)
        elif self._epoch is not None and not self._truncating:
            self._truncating = True
            self._cut_epoch(False)

    def _cut_epoch(self, urgent: bool) -> None:
        """Work arrived mid-epoch: end it at the first step boundary at or after now.

        Called straight from :meth:`_wake` (``urgent`` false) when that boundary lies ahead;
        when it is now, from an urgent call in this instant, as SimPy delivers an interrupt,
        so that the turn lines up behind the same-instant events SimPy would put first.
        """
        epoch = self._epoch
        assert epoch is not None  # a wake cuts only an epoch in progress
        start, _, steps, a, b, k0, n = epoch
        now = self.env.now
        steps = boundary_at_or_after(now - start, a, b, k0, n, steps)
        # epoch_span(steps, a, b, k0, n), written out: about once per request
        span = steps * a + b * (steps * k0 + n * steps * (steps - 1) / 2.0)
        delay = max(0.0, start + span - now)
        if delay == 0.0 and not urgent:
            call_later(self.env, 0.0, self._cut_epoch, True, priority=URGENT)
            return
        self._epoch_steps = steps
        self._epoch_span = span
        self._timer = timer = self._timer + 1
        # call_later(env, delay, self._epoch_end, timer), written out: about once per request
        env = self.env
        heappush(env.queue, (now + delay, NORMAL, next(env.sequence), self._epoch_end, timer))

    def _epoch_end(self, token: int) -> None:
        """The epoch in progress ended (a call with a stale token: it was cut short)."""
        if token != self._timer:
            return
        epoch = self._epoch
        assert epoch is not None  # the token is current: this epoch is in progress
        self._epoch = None
        self._truncating = False
        steps = self._epoch_steps
        if steps > 0:
            # self._log_epoch(epoch, steps, self._epoch_span), written out: once per epoch
            start, s0, _, a, b, k0, n = epoch
            self._epoch_rows.extend((start, s0, steps, a, b, k0, n))
            self.busy_s += self._epoch_span
            block = self.block_size
            if (k0 + n * (steps - 1 + block - 1)) // block > self.peak_blocks:
                self.peak_blocks = max(self.peak_blocks, self.batch.blocks(s0 + steps - 1))
            self.batch.steps_done += steps
        self._turn()

    def _log_epoch(self, epoch: Epoch, steps: int, span: float) -> None:
        """Book the first ``steps`` steps of ``epoch`` (``span``: their duration) and the KV
        peak they reached."""
        self.epochs.append(epoch, steps)
        self.busy_s += span
        _, s0, _, _, _, k0, n = epoch
        # blocks only grow within an epoch: its last step holds the most
        block = self.block_size
        if (k0 + n * (steps - 1 + block - 1)) // block > self.peak_blocks:  # cheap bound first
            self.peak_blocks = max(self.peak_blocks, self.batch.blocks(s0 + steps - 1))
        self.batch.steps_done += steps

    # -- the end --------------------------------------------------------------------------------

    def finalize(self, stop_at: float) -> None:
        """The run stopped at ``stop_at``: log the steps completed so far and the open runs."""
        epoch = self._epoch
        if epoch is not None:
            self._epoch = None
            start, _, steps, a, b, k0, n = epoch
            done = steps_completed_by(stop_at - start, a, b, k0, n, steps)
            if done > 0:
                self._log_epoch(epoch, done, epoch_span(done, a, b, k0, n))
        batch = self.batch
        for rid in list(batch.members):
            join_step = batch.join_step(rid)
            self.ctx.runs.append(rid, self.index, join_step, batch.steps_done - join_step)

    def _record_fields(self) -> dict[str, object]:
        return {"epochs": self.epochs}
