"""The KV ledger of one decode or mixed instance: its blocks as the scheduler and the router see
them.

KV memory is ``capacity_blocks`` blocks of ``block_size`` tokens. The ledger keeps:

- ``used``: blocks the running sequences (and, on a mixed instance, prompts partly computed) held
  at the last step boundary;
- ``prefill``: blocks held by prompts partly computed (mixed instances; 0 on decode instances);
- ``pending``: blocks promised to requests routed here that have not started yet (their prompt's
  KV, or under full reservation all they will reserve);
- ``reserved``: under full reservation (TensorRT-LLM ``GUARANTEED_NO_EVICT``), the blocks set
  aside for each admitted request's prompt plus all its output tokens, held until it leaves.

On demand (vLLM), a sequence takes blocks as it grows and the instance preempts when they run
out; in full, a request is admitted only when its reservation fits besides the others'.
What the ledger publishes to the router (``kv_aware``) is the committed fraction: blocks in use
(on demand) or reserved (full), plus those pending, over capacity.
"""

from __future__ import annotations

import numpy as np


class KVLedger:
    """Used, prefill, pending and reserved blocks of one instance; publishes its load."""

    __slots__ = ("block_size", "capacity_blocks", "fractions", "full", "pending", "prefill",
                 "reserved", "slot", "used")

    def __init__(self, capacity_blocks: int, block_size: int, *, full: bool,
                 fractions: np.ndarray, slot: int) -> None:
        self.capacity_blocks = capacity_blocks
        self.block_size = block_size
        self.full = full  # whole-request reservation, else blocks on demand
        self.used = 0
        self.prefill = 0
        self.pending = 0
        self.reserved = 0
        self.fractions = fractions  # the router's committed-fraction column of the group
        self.slot = slot  # this instance's row in it

    def blocks(self, tokens: int) -> int:
        """Blocks that hold ``tokens`` tokens of KV."""
        return -(-tokens // self.block_size)

    def reservation(self, prompt: int, output: int) -> int:
        """Blocks a fully reserving instance sets aside for a request: its prompt and all its
        output tokens (the most its KV ever holds is one token less: the last token is never fed
        back)."""
        return -(-(prompt + output) // self.block_size)

    def publish(self, used: int) -> None:
        """Tell the router the committed fraction, ``used`` blocks being in use now."""
        committed = self.reserved if self.full else used
        self.fractions[self.slot] = (committed + self.pending) / self.capacity_blocks
