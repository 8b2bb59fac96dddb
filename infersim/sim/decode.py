"""A decode instance: continuous batching over paged KV memory, simulated epoch by epoch.

A request is routed here after its prefill (:meth:`DecodeInstance.assign`: its KV blocks are
promised, the router sees them as committed); when a link has moved its KV cache it arrives
(:meth:`DecodeInstance.deliver`) and waits, first come, first served, to join the running batch at
a step boundary. The batch is run by the continuous-batching core
(:mod:`infersim.sim.batching`): retire → preempt → admit at every boundary where membership may
change, epochs of constant membership in between. A sequence leaves when its last token is out.

KV memory is taken one of two ways (``PoolSpec.kv_reservation``, see :mod:`infersim.sim.kv`).
``on_demand`` (vLLM): a sequence joins when the blocks of its current KV fit and takes more as it
grows; when the running sequences outgrow KV memory the most recently joined is preempted and
goes back to the head of the waiting line. Under ``recompute`` its KV is dropped and prefilled
again (prompt plus generated tokens) on this instance before it resumes; under ``swap`` it is
copied to host memory and back. Either way the instance stalls for that time. ``full``
(TensorRT-LLM's ``GUARANTEED_NO_EVICT``): a request joins only when blocks for its prompt plus
all its output tokens are free besides those reserved by the running sequences, and keeps them
until it leaves; nothing is ever preempted.

The states of a decode instance and what moves it between them::

                 deliver (KV arrived)                     epoch end: a sequence finished,
      +------+ ----------------------> +------+  <------ memory full, or the boundary
      | idle |   (turn in this instant)| turn |          after new work (cut short)
      +------+ <---------------------- +------+ ------------------------+
                  nothing running          |  \\                         |
                                           |   \\ preempted or resumed   |
                          admitted, running |    \\ (swap, recompute)     |
                                           v     v                      |
                                      +-------+  +-------+  stall over  |
                                      | epoch |  | stall | ---> turn    |
                                      +-------+  +-------+              |
                                           |  deliver: cut at the next  |
                                           +--- boundary at or after ---+
                                                now (epoch end moved)
"""

from __future__ import annotations

from infersim.sim.batching import BatchingInstance


class DecodeInstance(BatchingInstance):
    """One decode engine: a waiting line and a continuously batched running set."""

    role = "decode"

    @property
    def queue_length(self) -> int:
        return len(self.waiting)

    def assign(self, rid: int) -> None:
        """A request has been routed here; its KV is on its way."""
        ctx, kv = self.ctx, self.kv
        if kv.full:
            kv.pending += kv.reservation(ctx.prompt[rid], ctx.output[rid])
        else:
            kv.pending += -(-(ctx.prompt[rid] + 1) // kv.block_size)
        # self._add_load(ctx.output[rid] - 1, 1) and kv.publish(kv.used), written out: once per
        # request
        self.load_tokens += ctx.output[rid] - 1
        self.load_requests += 1
        loads, slot = self.loads, self.slot
        loads.outstanding_tokens[slot] = self.load_tokens
        loads.outstanding_requests[slot] = self.load_requests
        kv.fractions[kv.slot] = ((kv.reserved if kv.full else kv.used) + kv.pending) / kv.capacity_blocks

    def _admitted(self, rid: int, now: float) -> None:
        self.ctx.decode_admitted(rid, now)

    def deliver(self, rid: int) -> None:
        """The request's KV has arrived: it may join at the next step boundary."""
        waiting = self.waiting
        waiting.append(rid)
        # behind others that wait (FCFS), or with no free slot, it cannot join sooner anyway
        if len(waiting) == 1 and self.batch.n < self.max_seqs:
            self._wake()
