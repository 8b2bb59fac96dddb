"""The engine's window on the cost model: step times of one deployment, memoised per run.

The cost model (:mod:`infersim.cost`) is a set of pure functions of a deployment and a batch.
An engine asks it the same questions over and over (the prefill time of a 1,024-token prompt, the
decode coefficients at batch size 37), so each simulated pool keeps one :class:`StepCosts` whose
caches live exactly as long as the run: no module-level state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from infersim.errors import InfersimError


class StepCosts:
    """Memoised step times, KV sizes and KV capacity of one pool's deployment."""

    __slots__ = ("_cost", "_kv_bytes", "decode_cache", "deployment", "kv_capacity_tokens",
                 "num_layers", "prefill_cache")

    def __init__(self, deployment: Any, memory_fraction: float, *, field: str) -> None:
        from infersim import cost  # the cost layer never imports the engine; the reverse is fine

        self._cost = cost
        self.deployment = deployment
        # batch size -> decode coefficients; read directly by the decode instances' hot path
        self.decode_cache: dict[int, tuple[float, float]] = {}
        # one-prompt batches, by prompt length; read directly by the prefill instances
        self.prefill_cache: dict[int, float] = {}
        self._kv_bytes: dict[int, float] = {}
        place = cost.check_fits(deployment, memory_fraction, field=field)
        self.kv_capacity_tokens = int(place.kv_capacity_tokens)
        if self.kv_capacity_tokens < 1:
            raise InfersimError(field=field, expected="room for KV cache after the weights",
                                given=f"{place.kv_capacity_tokens} tokens")
        self.num_layers = int(deployment.model.num_layers)

    def decode_coefficients(self, batch_size: int) -> tuple[float, float]:
        """(a, b): a pure decode step over kv lengths L_i takes a + b * sum(L_i) seconds. With
        ``pp > 1`` the step is a *round*: the batch runs as micro-batches in flight through the
        pipeline stages and every sequence advances one token per pipeline cycle
        (:func:`infersim.cost.pipeline.decode_round_coefficients`; the plain step when pp is 1)."""
        coef = self.decode_cache.get(batch_size)
        if coef is None:
            a, b = self._cost.decode_round_coefficients(self.deployment, batch_size)
            coef = (float(a), float(b))
            if not (coef[0] > 0 and coef[1] >= 0 and math.isfinite(coef[0] + coef[1])):
                raise ValueError(f"decode_step_coefficients gave {coef} at batch {batch_size}")
            self.decode_cache[batch_size] = coef
        return coef

    def prefill_s(self, prompts: Sequence[int]) -> float:
        """Time of one batched prefill step over whole prompts (no cached context)."""
        if len(prompts) != 1:  # batches of several prompts rarely repeat: not worth the memory
            return float(self._cost.prefill_time(self.deployment, list(prompts)))
        t = self.prefill_cache.get(prompts[0])
        if t is None:
            t = self.prefill_cache[prompts[0]] = float(self._cost.prefill_time(self.deployment,
                                                                            list(prompts)))
        return t

    def step_s(self, new_tokens: Sequence[int], contexts: Sequence[int],
               decode_kv_lens: Sequence[int]) -> float:
        """Time of one mixed step: prefill chunks (after their cached context) plus decodes."""
        batch = self._cost.StepBatch(prefill_new_tokens=tuple(new_tokens),
                                     prefill_context=tuple(contexts),
                                     decode_kv_lens=tuple(decode_kv_lens))
        return float(self._cost.step_time(self.deployment, batch).time_s)

    def mixed_step_s(self, new_tokens: Sequence[int], contexts: Sequence[int], decodes: int,
                     decode_kv_sum: int) -> float:
        """:meth:`step_s` bit for bit, given the decodes as a count and the sum of their KV
        lengths: the running batch keeps both, so a chunked step costs O(prompt chunks), not
        O(running sequences) (:func:`infersim.cost.step_time_s`)."""
        return float(self._cost.step_time_s(self.deployment, new_tokens, contexts, decodes,
                                            decode_kv_sum))

    def chunked_prefill_s(self, tokens: int, budget: int, cached: int = 0) -> float:
        """A prompt longer than the step budget: consecutive chunks of ``budget`` tokens, the
        first attending to ``cached`` tokens already in the KV cache."""
        total, done, end = 0.0, cached, cached + tokens
        while done < end:
            chunk = min(budget, end - done)
            total += self.step_s((chunk,), (done,), ())
            done += chunk
        return total

    def batch_prefill_s(self, new_tokens: Sequence[int], cached: Sequence[int]) -> float:
        """One prefill step: each prompt computes ``new_tokens`` after ``cached`` reused ones."""
        if any(cached):
            return self.step_s(new_tokens, cached, ())
        return self.prefill_s(new_tokens)

    def kv_bytes(self, tokens: int) -> float:
        """Bytes of the KV cache of ``tokens`` tokens (what a transfer or a swap moves)."""
        nbytes = self._kv_bytes.get(tokens)
        if nbytes is None:
            nbytes = self._kv_bytes[tokens] = float(self._cost.kv_cache_bytes(self.deployment,
                                                                               tokens))
        return nbytes
