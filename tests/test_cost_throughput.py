"""Closed-form steady-state estimators: offline max-load throughput, online latency."""

from __future__ import annotations

import dataclasses
import math

import pytest

from infersim.cost import Deployment, decode_step_coefficients, placement, prefill_time
from infersim.cost.throughput import (
    TENSORRT_LLM,
    EngineConfig,
    fixed_lengths,
    lognormal_lengths,
    offline_throughput,
    online_latency,
    single_stream,
    vllm_060,
)
from infersim.errors import InfersimError
from infersim.hardware import load_hardware
from infersim.model import load_model

H100 = load_hardware("h100")
DEP = Deployment(model=load_model("llama-3.1-8b"), hardware=H100, precision="fp8")


def test_batch_is_capped_by_the_engine_then_by_kv_room():
    small = dataclasses.replace(TENSORRT_LLM, max_batch_size=32)
    est = offline_throughput(DEP, fixed_lengths(1000, 1000), small)
    assert est.batch_size == 32 and est.limited_by == "max_batch_size"
    est = offline_throughput(DEP, fixed_lengths(20000, 2000), TENSORRT_LLM)
    assert est.limited_by == "kv_capacity"
    # GUARANTEED_NO_EVICT reserves prompt + output for every running request.
    assert est.batch_size == placement(DEP).kv_capacity_tokens // 22000


def test_bigger_batches_raise_throughput_until_kv_runs_out():
    lengths = fixed_lengths(128, 2048)
    rates = [offline_throughput(DEP, lengths, dataclasses.replace(TENSORRT_LLM, max_batch_size=b))
             .output_tokens_per_s for b in (1, 8, 64, 256)]
    assert rates == sorted(rates)
    assert rates[-1] > 50 * rates[0]


def test_on_demand_kv_fits_more_requests_than_full_reservation():
    lengths = fixed_lengths(2000, 2000)
    full = dataclasses.replace(TENSORRT_LLM, max_batch_size=100_000)
    lazy = dataclasses.replace(full, kv_reservation="on_demand")
    assert offline_throughput(DEP, lengths, lazy).batch_size > offline_throughput(
        DEP, lengths, full).batch_size


def test_single_request_throughput_is_its_own_latency():
    # One request at a time, no overlap: a cycle is one prefill plus (out-1) decode steps.
    one = dataclasses.replace(TENSORRT_LLM, max_batch_size=1, mixed_batching=False)
    est = offline_throughput(DEP, fixed_lengths(500, 100), one)
    a, b = decode_step_coefficients(DEP, 1)
    cycle = prefill_time(DEP, (500,)) + 99 * (a + b * 550)
    assert est.output_tokens_per_s == pytest.approx(100 / cycle, rel=1e-9)


def test_online_latency_grows_with_load():
    lengths = lognormal_lengths(230, 200)
    engine = vllm_060(8192)
    low = online_latency(DEP, lengths, 1.0, engine)
    high = online_latency(DEP, lengths, 20.0, engine)
    assert high.running_batch > low.running_batch
    assert high.tpot_s > low.tpot_s and high.ttft_s > low.ttft_s
    # Little's law holds at the fixed point.
    assert low.running_batch == pytest.approx(1.0 * 200 * low.tpot_s, rel=1e-6)
    assert high.running_batch == pytest.approx(20.0 * 200 * high.tpot_s, rel=1e-6)


def test_online_overload_is_a_clear_error():
    with pytest.raises(InfersimError, match="rate: expected below"):
        online_latency(DEP, fixed_lengths(20000, 10), 1000.0, vllm_060(32768))
    with pytest.raises(InfersimError, match="rate"):
        online_latency(DEP, fixed_lengths(100, 10), 0.0, vllm_060())


def test_single_stream_is_prefill_then_decode_at_the_mean_context():
    ttft, itl = single_stream(DEP, 1000, 200)
    a, b = decode_step_coefficients(DEP, 1)
    assert ttft == prefill_time(DEP, (1000,))
    assert itl == pytest.approx(a + b * 1100)


def test_single_stream_refuses_a_request_whose_kv_does_not_fit():
    # Llama-2-7B fp16 on 9 GroqNodes (72 LPUs): the weights fit with 2,419 tokens of KV to
    # spare, so its full 4K context (3,584 + 512) cannot be served; 10 nodes hold 4,704 tokens.
    lpu = load_hardware("lpu")
    tight = Deployment(model=load_model("llama-2-7b"), hardware=lpu, precision="fp16", tp=8, pp=9)
    assert placement(tight).kv_capacity_tokens == 2419
    with pytest.raises(InfersimError, match=r"room for 2,419 tokens .* fewer than the 4,096 "
                                            r"required: use at least 80 chips"):
        single_stream(tight, 3584, 512)
    assert single_stream(tight, 2000, 419)[1] > 0  # exactly at the room: fine
    roomy = dataclasses.replace(tight, pp=10)
    assert single_stream(roomy, 3584, 512)[1] > 0
    # the memory fraction is the engine's: less of it, less room
    with pytest.raises(InfersimError, match="fewer than the 4,096 required"):
        single_stream(roomy, 3584, 512, memory_fraction=0.85)


