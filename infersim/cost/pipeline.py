"""Pipeline parallelism: ``pp`` stages working on different micro-batches at once.

A deployment with ``pp > 1`` splits its layers into ``pp`` consecutive stages, each on its own
``tp`` chips. One micro-batch's step walks every stage in turn with an activation hop between
stages, so its **latency** is the host's step overhead, plus every stage, plus every hop: a token
appears only after the last stage. While micro-batch 1 is in stage 2, stage 1 can already work
on micro-batch 2. With ``m`` micro-batches in flight every stage serves each of them once per
cycle, so one comes round again after

    cycle = max(latency, m · bottleneck)

where ``bottleneck`` is the busiest single resource (the slowest stage, or the host that
schedules every micro-batch's step). The instance makes ``m · b / cycle`` tokens/s with
micro-batches of ``b`` sequences: throughput grows linearly with ``m`` until ``m · bottleneck``
reaches the latency, about ``pp`` micro-batches for balanced stages. That is why pipelined
engines (vLLM and TensorRT-LLM with ``pipeline_parallel_size``, the layer pipelines of Cerebras
and Groq) keep as many micro-batches in flight as there are stages; memory bounds ``m`` as well,
since every micro-batch in flight holds its sequences' KV (:func:`micro_batches_in_flight`).

**Exact token clock.** :func:`token_times` runs the pipeline's recurrence exactly (each stage
takes micro-batches in turn; micro-batch ``j``'s token ``n + 1`` enters the first stage only when
its token ``n`` has left the last one), so the first token of every micro-batch comes after all
stages and every later one after a full cycle; :func:`steady_token_times` is its closed form,
which the recurrence reaches after the first round when the stages are balanced.

**A long prompt** is pipelined across stages too: its chunks flow through back to back (chunk
``k + 1`` needs only earlier chunks' KV at each layer, which the same stage holds), so the first
token comes after ``latency(chunk) + (chunks − 1) · bottleneck(chunk)``
(:func:`pipelined_prefill_s`).

Layers are split as evenly as the layer count allows, the first stages taking one more when it
does not divide (``layers_per_stage``); the embedding read and the lm_head run on the last stage.
The split of one step into stages is exact: ``StagePlan.latency_s`` is
:func:`~infersim.cost.step.step_time`'s ``time_s``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from infersim.cost.step import deployment_constants, head_time_s, hop_times_s, step_time
from infersim.cost.types import Deployment, StepBatch
from infersim.errors import InfersimError


def layers_per_stage(layers: int, stages: int) -> tuple[int, ...]:
    """``layers`` split over ``stages`` consecutive stages, the first ones taking the remainder:
    80 over 3 → (27, 27, 26). InfersimError when a stage would get no layer."""
    if stages < 1 or stages > layers:
        raise InfersimError(field="pp", given=stages,
                            expected=f"between 1 and {layers} (a stage holds at least one of the "
                                     f"{layers} layers)")
    base, extra = divmod(layers, stages)
    return tuple(base + (1 if i < extra else 0) for i in range(stages))


@dataclass(frozen=True)
class StagePlan:
    """One step of one micro-batch, resource by resource (seconds)."""

    host_s: float                 # the engine's step overhead: schedules and samples each step
    stage_s: tuple[float, ...]    # each stage's busy time
    hop_s: tuple[float, ...]      # each stage-to-stage activation hop (len(stage_s) - 1)

    @property
    def latency_s(self) -> float:
        """One micro-batch through the whole pipeline: host, every stage, every hop."""
        return self.host_s + sum(self.stage_s) + sum(self.hop_s)

    @property
    def bottleneck_s(self) -> float:
        """The busiest single resource per micro-batch: the slowest stage or the host."""
        return max(max(self.stage_s), self.host_s)


def stage_plan(dep: Deployment, batch: StepBatch) -> StagePlan:
    """``batch``'s step on ``dep`` split into host, stages and hops (module docstring)."""
    cost = step_time(dep, batch)
    c = deployment_constants(dep)
    if batch.tokens == 0:
        return StagePlan(0.0, (0.0,) * dep.pp, (0.0,) * (dep.pp - 1))
    hops = hop_times_s(c, batch.tokens)
    head = head_time_s(c, batch.sequences)
    # What scales with layers: every group but the head, tensor-parallel all-reduces, kernel
    # launches and the per-layer floor. step_time = host + body + head + hops, exactly.
    host = c.step_overhead_s
    body = cost.time_s - host - head - sum(hops)
    per_layer = body / c.layers
    split = layers_per_stage(c.layers, dep.pp)
    stages = [per_layer * n for n in split]
    stages[-1] += head
    return StagePlan(host_s=host, stage_s=tuple(stages), hop_s=hops)


