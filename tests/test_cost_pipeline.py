"""Pipeline parallelism (infersim.cost.pipeline): stages overlap micro-batches; the token clock
is exact; SRAM machines span chips by stages and refuse more stages than layers."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.cost import Deployment, StepBatch, check_layout, placement, step_time
from infersim.cost.pipeline import (
    StagePlan,
    cycle_s,
    layers_per_stage,
    micro_batches_in_flight,
    pipelined_prefill_s,
    pipelined_tokens_per_s,
    stage_plan,
    steady_token_times,
    token_times,
)
from infersim.errors import InfersimError
from infersim.hardware import load_hardware
from infersim.model import load_model


def test_layers_split_as_evenly_as_they_divide():
    assert layers_per_stage(80, 4) == (20, 20, 20, 20)
    assert layers_per_stage(80, 3) == (27, 27, 26)
    assert layers_per_stage(32, 32) == (1,) * 32
    with pytest.raises(InfersimError, match="between 1 and 80"):
        layers_per_stage(80, 81)


def test_more_stages_than_layers_is_one_line_error():
    with pytest.raises(InfersimError) as err:
        Deployment(model=load_model("llama-3.1-8b"), hardware=load_hardware("lpu"), pp=33)
    message = str(err.value)
    assert "\n" not in message
    assert "pp" in message and "at most 32" in message and "33" in message


def test_wse3_takes_no_tensor_parallelism_across_wafers():
    wse3, model = load_hardware("wse3"), load_model("llama-3.1-70b")
    with pytest.raises(InfersimError, match="Ethernet"):
        check_layout(model, wse3, 4, 1)
    check_layout(model, wse3, 1, 4)  # four wafers in a pipeline: what Cerebras runs


@pytest.mark.parametrize("chip, model, precision, tp, pp", [
    ("wse3", "llama-3.1-70b", "bf16", 1, 4),
    ("lpu", "llama-2-70b", "int8", 8, 72),
    ("h100", "llama-3.1-70b", "bf16", 4, 2),
])
def test_stage_plan_adds_up_to_the_step(chip, model, precision, tp, pp):
    dep = Deployment(model=load_model(model), hardware=load_hardware(chip), precision=precision,
                     tp=tp, pp=pp)
    for batch in (StepBatch(decode_kv_lens=(2048,) * 4),
                  StepBatch(prefill_new_tokens=(1000,), decode_kv_lens=(100,))):
        plan = stage_plan(dep, batch)
        assert len(plan.stage_s) == pp and len(plan.hop_s) == pp - 1
        assert plan.latency_s == pytest.approx(step_time(dep, batch).time_s, rel=1e-12)
        assert plan.bottleneck_s == max(*plan.stage_s, plan.host_s)
        layers = layers_per_stage(dep.model.num_layers, pp)
        if len(set(layers)) == 1:  # equal stages: the last one (with the lm_head) is slowest
            assert plan.bottleneck_s == plan.stage_s[-1]
        else:                      # 80 layers on 72 stages: the two-layer stages are
            assert plan.bottleneck_s == plan.stage_s[0]


@pytest.mark.parametrize("chip, model, precision, tp, pp", [
    ("wse3", "llama-3.1-70b", "bf16", 1, 4),
    ("lpu", "llama-2-70b", "int8", 8, 80),   # one layer per GroqNode: balanced stages
])
def test_sram_70b_throughput_rises_with_micro_batches_up_to_the_stage_count(
        chip, model, precision, tp, pp):
    """The issue's acceptance test: aggregate decode throughput of a 70B deployment on WSE-3
    and on LPU grows with in-flight micro-batches up to the stage count, then stays flat: it is
    bounded by stage time, not by one serial walk of the pipeline."""
    dep = Deployment(model=load_model(model), hardware=load_hardware(chip), precision=precision,
                     tp=tp, pp=pp)
    plan = stage_plan(dep, StepBatch(decode_kv_lens=(1024,)))
    rates = [pipelined_tokens_per_s(plan, m, 1) for m in range(1, pp + 3)]
    serial = rates[0]
    assert serial == pytest.approx(1.0 / step_time(dep, StepBatch(decode_kv_lens=(1024,))).time_s)
    for m in range(1, pp):
        assert rates[m] > rates[m - 1]
    # past the stage count nothing more overlaps
    assert rates[pp + 1] == pytest.approx(rates[pp], rel=1e-12)
    # and at the stage count the gain is nearly the stage count (stages balanced, hops small)
    assert rates[pp - 1] / serial > 0.8 * pp


def test_uneven_stages_saturate_when_the_slowest_stage_is_always_busy():
    # 80 layers on 72 GroqNodes: 8 stages hold two layers, and they set the pace
    dep = Deployment(model=load_model("llama-2-70b"), hardware=load_hardware("lpu"),
                     precision="int8", tp=8, pp=72)
    plan = stage_plan(dep, StepBatch(decode_kv_lens=(1024,)))
    saturation = plan.latency_s / plan.bottleneck_s
    assert 30 < saturation < 72
    rates = [pipelined_tokens_per_s(plan, m, 1) for m in range(1, 80)]
    for m in range(1, 79):
        if m + 1 <= saturation:
            assert rates[m] > rates[m - 1]
        elif m >= saturation:
            assert rates[m] == pytest.approx(1.0 / plan.bottleneck_s)


def test_micro_batches_are_bounded_by_stages_sequences_and_memory():
    assert micro_batches_in_flight(4, 100) == 4
    assert micro_batches_in_flight(4, 2) == 2
    assert micro_batches_in_flight(4, 100, kv_room_sequences=3) == 3
    assert micro_batches_in_flight(4, 0) == 1
    # on the WSE-3's four wafers, a 70B model's KV room is what bounds the micro-batches
    dep = Deployment(model=load_model("llama-3.1-70b"), hardware=load_hardware("wse3"), pp=4)
    room = placement(dep).kv_capacity_tokens // 8192
    assert micro_batches_in_flight(4, 64, kv_room_sequences=room) == min(4, room)


def test_exact_token_clock_on_balanced_stages_matches_the_closed_form():
    plan = StagePlan(host_s=1.0, stage_s=(1.0, 1.0, 1.0), hop_s=(0.5, 0.5))
    assert plan.latency_s == 5.0 and plan.bottleneck_s == 1.0
    for m in (1, 2, 4, 5, 7):
        exact = token_times(plan, m, 6)
        closed = steady_token_times(plan, m, 6)
        for j in range(m):
            assert exact[j] == pytest.approx(closed[j], rel=1e-12), (m, j)
        # the first token of micro-batch 0 comes after every stage and hop
        assert exact[0][0] == plan.latency_s
        assert exact[0][1] - exact[0][0] == cycle_s(plan, m) == max(5.0, m * 1.0)


@settings(max_examples=60, deadline=None)
@given(stages=st.lists(st.floats(0.01, 2.0), min_size=1, max_size=6),
       host=st.floats(0.0, 1.0), hop=st.floats(0.0, 0.5), m=st.integers(1, 8))
def test_recurrence_settles_into_the_pipeline_cycle(stages, host, hop, m):
    """Whatever the stage times, every token leaves after a full latency, and in steady state
    a micro-batch's tokens come one cycle apart (the cyclic flow shop's period)."""
    plan = StagePlan(host_s=host, stage_s=tuple(stages), hop_s=(hop,) * (len(stages) - 1))
    times = token_times(plan, m, 3 * m + 6)
    for j in range(m):
        gaps = [b - a for a, b in zip(times[j], times[j][1:], strict=False)]
        assert all(g >= plan.latency_s * (1 - 1e-9) for g in gaps)
        assert gaps[-1] == pytest.approx(cycle_s(plan, m), rel=1e-6)
    assert min(t[0] for t in times) == pytest.approx(plan.latency_s)


def test_long_prompt_chunks_flow_through_the_stages():
    dep = Deployment(model=load_model("llama-3.1-70b"), hardware=load_hardware("wse3"), pp=4)
    whole = step_time(dep, StepBatch(prefill_new_tokens=(8192,))).time_s
    assert pipelined_prefill_s(dep, [8192]) == pytest.approx(whole, rel=1e-12)
    chunked = pipelined_prefill_s(dep, [2048] * 4)
    assert chunked < whole  # chunks overlap across the four wafers
    with pytest.raises(InfersimError):
        pipelined_prefill_s(dep, [])


@settings(max_examples=40, deadline=None)
@given(layout=st.sampled_from([("wse3", "llama-3.1-70b", "bf16", 1, 4),
                               ("wse3", "llama-3.1-8b", "bf16", 1, 2),
                               ("lpu", "llama-2-70b", "int8", 8, 80),
                               ("lpu", "llama-2-70b", "int8", 8, 72),
                               ("h100", "llama-3.1-70b", "bf16", 4, 2),
                               ("trainium2", "llama-3.1-70b", "bf16", 16, 5)]),
       per_micro=st.integers(1, 8), rounds=st.integers(1, 3), context=st.integers(1, 8000))
def test_decode_round_is_the_pipeline_cycle_in_closed_form(layout, per_micro, rounds, context):
    """One decode round of n sequences in m = min(pp, n) micro-batches takes a + b·ΣKV with
    the (a, b) the engine can jump over: the pipeline cycle exactly for even layer splits,
    never below it otherwise."""
    from infersim.cost.pipeline import decode_round_coefficients

    chip, model, precision, tp, pp = layout
    dep = Deployment(model=load_model(model), hardware=load_hardware(chip), precision=precision,
                     tp=tp, pp=pp)
    micro = min(pp, rounds * pp)
    n = micro * per_micro
    a, b = decode_round_coefficients(dep, n)
    plan = stage_plan(dep, StepBatch(decode_kv_lens=(context,) * per_micro))
    exact = cycle_s(plan, micro)
    got = a + b * context * n
    if dep.model.num_layers % pp == 0:
        assert got == pytest.approx(exact, rel=1e-9)
    else:
        assert got >= exact * (1 - 1e-9)
        assert got <= 1.25 * exact


def test_decode_round_without_pipeline_is_the_step():
    from infersim.cost import decode_step_coefficients
    from infersim.cost.pipeline import decode_round_coefficients

    dep = Deployment(model=load_model("llama-3.1-8b"), hardware=load_hardware("h100"))
    assert decode_round_coefficients(dep, 7) == decode_step_coefficients(dep, 7)


@pytest.mark.parametrize("chip, model, precision, tp, pp", [
    ("wse3", "llama-3.1-70b", "bf16", 1, 4),
    ("lpu", "llama-2-70b", "int8", 8, 80),
])
def test_sram_70b_offline_throughput_is_bounded_by_kv_and_stage_time(chip, model, precision, tp,
                                                                     pp):
    """The estimator keeps max_batch_size sequences per stage in flight, so a pipelined SRAM
    deployment is bounded by its KV room (and the pipeline cycle), not by one serial walk of a
    max_batch_size batch."""
    import dataclasses

    from infersim.cost.throughput import TENSORRT_LLM, fixed_lengths, offline_throughput

    dep = Deployment(model=load_model(model), hardware=load_hardware(chip), precision=precision,
                     tp=tp, pp=pp)
    engine = dataclasses.replace(TENSORRT_LLM, max_batch_size=4)
    lengths = fixed_lengths(256, 256)
    est = offline_throughput(dep, lengths, engine)
    room = placement(dep).kv_capacity_tokens // 512
    assert est.batch_size == min(4 * pp, room)
    assert est.limited_by == ("kv_capacity" if room < 4 * pp else "max_batch_size")
    # one decode round of the whole batch is one pipeline cycle of a micro-batch
    micro = min(pp, est.batch_size)
    plan = stage_plan(dep, StepBatch(decode_kv_lens=(384,) * -(-est.batch_size // micro)))
    assert est.decode_step_s == pytest.approx(cycle_s(plan, micro), rel=1e-12)
    one_stage_batch = offline_throughput(dep, lengths, dataclasses.replace(engine,
                                                                           max_batch_size=1))
    assert est.output_tokens_per_s > one_stage_batch.output_tokens_per_s