def test_lognormal_moments():
    stats = lognormal_lengths(230, 200, sigma_input=1.0, sigma_output=0.5)
    assert stats.input_median == pytest.approx(230 * math.exp(-0.5))
    assert stats.output_sq == pytest.approx(200**2 * math.exp(0.25))
    assert stats.mean_decode_context == pytest.approx(230 + 200 * math.exp(0.25) / 2)
    assert fixed_lengths(100, 50).mean_decode_context == 125


def test_engine_config_is_validated():
    with pytest.raises(InfersimError, match=r"engine\.max_batch_size"):
        EngineConfig(name="x", max_batch_size=0, max_num_tokens=8, kv_reservation="full",
                     mixed_batching=True)
    with pytest.raises(InfersimError, match=r"engine\.kv_reservation"):
        EngineConfig(name="x", max_batch_size=1, max_num_tokens=8, kv_reservation="some",
                     mixed_batching=True)


# -- closed loop of users (AIPerf's concurrency mode) and one batch (vLLM benchmark_latency) --

def _tp2_70b_fp8() -> Deployment:
    return Deployment(model=load_model("llama-3.1-70b"), hardware=H100, precision="fp8", tp=2)


def test_one_user_alone_is_a_single_stream():
    from infersim.cost.throughput import TENSORRT_LLM, closed_loop, single_stream

    dep = _tp2_70b_fp8()
    est = closed_loop(dep, 5000, 500, 1, TENSORRT_LLM)
    ttft, itl = single_stream(dep, 5000, 500)
    assert est.running_batch == 1 and est.limited_by == "users"
    assert est.ttft_s == pytest.approx(ttft, rel=1e-12)
    assert est.tpot_s == pytest.approx(itl, rel=1e-12)
    assert est.e2e_s == pytest.approx(ttft + 499 * itl, rel=1e-12)


def test_closed_loop_knee_past_the_kv_room():
    """Past the users the KV cache holds, throughput stays flat, TPOT stays put and the extra
    users queue: TTFT grows by one slot time per batch-full of users (Little's law)."""
    from infersim.cost.throughput import TENSORRT_LLM, closed_loop

    dep = _tp2_70b_fp8()
    room = placement(dep).kv_capacity_tokens // 5500
    below = closed_loop(dep, 5000, 500, room // 2, TENSORRT_LLM)
    at = closed_loop(dep, 5000, 500, room, TENSORRT_LLM)
    past = [closed_loop(dep, 5000, 500, room + extra, TENSORRT_LLM) for extra in (50, 100)]
    assert below.limited_by == "users" and at.running_batch == room
    assert all(p.limited_by == "kv_capacity" and p.running_batch == room for p in past)
    assert below.output_tokens_per_s < at.output_tokens_per_s
    for p in past:
        assert p.output_tokens_per_s == pytest.approx(at.output_tokens_per_s, rel=1e-9)
        assert p.tpot_s == pytest.approx(at.tpot_s, rel=1e-12)
        # Little: users = throughput/out * e2e
        assert (room + (50 if p is past[0] else 100)) == pytest.approx(
            p.output_tokens_per_s / 500 * p.e2e_s, rel=1e-9)
    per_user = (past[1].ttft_s - past[0].ttft_s) / 50
    assert per_user == pytest.approx(500 / at.output_tokens_per_s, rel=1e-6)


def test_prompts_steal_decode_time_as_load_grows():
    from infersim.cost.throughput import TENSORRT_LLM, _decode_step, closed_loop

    dep = _tp2_70b_fp8()
    est = closed_loop(dep, 5000, 500, 50, TENSORRT_LLM)
    bare = _decode_step(dep, 50, 5250)
    # 5,000-token prompts at ~1.6 req/s keep the chips busy prefilling most of the time
    assert est.tpot_s > 1.5 * bare
    assert est.ttft_s > closed_loop(dep, 5000, 500, 5, TENSORRT_LLM).ttft_s


def test_batch_latency_is_one_prefill_and_the_decode_steps():
    from infersim.cost import StepBatch, step_time
    from infersim.cost.throughput import batch_latency

    dep = Deployment(model=load_model("llama-3.1-8b"), hardware=H100)
    # the first token comes from the prefill; tokens 2..128 each take a decode step whose
    # sequences attend to 33..159 cached tokens
    steps = sum(step_time(dep, StepBatch(decode_kv_lens=(k,) * 8)).time_s for k in range(33, 160))
    expected = prefill_time(dep, (32,) * 8) + steps
    assert batch_latency(dep, 8, 32, 128) == pytest.approx(expected, rel=1e-9)
