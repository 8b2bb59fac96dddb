"""Prefix caching: an instance that has computed a prompt keeps its leading blocks' KV.

Conversations and agents resend the same beginning (system prompt, earlier turns). Workloads that
know this carry, per request, the ids of its prompt's fixed-size blocks (``prefix_hashes``, one id
per ``prefix_block_tokens`` tokens, equal ids meaning equal content from the start). An instance
that prefilled a prompt remembers its block ids; a later prompt whose leading blocks it remembers
skips computing them: only the rest is prefilled, attending to the cached part as context. At
least one token is always computed (the one that produces the first output token).

The cache is bounded (``RouterSpec.prefix_cache_blocks`` blocks per instance) and forgets the
least recently used block first. Matching stops at the first block the instance does not hold
(block ids are chained hashes, as in the Mooncake traces: an id stands for its whole prefix).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np


class PrefixCache:
    """Block ids one instance holds, least recently used first out."""

    __slots__ = ("_blocks", "block_tokens", "capacity")

    def __init__(self, capacity: int, block_tokens: int) -> None:
        self.capacity = capacity
        self.block_tokens = block_tokens
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def match(self, blocks: np.ndarray) -> int:
        """How many leading blocks of ``blocks`` this instance holds."""
        held = self._blocks
        count = 0
        for block in blocks.tolist():
            if block not in held:
                break
            count += 1
        return count

    def cached_tokens(self, blocks: np.ndarray, prompt_tokens: int) -> int:
        """Prompt tokens a prefill here may skip (all but the last token at most)."""
        return min(self.match(blocks) * self.block_tokens, prompt_tokens - 1)

    def insert(self, blocks: np.ndarray) -> None:
        """Remember ``blocks`` (just computed or reused) as the most recently used."""
        held = self._blocks
        for block in blocks.tolist():
            if block in held:
                held.move_to_end(block)
            else:
                held[block] = None
        while len(held) > self.capacity:
            held.popitem(last=False)

    def __len__(self) -> int:
        return len(self._blocks)
