"""Where the bytes live: weights and KV cache on the chips of one instance.

An instance of ``tp × pp`` chips keeps ``memory_fraction`` of each chip's weight/KV memory (HBM on
GPUs and Trainium, on-chip SRAM on Cerebras and Groq) for the model; the rest is the engine's
activations, workspace and fragmentation (vLLM's ``gpu_memory_utilization``, 0.9 by default).
Weights are split evenly over all chips. What is left holds the KV cache: a token's KV is split
over the ``pp`` stages by layer and over the ``tp`` chips of a stage by KV head — except that a
chip never holds less than one KV head (GQA with fewer KV heads than ``tp`` replicates them) and
MLA's latent is not split by heads at all, so on those models tensor parallelism adds weight room
but not KV room per chip.

On SRAM machines the whole model and its KV cache must fit on chip, which takes many chips: a
70B model in 16-bit needs 4 Cerebras WSE-3 wafers (44 GB each) or several hundred Groq LPUs
(230 MB each). Such an instance is written with a large ``pp`` (layers spread over wafers or chips
in sequence), optionally times a ``tp`` inside each stage, e.g. ``tp: 8, pp: 72`` for 576 LPUs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from infersim.cost.layout import valid_tensor_parallel
from infersim.cost.types import Deployment
from infersim.errors import InfersimError
from infersim.units import format_si

# KV room a chip-count advice provides when the caller asks only that the weights fit: one 4K
# context, so the proposed layout can serve a request rather than hold one token.
ADVICE_KV_TOKENS = 4096


@dataclass(frozen=True)
class Placement:
    """How a deployment's weights and KV cache fill its chips."""

    fits: bool
    chips: int
    memory_fraction: float
    weight_bytes: float                # all weights of the model
    weight_bytes_per_chip: float
    usable_bytes_per_chip: float       # memory_fraction × per-chip capacity
    kv_capacity_bytes: float           # KV room over the whole instance (0 when it does not fit)
    kv_capacity_tokens: int            # tokens of KV the instance can hold, all sequences
    kv_bytes_per_token: float          # one token's KV, all layers (what a transfer ships)
    min_chips: int                     # fewest chips (tp·pp) whose memory holds the weights


def kv_cache_bytes(dep: Deployment, tokens: int) -> float:
    """Bytes of KV cache of ``tokens`` tokens (all layers): what a KV transfer ships."""
    if tokens < 0:
        raise ValueError(f"tokens must be >= 0, got {tokens}")
    return tokens * dep.model.kv_bytes_per_token(dep.kv_dtype)


def _kv_bytes_per_token_per_chip(dep: Deployment) -> float:
    """KV bytes one token occupies on the fullest chip.

    With fewer stages than layers the fullest stage holds ceil(layers/pp) layers; with more
    (SRAM machines, where one layer spans several chips in sequence) a layer's cache is spread
    over its chips like its weights are.
    """
    model = dep.model
    per_shard = model.kv_bytes_per_token_per_shard(dep.kv_dtype, dep.tp)
    layers = model.num_layers
    layers_on_stage = math.ceil(layers / dep.pp) if dep.pp <= layers else layers / dep.pp
    return per_shard * layers_on_stage / layers


def chips_for_kv(dep: Deployment, memory_fraction: float, kv_tokens: int) -> int:
    """Fewest chips, keeping ``dep``'s ``tp`` and adding pipeline stages, that hold the weights
    plus ``kv_tokens`` tokens of KV on the actual layout (replicated KV heads and MLA included).
    """
    def holds(pp: int) -> bool:
        return placement(dataclasses.replace(dep, pp=pp), memory_fraction).kv_capacity_tokens \
            >= kv_tokens

    low = max(1, math.ceil(min_chips(dep, memory_fraction, kv_tokens=kv_tokens) / dep.tp))
    if holds(low):
        return low * dep.tp
    high = low * 2
    while not holds(high):
        if high > 1_000_000:  # a layout whose per-chip KV cannot shrink (replicated heads)
            raise InfersimError(f"{dep.model.name} {dep.precision} cannot hold {kv_tokens} "
                                f"tokens of KV on {dep.hardware.name} at tp {dep.tp} with any "
                                "number of pipeline stages", field="tp")
        low, high = high, high * 2
    while high - low > 1:  # capacity grows with the number of stages: bisect
        mid = (low + high) // 2
        low, high = (low, mid) if holds(mid) else (mid, high)
    return high * dep.tp


