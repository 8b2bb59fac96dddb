"""The roofline time of one engine step.

One step is one forward pass of a batch: prompt chunks being prefilled and sequences decoding one
token each. Its time is the sum over operator groups of

    max(FLOPs / achievable FLOP/s,  bytes / achievable memory bandwidth)

plus tensor-parallel all-reduces and pipeline hops, plus a fixed per-step overhead, plus latency
floors (per layer and per chip-to-chip hop) that dominate on SRAM/dataflow machines. The groups:

* ``attention projections`` — Q/K/V/O weights (MLA: its low-rank projections), with the new
  tokens' KV written to the cache;
* ``MLP`` — dense SwiGLU layers, and mixture-of-experts layers in which only the experts some
  token of the batch was routed to are read: ``T`` tokens each picking ``k`` of ``E`` experts
  touch ``E·(1 − (1 − k/E)^T)`` distinct experts on average (uniform routing);
* ``lm_head`` — the output projection for each sequence that emits a token this step (every
  decoding sequence; every prefilling sequence, counting each chunk as the one that samples), and
  the embedding table;
* ``prefill attention`` — each new token of a chunk of ``n`` after ``c`` cached tokens attends to
  the ``c`` cached ones and causally to the chunk: ``n·c + n(n+1)/2`` query-key pairs; the cached
  context's KV is read once per chunk (flash-attention tiling);
* ``decode attention`` — each decoding sequence reads and attends to its ``k`` KV entries.

Weights are counted once per step per chip, split over the ``tp`` chips of a stage; stages run one
after another, so with ``pp`` stages the step walks the whole model once. All weight bytes are
streamed each step, the embedding table included: the seeds' and published row 19's convention
(16.06 GB / 3.35 TB/s for Llama-3-8B). Real kernels gather only the batch's rows from the
embedding; the fitted memory efficiency absorbs the difference (vocab·hidden bytes, ~6 % of an 8B
model, ~1.5 % of a 70B one).

For a pure-decode batch of ``n`` sequences every term is either independent of the KV lengths or
proportional to their sum ``S``: the decode-attention group is ``S·max(f/F, b/B)`` (the max of two
lines through the origin is a line through the origin), so
``step_time == a(n) + b·S`` exactly; :func:`decode_step_coefficients` returns ``(a, b)`` and the
engine uses it to jump over runs of decode steps in closed form.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from infersim.cost.comm import Fabric, allreduce_time, send_recv_time
from infersim.cost.types import ZERO_COST, Bound, Deployment, StepBatch, StepCost
from infersim.errors import InfersimError
from infersim.precision import bytes_per_element

if TYPE_CHECKING:
    from infersim.model import ModelSpec

# Activations travel between kernels and over links in 16-bit precision.
ACTIVATION_BYTES = 2.0

# How a kernel's compute and memory times combine. The ideal roofline takes their max (perfect
# overlap); real kernels near the ridge point overlap them imperfectly and take longer than
# either. Calibrated steps combine them as a p-norm, (t_c^p + t_m^p)^(1/p), which equals the max
# far from the ridge and is 2^(1/p) times it at the ridge. p was fitted to the vidur H100 GEMM
# times (Llama-2-7B/70B projections, 1-4096 tokens, TP 1-8; tests/test_calibration.py): p = 2
# gives a median error of 7 % against 8 % for the plain max. A p-norm of two quantities
# proportional to the KV length is proportional to it too, so the decode step stays exactly
# linear in the summed KV length.
ROOFLINE_OVERLAP_EXPONENT = 2.0

_CACHE_ATTRIBUTE = "_infersim_cost_constants"


@dataclass(frozen=True)
class _DeploymentConstants:
    """Everything about a deployment that does not depend on the batch, per chip of a stage."""

    layers: int
    hidden: int
    overlap: float             # p of the compute/memory p-norm; inf = ideal max
    flops_rate: float          # achievable FLOP/s of one chip for the linear layers
    attention_flops_rate: float  # achievable FLOP/s of one chip for attention products
    bandwidth: float           # achievable B/s of one chip's weight/KV memory
    tp: int
    pp: int
    # attention projections, whole model, per chip (weights split over tp)
    attn_weight_bytes: float
    attn_flops_per_token: float
    attn_act_bytes_per_token: float
    kv_write_bytes_per_token: float   # KV written per new token, per chip
    # dense MLP layers
    dense_weight_bytes: float
    dense_flops_per_token: float
    dense_act_bytes_per_token: float
    # MoE layers
    moe_layers: int
    experts: int
    experts_per_token: int
    expert_weight_bytes: float        # one routed expert of one layer, per chip
    moe_fixed_weight_bytes: float     # shared experts + routers of all MoE layers, per chip
    moe_flops_per_token: float        # all MoE layers, active path, per chip
    moe_act_bytes_per_token: float
    # lm_head and embeddings
    head_weight_bytes: float          # lm_head + embedding table, per chip
    head_flops_per_sequence: float
    head_act_bytes_per_sequence: float
    # attention products
    decode_flops_per_pair: float      # one query-key pair, all layers, per chip
    kv_read_bytes_per_token: float    # one cached token's KV, all layers, per chip
    decode_seconds_per_pair: float    # combined compute and memory time per attended KV entry
    prefill_act_bytes_per_token: float
    # communication and fixed terms
    allreduce_bytes_per_token: float
    tp_fabric: Fabric                 # the links the tensor-parallel group all-reduces over
    hops: tuple[tuple[float, float], ...]  # (bandwidth, latency) of each pipeline hop
    step_overhead_s: float
    floor_s: float                    # layer and hop latency floors of one step
    layer_floor_s: float              # the chip's latency floor of one layer
    hop_floor_s: float                # the chip's latency floor of one stage-to-stage hop
    launch_s: float                   # kernel launch cost of a step not replayed from a graph
    eager_decode: bool                # decode steps pay launch_s too (no CUDA graphs)


def _build_constants(dep: Deployment) -> _DeploymentConstants:
    model, hw, tp, pp = dep.model, dep.hardware, dep.tp, dep.pp
    wbytes = bytes_per_element(dep.precision)
    kv_dtype = dep.kv_dtype
    ideal = dep.ideal
    compute_eff = 1.0 if ideal else hw.compute_efficiency
    memory_eff = 1.0 if ideal else hw.memory_efficiency
    flops_rate = hw.flops(dep.precision) * compute_eff
    # Attention products run in fp8 when the cache is 8-bit and the chip has an fp8 rate (fp8
    # flash-attention kernels); otherwise in 16-bit, whatever the weights' precision.
    attention_dtype = "bf16"
    if kv_dtype in ("fp8", "int8") and "fp8" in hw.peak_flops:
        attention_dtype = "fp8"
    attention_rate = hw.flops(attention_dtype) * compute_eff
    bandwidth = hw.memory_bandwidth * memory_eff

    h = model.hidden_size
    layers = model.num_layers
    a = ACTIVATION_BYTES

    # Attention projections: weights, 2·params FLOPs per token, activations in and out.
    attn_params = model.attention_params_per_layer
    if model.attention == "mla":
        heads = model.num_attention_heads
        q_out = heads * (model.qk_nope_head_dim + model.qk_rope_head_dim)
        kv_out = model.kv_lora_rank + model.qk_rope_head_dim
        o_in = heads * model.v_head_dim
    else:
        q_out = model.num_attention_heads * model.head_dim
        kv_out = 2 * model.num_kv_heads * model.head_dim
        o_in = q_out
    attn_act = layers * a * (h + q_out + kv_out + o_in + h)

    kv_per_chip = model.kv_bytes_per_token_per_shard(kv_dtype, tp)

    inter = model.intermediate_size
    dense_layers = model.num_dense_layers
    moe_layers = model.num_moe_layers if model.is_moe else 0
    if model.is_moe:
        moe_w = model.moe_intermediate_size
        shared = model.num_shared_experts * model.shared_expert_intermediate_size
        moe_act = moe_layers * a * (model.num_experts_per_token * (2 * h + 3 * moe_w)
                                    + (2 * h + 3 * shared if shared else 0))
        moe_fixed = float(moe_layers * (model.num_shared_experts * model.shared_expert_params
                                        + model.router_params_per_layer))
        moe_flops = 2.0 * moe_layers * model.moe_active_params_per_layer
    else:
        moe_act = moe_fixed = moe_flops = 0.0

    # lm_head reads its weight once per step; the embedding table is streamed as well (module
    # docstring). A tied embedding is the lm_head weight: read once.
    head_params = model.lm_head_params + model.embedding_params
    decode_pair_flops = model.attention_flops(1, 0, mla_absorbed=True)  # one query-key pair
    overlap = math.inf if ideal else ROOFLINE_OVERLAP_EXPONENT
    decode_seconds_per_pair = combine(decode_pair_flops / tp / attention_rate,
                                      kv_per_chip / bandwidth, overlap)

    # Links: a tensor-parallel group inside one scale-up domain all-reduces over it; a larger one
    # spills onto the scale-out network. Pipeline hops cross the scale-out network at each
    # domain boundary the instance spans.
    domain = hw.scaleup_domain_chips
    if tp <= hw.tensor_parallel_chips:
        tp_fabric = Fabric(hw.scaleup_topology, hw.scaleup_bandwidth, hw.scaleup_latency_s,
                           ideal=ideal)
    else:
        tp_fabric = Fabric("ethernet", hw.scaleout_bandwidth, hw.scaleout_latency_s, ideal=ideal)
    hops = []
    for stage in range(1, pp):
        first_chip = stage * tp
        crosses = (first_chip // domain) != ((first_chip - 1) // domain)
        hops.append((hw.scaleout_bandwidth, hw.scaleout_latency_s) if crosses
                    else (hw.scaleup_bandwidth, hw.scaleup_latency_s))

    overhead = dep.effective_step_overhead_s
    launch = 0.0 if ideal else hw.launch_overhead_s * layers
    layer_floor = 0.0 if ideal else hw.layer_latency_s
    hop_floor = 0.0 if ideal else hw.hop_latency_s
    floor = layer_floor * layers + hop_floor * (pp - 1)

    return _DeploymentConstants(
        layers=layers, hidden=h, overlap=overlap, flops_rate=flops_rate, attention_flops_rate=attention_rate,
        bandwidth=bandwidth, tp=tp, pp=pp,
        attn_weight_bytes=layers * attn_params * wbytes / tp,
        attn_flops_per_token=2.0 * layers * attn_params / tp,
        attn_act_bytes_per_token=attn_act / tp,
        kv_write_bytes_per_token=kv_per_chip,
        dense_weight_bytes=dense_layers * model.dense_mlp_params_per_layer * wbytes / tp,
        dense_flops_per_token=2.0 * dense_layers * model.dense_mlp_params_per_layer / tp,
        dense_act_bytes_per_token=dense_layers * a * (2 * h + 3 * inter) / tp,
        moe_layers=moe_layers, experts=model.num_experts,
        experts_per_token=model.num_experts_per_token,
        expert_weight_bytes=model.expert_params * wbytes / tp,
        moe_fixed_weight_bytes=moe_fixed * wbytes / tp,
        moe_flops_per_token=moe_flops / tp,
        moe_act_bytes_per_token=moe_act / tp,
        head_weight_bytes=head_params * wbytes / tp,
        head_flops_per_sequence=model.lm_head_flops_per_token() / tp,
        head_act_bytes_per_sequence=(h * a + model.vocab_size * 4.0) / tp,  # fp32 logits out
        decode_flops_per_pair=decode_pair_flops / tp,
        kv_read_bytes_per_token=kv_per_chip,
        decode_seconds_per_pair=decode_seconds_per_pair,
        prefill_act_bytes_per_token=layers * a * 2 * q_out / tp,  # Q in, O out
        allreduce_bytes_per_token=h * a,
        tp_fabric=tp_fabric, hops=tuple(hops),
        step_overhead_s=overhead, floor_s=floor, layer_floor_s=layer_floor,
        hop_floor_s=hop_floor,
        launch_s=launch, eager_decode=not dep.cuda_graphs,
    )


def fixed_step_s(c: _DeploymentConstants, prefill: bool) -> float:
    """The step's fixed time: the engine's step overhead and the latency floors, plus the
    kernel-launch cost when the step is not replayed from a CUDA graph (a step with prompt
    tokens, or any step when the deployment runs eagerly). Decode steps under CUDA graphs launch
    one graph, whose kernels the GPU starts back to back with no host round trip."""
    if prefill or c.eager_decode:
        return c.step_overhead_s + c.floor_s + c.launch_s
    return c.step_overhead_s + c.floor_s


def deployment_constants(dep: Deployment) -> _DeploymentConstants:
    """The batch-independent constants of ``dep``, computed once and kept on the instance.

    A frozen Deployment cannot change, so caching on it is safe; storing into ``__dict__`` is
    what :func:`functools.cached_property` does for frozen dataclasses.
    """
    cached = dep.__dict__.get(_CACHE_ATTRIBUTE)
    if cached is None:
        cached = _build_constants(dep)
        dep.__dict__[_CACHE_ATTRIBUTE] = cached
    return cached


def combine(compute_s: float, memory_s: float, overlap: float) -> float:
    """Time of a kernel that needs ``compute_s`` of arithmetic and ``memory_s`` of memory
    traffic: their max when ``overlap`` is infinite, else their ``overlap``-norm."""
    if overlap == math.inf:
        return compute_s if compute_s >= memory_s else memory_s
    return (compute_s ** overlap + memory_s ** overlap) ** (1.0 / overlap)


def head_time_s(c: _DeploymentConstants, sequences: int) -> float:
    """Time of the lm_head group (and embedding read) for ``sequences`` sampling sequences: the
    same value :func:`step_time` adds for it."""
    if sequences <= 0:
        return 0.0
    return combine(c.head_flops_per_sequence * sequences / c.flops_rate,
                   (c.head_weight_bytes + sequences * c.head_act_bytes_per_sequence) / c.bandwidth,
                   c.overlap)


def hop_times_s(c: _DeploymentConstants, tokens: int) -> tuple[float, ...]:
    """Time of each stage-to-stage hop of a step of ``tokens`` tokens: the link's send of their
    activations (part of the step's ``comm_s``) plus the chip's hop floor (part of its
    ``overhead_s``)."""
    return tuple(send_recv_time(c.allreduce_bytes_per_token * tokens, bw, lat) + c.hop_floor_s
                 for bw, lat in c.hops)


def expected_distinct_experts(tokens: int, experts: int, per_token: int) -> float:
    """Mean number of distinct experts ``tokens`` tokens touch, each choosing ``per_token`` of
    ``experts`` uniformly: ``E·(1 − (1 − k/E)^T)``."""
    if tokens <= 0 or experts <= 0:
        return 0.0
    return experts * (1.0 - (1.0 - per_token / experts) ** tokens)


def _fixed_part(c: _DeploymentConstants, model: ModelSpec, tokens: int, sequences: int,
                prefill_new: Sequence[int], prefill_context: Sequence[int]
                ) -> tuple[float, float, float, float, float, float, float, float]:
    """Everything of a step except decode attention.

    Returns ``(groups_s, compute_s, memory_s, compute_bound_s, memory_bound_s, comm_s, flops,
    bytes)`` per chip of a stage summed over stages (flops and bytes per chip).
    """
    rate, bw, p = c.flops_rate, c.bandwidth, c.overlap
    groups = compute_total = memory_total = compute_bound = memory_bound = 0.0
    flops_total = bytes_total = 0.0

    def add(flops: float, nbytes: float, flop_rate: float) -> None:
        nonlocal groups, compute_total, memory_total, compute_bound, memory_bound
        nonlocal flops_total, bytes_total
        t_c = flops / flop_rate
        t_m = nbytes / bw
        t = combine(t_c, t_m, p)
        compute_total += t_c
        memory_total += t_m
        flops_total += flops
        bytes_total += nbytes
        groups += t
        if t_c >= t_m:
            compute_bound += t
        else:
            memory_bound += t

    if tokens > 0:
        add(c.attn_flops_per_token * tokens,
            c.attn_weight_bytes + tokens * (c.attn_act_bytes_per_token
                                            + c.kv_write_bytes_per_token), rate)
        if c.dense_weight_bytes > 0:
            add(c.dense_flops_per_token * tokens,
                c.dense_weight_bytes + tokens * c.dense_act_bytes_per_token, rate)
        if c.moe_layers:
            touched = expected_distinct_experts(tokens, c.experts, c.experts_per_token)
            add(c.moe_flops_per_token * tokens,
                c.moe_layers * touched * c.expert_weight_bytes + c.moe_fixed_weight_bytes
                + tokens * c.moe_act_bytes_per_token, rate)
    if sequences > 0:
        add(c.head_flops_per_sequence * sequences,
            c.head_weight_bytes + sequences * c.head_act_bytes_per_sequence, rate)
    if prefill_new:
        pflops = pbytes = 0.0
        for new, ctx in zip(prefill_new, prefill_context, strict=True):
            if new <= 0:
                continue
            # Prefill kernels expand MLA's latent per head rather than absorbing it.
            pflops += model.attention_flops(new, ctx, mla_absorbed=False)
            pbytes += ctx * c.kv_read_bytes_per_token + new * c.prefill_act_bytes_per_token
        if pflops > 0:
            add(pflops / c.tp, pbytes, c.attention_flops_rate)

    comm = 0.0
    if tokens > 0:
        if c.tp > 1:
            comm += 2 * c.layers * allreduce_time(c.allreduce_bytes_per_token * tokens, c.tp,
                                                  c.tp_fabric)
        for hop_bw, hop_lat in c.hops:
            comm += send_recv_time(c.allreduce_bytes_per_token * tokens, hop_bw, hop_lat)
    return (groups, compute_total, memory_total, compute_bound, memory_bound, comm,
            flops_total, bytes_total)


def step_time(dep: Deployment, batch: StepBatch) -> StepCost:
    """The roofline cost of one engine step of ``batch`` on the instance ``dep``."""
    if not isinstance(batch, StepBatch):
        raise InfersimError(field="batch", expected="a StepBatch", given=batch)
    c = deployment_constants(dep)
    tokens = batch.tokens
    if tokens == 0:
        return ZERO_COST
    (groups, compute_s, memory_s, compute_bound, memory_bound, comm, flops,
     nbytes) = _fixed_part(c, dep.model, tokens, batch.sequences, batch.prefill_new_tokens,
                           batch.prefill_context)
    fixed_s = fixed_step_s(c, tokens > len(batch.decode_kv_lens))
    kv_sum = sum(batch.decode_kv_lens)
    decode_attention_s = c.decode_seconds_per_pair * kv_sum
    if kv_sum:
        d_flops = c.decode_flops_per_pair * kv_sum
        d_bytes = c.kv_read_bytes_per_token * kv_sum
        t_c = d_flops / c.attention_flops_rate
        t_m = d_bytes / c.bandwidth
        compute_s += t_c
        memory_s += t_m
        flops += d_flops
        nbytes += d_bytes
        if t_c >= t_m:
            compute_bound += decode_attention_s
        else:
            memory_bound += decode_attention_s
    # The same association order as decode_step_coefficients: (a) + b·S.
    time_s = (groups + comm + fixed_s) + decode_attention_s
    latency = comm + fixed_s
    bound: Bound
    if latency >= compute_bound and latency >= memory_bound:
        bound = "latency"
    elif compute_bound >= memory_bound:
        bound = "compute"
    else:
        bound = "memory"
    chips_of_stage = c.tp
    return StepCost(time_s=time_s, compute_s=compute_s, memory_s=memory_s, comm_s=comm,
                    overhead_s=fixed_s, flops=flops * chips_of_stage,
                    bytes_moved=nbytes * chips_of_stage, bound=bound)


def decode_step_coefficients(dep: Deployment, batch_size: int) -> tuple[float, float]:
    """``(a, b)`` with ``step_time(dep, StepBatch(decode_kv_lens=ks)).time_s == a + b·sum(ks)``
    for every ``ks`` of length ``batch_size`` (up to float rounding)."""
    if batch_size < 0:
        raise ValueError(f"batch_size must be >= 0, got {batch_size}")
    c = deployment_constants(dep)
    if batch_size == 0:
        return 0.0, 0.0
    fixed = _fixed_part(c, dep.model, batch_size, batch_size, (), ())
    return (fixed[0] + fixed[5] + fixed_step_s(c, False)), c.decode_seconds_per_pair


def step_time_s(dep: Deployment, prefill_new_tokens: Sequence[int],
                prefill_context: Sequence[int], decodes: int, decode_kv_sum: int) -> float:
    """``step_time(dep, batch).time_s`` for a batch whose ``decodes`` decoding sequences attend to
    ``decode_kv_sum`` KV entries in all, bit for bit.

    Only the sum of the decode KV lengths enters a step's time (decode attention is linear in
    it), so an engine that keeps that sum need not build the per-sequence tuple of every running
    sequence at every mixed step. ``prefill_context`` may be empty (no cached context).
    """
    c = deployment_constants(dep)
    tokens = sum(prefill_new_tokens) + decodes
    if tokens == 0:
        return 0.0
    context = prefill_context if prefill_context else (0,) * len(prefill_new_tokens)
    fixed = _fixed_part(c, dep.model, tokens, len(prefill_new_tokens) + decodes,
                        prefill_new_tokens, context)
    # The same association order as step_time: (groups + comm + fixed) + b·S.
    return ((fixed[0] + fixed[5] + fixed_step_s(c, tokens > decodes))
            + c.decode_seconds_per_pair * decode_kv_sum)


def prefill_time(dep: Deployment, prompt_tokens: Sequence[int]) -> float:
    """Seconds of one step that prefills every prompt of ``prompt_tokens`` from an empty cache."""
    prompts = tuple(int(n) for n in prompt_tokens)
    if any(n < 0 for n in prompts):
        raise ValueError(f"prompt lengths must be >= 0, got {prompts}")
    return step_time(dep, StepBatch(prefill_new_tokens=prompts)).time_s


def ridge_point(dep: Deployment) -> float:
    """FLOP per byte at which the linear layers of ``dep`` turn from memory- to compute-bound:
    achievable FLOP/s over achievable memory bandwidth (H100 bf16, ideal: 989/3.35 ≈ 295)."""
    c = deployment_constants(dep)
    return c.flops_rate / c.bandwidth


def decode_time(dep: Deployment, batch_size: int, kv_len: int) -> float:
    """Seconds of one decode step of ``batch_size`` sequences that each attend to ``kv_len``."""
    a, b = decode_step_coefficients(dep, batch_size)
    return a + b * batch_size * kv_len


__all__ = ["ACTIVATION_BYTES", "ROOFLINE_OVERLAP_EXPONENT", "combine", "decode_step_coefficients",
           "decode_time", "deployment_constants", "expected_distinct_experts", "fixed_step_s",
           "head_time_s", "hop_times_s", "prefill_time", "ridge_point", "step_time",
           "step_time_s"]
