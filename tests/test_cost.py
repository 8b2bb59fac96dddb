"""The roofline cost model: the seeds' physics in ideal mode, and the invariants the engine uses."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.cost import (
    Deployment,
    StepBatch,
    decode_step_coefficients,
    expected_distinct_experts,
    prefill_time,
    ridge_point,
    step_time,
    step_time_s,
)
from infersim.errors import InfersimError
from infersim.hardware import load_hardware
from infersim.model import load_model

H100 = load_hardware("h100")
LLAMA3_8B = load_model("llama-3-8b")


def ideal_8b() -> Deployment:
    return Deployment(model=LLAMA3_8B, hardware=H100, ideal=True)


# ---- the seeds' numbers (ideal mode) ---------------------------------------------------------


def test_single_stream_decode_reads_every_weight_once_per_token():
    # 16.06 GB / 3.35 TB/s = 4.79 ms -> 208.6 tok/s; a 64-token context adds 0.2 %.
    cost = step_time(ideal_8b(), StepBatch(decode_kv_lens=(64,)))
    assert 1.0 / cost.time_s == pytest.approx(208.6, rel=0.01)
    assert cost.bound == "memory"
    assert cost.memory_s == pytest.approx(LLAMA3_8B.weight_bytes("bf16") / 3.35e12, rel=0.01)


def test_six_token_prefill_is_memory_bound():
    cost = step_time(ideal_8b(), StepBatch(prefill_new_tokens=(6,)))
    assert cost.memory_s == pytest.approx(4.78e-3, rel=0.01)
    # The seed's 2 x 8 B x 6 = 96 GFLOP counts lm_head and the embedding for every position;
    # only the last position is sampled and the embedding is a gather, hence 85 GFLOP here.
    assert cost.flops == pytest.approx(2 * 8.03e9 * 6, rel=0.15)
    assert cost.compute_s == pytest.approx(0.10e-3, rel=0.15)
    assert cost.bound == "memory"
    assert cost.time_s == pytest.approx(cost.memory_s, rel=1e-9)


def test_prefill_intensity_grows_with_prompt_length():
    lengths = [1, 6, 64, 512, 2048, 8192]
    intensity = [step_time(ideal_8b(), StepBatch(prefill_new_tokens=(n,))).arithmetic_intensity
                 for n in lengths]
    assert all(a < b for a, b in itertools.pairwise(intensity))
    assert step_time(ideal_8b(), StepBatch(prefill_new_tokens=(8192,))).bound == "compute"


def test_decode_sits_near_one_flop_per_byte_in_bf16():
    cost = step_time(ideal_8b(), StepBatch(decode_kv_lens=(128,)))
    assert 0.85 < cost.arithmetic_intensity < 1.1


def test_h100_bf16_ridge_point():
    assert ridge_point(ideal_8b()) == pytest.approx(989e12 / 3.35e12, rel=1e-12)
    assert ridge_point(ideal_8b()) == pytest.approx(295, abs=1)


def test_decode_turns_compute_bound_only_near_the_ridge_point():
    # With almost no KV to read, a decode batch of B tokens does ~B FLOP per weight byte.
    dep = ideal_8b()
    first = next(b for b in range(1, 2000)
                 if (c := step_time(dep, StepBatch(decode_kv_lens=(1,) * b))).compute_s
                 > c.memory_s)
    ridge = ridge_point(dep)
    assert 0.8 * ridge < first < 1.3 * ridge
    assert step_time(dep, StepBatch(decode_kv_lens=(1,) * 64)).bound == "memory"


def test_long_contexts_keep_decode_memory_bound():
    # Attention reads each token's KV for 2 FLOP per element: KV traffic never turns compute-bound.
    cost = step_time(ideal_8b(), StepBatch(decode_kv_lens=(8000,) * 512))
    assert cost.bound == "memory"


# ---- structure ---------------------------------------------------------------------------------


def test_chunked_prefill_does_the_same_attention_work():
    # A prompt of 3000 prefilled as 1000 + 2000 (the second chunk after 1000 cached tokens)
    # computes the same query-key pairs as in one go; only the sampled position's lm_head repeats.
    dep = ideal_8b()
    whole = step_time(dep, StepBatch(prefill_new_tokens=(3000,)))
    first = step_time(dep, StepBatch(prefill_new_tokens=(1000,)))
    second = step_time(dep, StepBatch(prefill_new_tokens=(2000,), prefill_context=(1000,)))
    lm_head = LLAMA3_8B.lm_head_flops_per_token()
    assert first.flops + second.flops - lm_head == pytest.approx(whole.flops, rel=1e-12)


def test_moe_decode_reads_only_the_experts_it_routes_to():
    mixtral = load_model("mixtral-8x7b")
    dep = Deployment(model=mixtral, hardware=H100, tp=2, ideal=True)
    one = step_time(dep, StepBatch(decode_kv_lens=(16,)))
    many = step_time(dep, StepBatch(decode_kv_lens=(16,) * 256))
    weights = mixtral.weight_bytes("bf16")
    # One token visits 2 of 8 experts: about 13 of 47 B parameters are read.
    assert one.bytes_moved < 0.35 * weights
    assert many.bytes_moved > 0.97 * weights


def test_expected_distinct_experts():
    assert expected_distinct_experts(1, 8, 2) == pytest.approx(2.0)
    assert expected_distinct_experts(0, 8, 2) == 0.0
    assert expected_distinct_experts(10_000, 256, 8) == pytest.approx(256.0)
    values = [expected_distinct_experts(t, 256, 8) for t in range(1, 200)]
    assert all(a < b for a, b in itertools.pairwise(values))


def test_tensor_parallelism_splits_the_work_and_adds_all_reduces():
    llama70 = load_model("llama-3.1-70b")
    one = step_time(Deployment(model=llama70, hardware=H100, ideal=True),
                    StepBatch(decode_kv_lens=(512,) * 8))
    four = step_time(Deployment(model=llama70, hardware=H100, tp=4, ideal=True),
                     StepBatch(decode_kv_lens=(512,) * 8))
    assert one.comm_s == 0.0
    assert four.comm_s > 0.0
    assert four.time_s < one.time_s / 3
    assert four.flops == pytest.approx(one.flops, rel=1e-9)


def test_pipeline_stages_run_in_sequence():
    llama70 = load_model("llama-3.1-70b")
    tp4 = Deployment(model=llama70, hardware=H100, tp=4)
    pp2 = Deployment(model=llama70, hardware=H100, tp=4, pp=2)
    batch = StepBatch(decode_kv_lens=(512,) * 8)
    # A step walks both stages: no faster than one stage of twice the chips would be...
    assert step_time(pp2, batch).time_s >= step_time(tp4, batch).time_s
    # ...but each stage is busy only about half of it, so a pipelined engine overlaps steps.
    from infersim.cost.pipeline import stage_plan

    assert stage_plan(pp2, batch).bottleneck_s < 0.6 * step_time(pp2, batch).time_s


def test_ideal_mode_strips_overheads_and_floors():
    wse3 = load_hardware("wse3")
    real = Deployment(model=load_model("llama-3.1-8b"), hardware=wse3)
    ideal = Deployment(model=load_model("llama-3.1-8b"), hardware=wse3, ideal=True)
    batch = StepBatch(decode_kv_lens=(1000,))
    assert step_time(ideal, batch).overhead_s == 0.0
    floors = wse3.step_overhead_s + 32 * wse3.layer_latency_s
    assert step_time(real, batch).overhead_s == pytest.approx(floors)
    assert step_time(real, batch).bound == "latency"
    assert step_time(real, batch).time_s > step_time(ideal, batch).time_s + floors * 0.999


def test_empty_step_costs_nothing():
    assert step_time(ideal_8b(), StepBatch()).time_s == 0.0
    assert decode_step_coefficients(ideal_8b(), 0) == (0.0, 0.0)


def test_prefill_time_matches_a_prefill_only_step():
    dep = Deployment(model=LLAMA3_8B, hardware=H100)
    assert prefill_time(dep, [100, 300]) == step_time(
        dep, StepBatch(prefill_new_tokens=(100, 300))).time_s


def test_step_batch_rejects_mismatched_context():
    with pytest.raises(InfersimError, match="prefill_context: expected empty or one entry per"):
        StepBatch(prefill_new_tokens=(10, 20), prefill_context=(0,))


def test_deployment_validation_names_the_field():
    with pytest.raises(InfersimError, match="tp: expected an integer >= 1, got 0"):
        Deployment(model=LLAMA3_8B, hardware=H100, tp=0)
    with pytest.raises(InfersimError, match=r"peak_flops\.fp4"):
        Deployment(model=LLAMA3_8B, hardware=H100, precision="fp4")
    with pytest.raises(InfersimError, match="kv_precision"):
        Deployment(model=LLAMA3_8B, hardware=H100, kv_precision="fp7")


def test_kv_precision_follows_weights_except_four_bit():
    assert Deployment(model=LLAMA3_8B, hardware=H100, precision="fp8").kv_dtype == "fp8"
    b200 = load_hardware("b200")
    if "fp4" in b200.peak_flops:
        assert Deployment(model=LLAMA3_8B, hardware=b200, precision="fp4").kv_dtype == "bf16"


def test_deployment_is_hashable_and_deterministic():
    a = Deployment(model=LLAMA3_8B, hardware=H100, tp=2)
    b = Deployment(model=LLAMA3_8B, hardware=H100, tp=2)
    assert hash(a) == hash(b) and a == b
    batch = StepBatch(prefill_new_tokens=(777,), prefill_context=(33,), decode_kv_lens=(5, 9))
    assert step_time(a, batch) == step_time(b, batch)


def test_step_overhead_override_replaces_the_chips_knob_once_per_step():
    # A serving framework's host time per step (vLLM 0.6 at TP4: ~6.5 ms, docs/engine-validation.md D2)
    # replaces the chip's calibrated 2 ms; nothing else about the step changes.
    llama70 = load_model("llama-3.1-70b")
    chip = Deployment(model=llama70, hardware=H100, tp=4)
    vllm = Deployment(model=llama70, hardware=H100, tp=4, step_overhead_s=5.5e-3)
    assert chip.effective_step_overhead_s == H100.step_overhead_s == 2e-3
    batch = StepBatch(prefill_new_tokens=(300,), decode_kv_lens=(450,) * 16)
    base, slower = step_time(chip, batch), step_time(vllm, batch)
    assert slower.time_s - base.time_s == pytest.approx(3.5e-3, rel=1e-9)
    assert slower.overhead_s - base.overhead_s == pytest.approx(3.5e-3, rel=1e-9)
    assert (slower.compute_s, slower.memory_s, slower.comm_s) == \
        (base.compute_s, base.memory_s, base.comm_s)
    (a0, b0), (a1, b1) = decode_step_coefficients(chip, 16), decode_step_coefficients(vllm, 16)
    assert b1 == b0 and a1 - a0 == pytest.approx(3.5e-3, rel=1e-9)
    # Ideal mode drops every overhead, the override included; an explicit 0 removes the chip's.
    ideal = Deployment(model=llama70, hardware=H100, tp=4, ideal=True, step_overhead_s=5.5e-3)
    assert ideal.effective_step_overhead_s == 0.0
    zero = Deployment(model=llama70, hardware=H100, tp=4, step_overhead_s=0.0)
    assert base.time_s - step_time(zero, batch).time_s == pytest.approx(2e-3, rel=1e-9)


@pytest.mark.parametrize("bad", [-1e-3, math.nan, math.inf, True, "5 ms"])
def test_step_overhead_override_must_be_a_time(bad):
    with pytest.raises(InfersimError, match="step_overhead"):
        Deployment(model=LLAMA3_8B, hardware=H100, step_overhead_s=bad)


def test_cost_layer_never_imports_simpy():
    code = ("import sys, infersim.cost, infersim.cost.throughput, infersim.cost.calibration; "
            "sys.exit(1 if 'simpy' in sys.modules else 0)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ---- invariants over random deployments ------------------------------------------------------

MODELS = [load_model(n) for n in ("llama-3-8b", "llama-3.1-70b", "mixtral-8x7b", "deepseek-v3",
                                  "qwen3-32b")]
CHIPS = [load_hardware(n) for n in ("h100", "a100", "wse3", "lpu", "trainium2", "gb200-nvl72")]


@st.composite
def deployments(draw) -> Deployment:
    hardware = draw(st.sampled_from(CHIPS))
    precision = draw(st.sampled_from([p for p in ("bf16", "fp8") if p in hardware.peak_flops]
                                     or ["fp16"]))
    return Deployment(model=draw(st.sampled_from(MODELS)), hardware=hardware,
                      precision=precision, tp=draw(st.sampled_from([1, 2, 4, 8, 16])),
                      pp=draw(st.integers(1, 4)), ideal=draw(st.booleans()),
                      step_overhead_s=draw(st.none() | st.floats(0.0, 0.02)))


kv_lens = st.lists(st.integers(0, 200_000), min_size=1, max_size=64)


@settings(max_examples=150, deadline=None)
@given(dep=deployments(), ks=kv_lens)
def test_decode_step_is_exactly_linear_in_summed_kv(dep, ks):
    a, b = decode_step_coefficients(dep, len(ks))
    t = step_time(dep, StepBatch(decode_kv_lens=tuple(ks))).time_s
    assert t == pytest.approx(a + b * sum(ks), rel=1e-12, abs=0.0)
    assert a > 0 and b > 0


@settings(max_examples=100, deadline=None)
@given(dep=deployments(), ks=kv_lens, new=st.lists(st.integers(1, 4096), max_size=4),
       extra=st.integers(1, 10_000))
def test_more_work_never_takes_less_time(dep, ks, new, extra):
    base = StepBatch(prefill_new_tokens=tuple(new), decode_kv_lens=tuple(ks))
    t = step_time(dep, base).time_s
    longer_kv = StepBatch(prefill_new_tokens=tuple(new),
                          decode_kv_lens=(ks[0] + extra, *ks[1:]))
    more_seqs = StepBatch(prefill_new_tokens=tuple(new), decode_kv_lens=(*ks, extra))
    more_prefill = StepBatch(prefill_new_tokens=(*new, extra), decode_kv_lens=tuple(ks))
    assert step_time(dep, longer_kv).time_s >= t
    assert step_time(dep, more_seqs).time_s >= t
    assert step_time(dep, more_prefill).time_s >= t


@settings(max_examples=100, deadline=None)
@given(dep=deployments(), ks=st.lists(st.integers(0, 50_000), max_size=16),
       new=st.lists(st.integers(1, 4096), max_size=4), data=st.data())
def test_a_step_from_the_summed_kv_is_the_step_bit_for_bit(dep, ks, new, data):
    context = data.draw(st.lists(st.integers(0, 8192), min_size=len(new), max_size=len(new))
                        | st.just([]))
    batch = StepBatch(prefill_new_tokens=tuple(new), prefill_context=tuple(context),
                      decode_kv_lens=tuple(ks))
    assert step_time_s(dep, new, context, len(ks), sum(ks)) == step_time(dep, batch).time_s


@settings(max_examples=100, deadline=None)
@given(dep=deployments(), ks=kv_lens, new=st.lists(st.integers(1, 4096), max_size=4))
def test_cost_parts_are_consistent(dep, ks, new):
    cost = step_time(dep, StepBatch(prefill_new_tokens=tuple(new), decode_kv_lens=tuple(ks)))
    assert math.isfinite(cost.time_s) and cost.time_s > 0
    # Each group takes at least the longer of its compute and memory time, at most their sum.
    assert cost.time_s >= max(cost.compute_s, cost.memory_s) * (1 - 1e-12)
    assert cost.time_s >= cost.comm_s + cost.overhead_s
    assert cost.time_s <= cost.compute_s + cost.memory_s + cost.comm_s + cost.overhead_s + 1e-15
    from infersim.cost.pipeline import stage_plan

    plan = stage_plan(dep, StepBatch(prefill_new_tokens=tuple(new), decode_kv_lens=tuple(ks)))
    assert plan.latency_s == pytest.approx(cost.time_s, rel=1e-9)
    assert 0 < plan.bottleneck_s <= cost.time_s * (1 + 1e-12)
    if dep.pp == 1:
        assert plan.bottleneck_s == pytest.approx(cost.time_s - plan.host_s) or \
            plan.bottleneck_s == plan.host_s