def _check_fraction(memory_fraction: float) -> None:
    if isinstance(memory_fraction, bool) or not isinstance(memory_fraction, (int, float)) \
            or not 0 < memory_fraction <= 1:
        raise InfersimError(field="memory_fraction", expected="a fraction in (0, 1]",
                            given=memory_fraction)


def min_chips(dep: Deployment, memory_fraction: float = 0.9, *, kv_tokens: int = 0) -> int:
    """Fewest chips whose usable memory holds the weights plus ``kv_tokens`` tokens of KV.

    The count assumes KV splits over chips like the weights do; :func:`placement` then checks the
    actual ``tp × pp`` layout, whose KV split may be worse (replicated KV heads, MLA).
    """
    _check_fraction(memory_fraction)
    usable = dep.hardware.memory_capacity_bytes * memory_fraction
    need = dep.model.weight_bytes(dep.precision) + kv_tokens * dep.model.kv_bytes_per_token(
        dep.kv_dtype)
    # Strictly more than the weights: a chip full of weights has no room for any KV.
    return max(1, math.floor(need / usable) + 1)


def placement(dep: Deployment, memory_fraction: float = 0.9) -> Placement:
    """Weights per chip, KV room and whether the model fits on ``dep``'s chips."""
    _check_fraction(memory_fraction)
    usable = dep.hardware.memory_capacity_bytes * memory_fraction
    weights = dep.model.weight_bytes(dep.precision)
    per_chip = weights / dep.chips
    free = usable - per_chip
    kv_per_chip_token = _kv_bytes_per_token_per_chip(dep)
    tokens = math.floor(free / kv_per_chip_token) if free > 0 else 0
    return Placement(
        fits=tokens >= 1, chips=dep.chips, memory_fraction=float(memory_fraction),
        weight_bytes=weights, weight_bytes_per_chip=per_chip, usable_bytes_per_chip=usable,
        kv_capacity_bytes=max(0.0, free) * dep.chips, kv_capacity_tokens=max(0, tokens),
        kv_bytes_per_token=dep.model.kv_bytes_per_token(dep.kv_dtype),
        min_chips=min_chips(dep, memory_fraction),
    )


@dataclass(frozen=True)
class Layout:
    """A ``tp × pp`` split of one model copy and the KV room it leaves."""

    tp: int
    pp: int
    kv_capacity_tokens: int

    @property
    def chips(self) -> int:
        return self.tp * self.pp


def _fewest_stages(dep: Deployment, tp: int, memory_fraction: float, kv_tokens: int
                   ) -> Layout | None:
    """The fewest pipeline stages (at most the layers) that hold ``dep`` at ``tp``, or None."""
    layers = dep.model.num_layers

    def room(pp: int) -> int:
        return placement(dataclasses.replace(dep, tp=tp, pp=pp), memory_fraction) \
            .kv_capacity_tokens

    if room(layers) < kv_tokens:
        return None
    # KV room never shrinks as stages are added (weights per chip fall, layers per stage do not
    # grow), so the fewest stages that hold it are found by bisection.
    low, high = 0, layers
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if room(mid) >= kv_tokens else (mid, high)
    return Layout(tp=tp, pp=high, kv_capacity_tokens=room(high))


