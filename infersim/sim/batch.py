"""The running batch of a continuous-batching instance, advanced many steps at a time.

Every decode step emits one token for every running sequence and grows each sequence's KV cache
by one token. Nothing else changes until a sequence finishes, memory runs out, or a new sequence
joins, so the batch is kept in a form where jumping m steps ahead costs O(1):

- sequence i joined at global step ``s_i`` with KV length ``L_i`` (the tokens its next step
  attends to, the fed-back token included); at step s its length is ``base_i + s`` with
  ``base_i = L_i - s_i``. The batch's total KV at step s is ``sum(base) + n*s``.
- a sequence with r tokens left finishes when the step counter reaches ``s_i + r``: a heap of
  those finish steps gives the next departure.
- KV memory is paged: at step s sequence i holds ``ceil((base_i + s)/B)`` blocks of B tokens.
  Writing ``base_i = q_i*B + r_i`` (0 <= r_i < B) and ``s + B - 1 = k*B + t``, the batch holds
  ``sum(q) + n*k + #{i: r_i >= B - t}`` blocks, so a residue histogram of B counters gives the
  exact block count at any future step, and a binary search finds the first step that would not
  fit.

This class is pure bookkeeping (no clock, no SimPy) so that its arithmetic can be tested alone.
"""

from __future__ import annotations

import heapq
import math


class DecodeBatch:
    """Running sequences of one instance, with O(1) jumps over steps of constant membership."""

    __slots__ = ("_q_sum", "_residues", "base_sum", "block_size", "capacity_blocks",
                 "finishes", "members", "n", "steps_done")

    def __init__(self, block_size: int, capacity_blocks: int) -> None:
        self.block_size = block_size
        self.capacity_blocks = capacity_blocks
        self.steps_done = 0  # global steps this instance has completed (its step counter)
        self.n = 0
        self.base_sum = 0
        self._q_sum = 0
        self._residues = [0] * block_size
        # request id -> (base, finish step, join step), in join order
        self.members: dict[int, tuple[int, int, int]] = {}
        # (finish step, request id), the earliest first; entries of sequences that left early
        # are dropped when they surface
        self.finishes: list[tuple[int, int]] = []

    # -- state at a step boundary -------------------------------------------------------------

    def kv_tokens(self, step: int | None = None) -> int:
        """Sum of the KV lengths attended at ``step`` (default: the next step)."""
        s = self.steps_done if step is None else step
        return self.base_sum + self.n * s

    def blocks(self, step: int | None = None) -> int:
        """Exact KV blocks held while running ``step`` (default: the next step)."""
        s = self.steps_done if step is None else step
        B = self.block_size
        k, t = divmod(s + B - 1, B)
        if t:
            return self._q_sum + self.n * k + sum(self._residues[B - t:])
        return self._q_sum + self.n * k

    def kv_len(self, rid: int) -> int:
        """KV length request ``rid`` attends to in the next step."""
        return self.members[rid][0] + self.steps_done

    def remaining(self, rid: int) -> int:
        return self.members[rid][1] - self.steps_done

    def join_step(self, rid: int) -> int:
        return self.members[rid][2]

    def last_joined(self) -> int:
        return next(reversed(self.members))

    # -- membership ---------------------------------------------------------------------------

    def join(self, rid: int, kv_len: int, remaining: int) -> None:
        """Add a sequence whose next step attends ``kv_len`` tokens and emits ``remaining`` more."""
        now = self.steps_done
        base = kv_len - now
        q, r = divmod(base, self.block_size)
        finish = now + remaining
        self.members[rid] = (base, finish, now)
        heapq.heappush(self.finishes, (finish, rid))
        self.n += 1
        self.base_sum += base
        self._q_sum += q
        self._residues[r] += 1

    def leave(self, rid: int) -> None:
        base = self.members.pop(rid)[0]
        q, r = divmod(base, self.block_size)
        self.n -= 1
        self.base_sum -= base
        self._q_sum -= q
        self._residues[r] -= 1

    def next_finish_step(self) -> int:
        """The step count at which the earliest running sequence completes (the batch must not
        be empty)."""
        heap, members = self.finishes, self.members
        while heap:
            step, rid = heap[0]
            member = members.get(rid)
            if member is not None and member[1] == step:
                return step
            heapq.heappop(heap)  # left early (preempted); drop the stale entry
        raise ValueError("next_finish_step of an empty batch")

    def pop_finished(self) -> list[tuple[int, int]]:
        """Remove the sequences whose last token came out at this boundary: (rid, join step)."""
        done = []
        heap, members, now = self.finishes, self.members, self.steps_done
        while heap and heap[0][0] <= now:
            step, rid = heapq.heappop(heap)
            member = members.get(rid)
            if member is not None and member[1] == step:
                done.append((rid, member[2]))
                self.leave(rid)
        return done

    # -- planning -----------------------------------------------------------------------------

    def steps_that_fit(self, limit: int, reserved: int = 0) -> int:
        """How many of the next ``limit`` steps fit in KV memory (blocks grow monotonically).

        ``reserved`` blocks are held by something else (prompts being prefilled).
        """
        s0, cap = self.steps_done, self.capacity_blocks - reserved
        if limit <= 0:
            return limit
        last = s0 + limit - 1
        # each sequence wastes less than a block: a cheap bound settles the usual case
        if (self.base_sum + self.n * (last + self.block_size - 1)) // self.block_size <= cap \
                or self.blocks(last) <= cap:
            return limit
        if self.blocks(s0) > cap:
            return 0
        lo, hi = 1, limit - 1  # steps s0..s0+lo-1 fit; s0+hi does not
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.blocks(s0 + mid - 1) <= cap:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def advance(self, steps: int) -> None:
        self.steps_done += steps


def epoch_span(steps: float, a: float, b: float, k0: float, n: float) -> float:
    """Seconds that ``steps`` consecutive decode steps take: sum of a + b*(k0 + j*n), j < steps."""
    return steps * a + b * (steps * k0 + n * steps * (steps - 1) / 2.0)


def boundary_at_or_after(elapsed: float, a: float, b: float, k0: int, n: int, limit: int) -> int:
    """The first step boundary at or after ``elapsed`` seconds into an epoch (at most ``limit``).

    Solves the quadratic ``epoch_span(k) = elapsed`` for k, then settles the integer against the
    very formula the engine sleeps on, so that float rounding never puts a boundary early.
    """
    if elapsed <= 0:
        return 0
    quad = b * n / 2.0
    lin = a + b * k0 - quad  # > 0: every sequence attends at least one token
    x = elapsed / lin if quad == 0 else (-lin + math.sqrt(lin * lin + 4 * quad * elapsed)) / (2 * quad)
    k = min(limit, max(0, math.ceil(x)))
    # epoch_span(m, a, b, k0, n), written out (two or three times per cut-short epoch)
    while k > 0:
        m = k - 1
        if m * a + b * (m * k0 + n * m * (m - 1) / 2.0) < elapsed:
            break
        k = m
    while k < limit and k * a + b * (k * k0 + n * k * (k - 1) / 2.0) < elapsed:
        k += 1
    return k


def steps_completed_by(elapsed: float, a: float, b: float, k0: int, n: int, limit: int) -> int:
    """How many of an epoch's ``limit`` steps have ended ``elapsed`` seconds into it."""
    k = boundary_at_or_after(elapsed, a, b, k0, n, limit)
    if epoch_span(k, a, b, k0, n) > elapsed:
        k -= 1
    return max(k, 0)