def decode_round_coefficients(dep: Deployment, batch_size: int) -> tuple[float, float]:
    """``(a, b)`` with one decode round of ``batch_size`` sequences (every sequence advancing one
    token) taking ``a + b·S`` seconds, ``S`` the sum of their KV lengths, when they run as
    ``m = min(pp, batch_size)`` equal micro-batches in flight: the pipeline cycle
    ``max(latency, m · bottleneck)`` of one micro-batch of ``k = ⌈batch_size / m⌉`` sequences.

    Both terms are lines in ``S`` (the latency's slope is ``b₁/m``, ``b₁`` the one-step slope;
    the bottleneck stage's is its share of layers); the result takes the larger intercept and the
    larger slope. That is exact whenever one line dominates, which holds when the layers divide
    evenly into the stages (the lines are then parallel) and whenever ``m < pp``; otherwise it is
    the upper envelope of the two, never below the cycle. With ``pp == 1`` it is
    :func:`~infersim.cost.step.decode_step_coefficients`."""
    from infersim.cost.step import decode_step_coefficients

    if dep.pp == 1 or batch_size <= 0:
        return decode_step_coefficients(dep, batch_size)
    c = deployment_constants(dep)
    micro = micro_batches_in_flight(dep.pp, batch_size)
    per_micro = -(-batch_size // micro)
    a, b = decode_step_coefficients(dep, per_micro)
    host = c.step_overhead_s
    head = head_time_s(c, per_micro)
    hops = sum(hop_times_s(c, per_micro))
    # per layer: everything of the micro-batch's step but host, lm_head and hops
    layer_a, layer_b = (a - host - head - hops) / c.layers, b / c.layers
    split = layers_per_stage(c.layers, dep.pp)
    stage_a = max(layer_a * split[0], layer_a * split[-1] + head, host)
    stage_b = layer_b * split[0]   # micro-batch KV sum S/m: slope per total S is stage_b/m·m
    return max(a, micro * stage_a), max(b / micro, stage_b)


def micro_batches_in_flight(stages: int, running_sequences: int, *,
                            kv_room_sequences: int | None = None) -> int:
    """How many micro-batches a pipelined engine keeps in flight: one per stage, but no more
    than there are running sequences (a micro-batch holds at least one) or than memory lets
    run at once (``kv_room_sequences``: sequences whose KV fits)."""
    if stages < 1:
        raise InfersimError(field="pp", expected="an integer >= 1", given=stages)
    bound = min(stages, max(running_sequences, 0))
    if kv_room_sequences is not None:
        bound = min(bound, max(kv_room_sequences, 0))
    return max(1, bound)


def cycle_s(plan: StagePlan, micro_batches: int) -> float:
    """Time between two steps of the same micro-batch with ``micro_batches`` in flight:
    ``max(latency, m · bottleneck)``."""
    if micro_batches < 1:
        raise InfersimError(field="micro_batches", expected="an integer >= 1",
                            given=micro_batches)
    return max(plan.latency_s, micro_batches * plan.bottleneck_s)


def pipelined_tokens_per_s(plan: StagePlan, micro_batches: int, sequences_per_micro_batch: int
                           ) -> float:
    """Decode tokens/s of the instance: ``m · b / cycle``."""
    return micro_batches * sequences_per_micro_batch / cycle_s(plan, micro_batches)


def token_times(plan: StagePlan, micro_batches: int, tokens: int) -> tuple[tuple[float, ...], ...]:
    """Exact instants (from 0, all micro-batches ready) at which each micro-batch's first
    ``tokens`` tokens leave the pipeline: ``result[j][n]``.

    The host and each stage serve steps in arrival order, one at a time; a step moves to the
    next stage after the hop; micro-batch ``j``'s step ``n + 1`` is ready only when its step
    ``n`` has left the last stage (its token is needed to compute the next)."""
    if micro_batches < 1 or tokens < 0:
        raise InfersimError(field="micro_batches", expected="an integer >= 1",
                            given=micro_batches)
    resources = (plan.host_s, *plan.stage_s)
    free = [0.0] * len(resources)            # when each resource is next free
    done: list[list[float]] = [[] for _ in range(micro_batches)]
    for n in range(tokens):
        for j in range(micro_batches):
            t = done[j][n - 1] if n else 0.0  # ready: its previous token is out
            for r, busy in enumerate(resources):
                if r >= 2:                      # stage r-1 after stage r-2: one hop
                    t += plan.hop_s[r - 2]
                t = max(t, free[r]) + busy
                free[r] = t
            done[j].append(t)
    return tuple(tuple(times) for times in done)


def steady_token_times(plan: StagePlan, micro_batches: int, tokens: int
                       ) -> tuple[tuple[float, ...], ...]:
    """The closed form of :func:`token_times` for balanced stages (every stage and the host
    take the same time, as do the hops): micro-batch ``j``'s token ``n`` at
    ``j·bottleneck + latency + n·cycle``."""
    latency, bottleneck = plan.latency_s, plan.bottleneck_s
    cycle = cycle_s(plan, micro_batches)
    return tuple(tuple(j * bottleneck + latency + n * cycle for n in range(tokens))
                 for j in range(micro_batches))


def pipelined_prefill_s(dep: Deployment, chunks: Sequence[int]) -> float:
    """Time to the first token of one prompt prefilled in ``chunks`` (token counts, in order)
    flowing through the stages back to back (module docstring)."""
    if not chunks or any(n < 1 for n in chunks):
        raise InfersimError(field="chunks", expected="one or more positive token counts",
                            given=tuple(chunks))
    free: list[float] = []
    context = 0
    t = 0.0
    for n in chunks:
        plan = stage_plan(dep, StepBatch(prefill_new_tokens=(n,), prefill_context=(context,)))
        resources = (plan.host_s, *plan.stage_s)
        if not free:
            free = [0.0] * len(resources)
        t = 0.0
        for r, busy in enumerate(resources):
            if r >= 2:
                t += plan.hop_s[r - 2]
            t = max(t, free[r]) + busy
            free[r] = t
        context += n
    return t


__all__ = ["StagePlan", "cycle_s", "decode_round_coefficients", "layers_per_stage",
           "micro_batches_in_flight",
           "pipelined_prefill_s", "pipelined_tokens_per_s", "stage_plan", "steady_token_times",
           "token_times"]