def smallest_layout(dep: Deployment, memory_fraction: float = 0.9, kv_tokens: int = 1
                    ) -> Layout | None:
    """The layout a serving engine can run (:mod:`infersim.cost.layout`: ``tp`` splits the heads
    within one scale-up domain, ``pp`` at most the layers) with the fewest chips that holds
    ``dep``'s weights plus ``kv_tokens`` tokens of KV, at ``dep``'s chip and precisions; among
    equally small ones, the fewest pipeline stages. None when no valid layout holds it (the
    weights outgrow ``layers`` stages of a whole scale-up domain)."""
    _check_fraction(memory_fraction)
    need = max(1, kv_tokens)
    best: Layout | None = None
    for tp in valid_tensor_parallel(dep.model, dep.hardware):
        layout = _fewest_stages(dep, tp, memory_fraction, need)
        if layout is not None and (best is None or (layout.chips, layout.pp)
                                   < (best.chips, best.pp)):
            best = layout
    return best


def advised_layout(dep: Deployment, memory_fraction: float = 0.9, kv_tokens: int = 1
                   ) -> Layout | None:
    """The layout to advise for ``dep`` when it does not hold ``kv_tokens`` of KV: ``dep``'s own
    ``tp`` with the fewest stages that hold it, when that ``tp`` is one an engine can run and
    ``layers`` stages suffice (the user chose that ``tp``, e.g. for latency); otherwise
    :func:`smallest_layout`."""
    _check_fraction(memory_fraction)
    if dep.tp in valid_tensor_parallel(dep.model, dep.hardware):
        layout = _fewest_stages(dep, dep.tp, memory_fraction, max(1, kv_tokens))
        if layout is not None:
            return layout
    return smallest_layout(dep, memory_fraction, kv_tokens)


def _advice(dep: Deployment, memory_fraction: float, kv_tokens: int) -> str:
    """``use at least N chips ...``: :func:`advised_layout`, named concretely unless it keeps the
    deployment's own ``tp`` (then ``pp = N / tp``)."""
    layout = advised_layout(dep, memory_fraction, kv_tokens)
    hw, model = dep.hardware, dep.model
    if layout is None:
        widest = max(valid_tensor_parallel(model, hw))
        return (f"no layout an engine can run holds it with {kv_tokens:,} tokens of KV "
                f"(tp at most {widest} within one {hw.name} scale-up domain, pp at most "
                f"{model.num_layers} layers): use a chip with more memory or a lower precision")
    if layout.tp == dep.tp:
        return f"use at least {layout.chips} chips (tp·pp)"
    return (f"use at least {layout.chips} chips: tp {layout.tp} × pp {layout.pp} holds the "
            f"weights and {kv_tokens:,} tokens of KV")


def check_fits(dep: Deployment, memory_fraction: float = 0.9, *, field: str | None = None,
               min_kv_tokens: int = 1) -> Placement:
    """:func:`placement`, or an InfersimError naming the smallest layout that would hold it.

    ``min_kv_tokens`` is the KV room the instance must have besides the weights (a request's
    prompt plus output, say); 1 only requires that some KV fits. The advice is a layout a
    serving engine can run (:func:`advised_layout`) holding the weights and ``min_kv_tokens``
    of KV, or :data:`ADVICE_KV_TOKENS` when the caller asked for less: a layout with room for
    one token is no advice.
    """
    place = placement(dep, memory_fraction)
    if place.kv_capacity_tokens >= max(1, min_kv_tokens):
        return place
    name = f"{dep.model.name} {dep.precision}"
    room = format_si(dep.chips * place.usable_bytes_per_chip, "B")
    weights = format_si(place.weight_bytes, "B")
    if place.weight_bytes_per_chip >= place.usable_bytes_per_chip:
        advice = _advice(dep, memory_fraction, max(min_kv_tokens, ADVICE_KV_TOKENS))
        raise InfersimError(
            f"{name} needs {weights} of weights; {dep.chips}× {dep.hardware.name} holds {room} at "
            f"memory_fraction {memory_fraction:g}: {advice}", field=field)
    raise InfersimError(
        f"{name} on {dep.chips}× {dep.hardware.name} ({room} at memory_fraction "
        f"{memory_fraction:g}) has room for {place.kv_capacity_tokens:,} tokens of KV after "
        f"{weights} of weights, fewer than the {min_kv_tokens:,} required: "
        f"{_advice(dep, memory_fraction, min_kv_tokens)}",
        field=field)
