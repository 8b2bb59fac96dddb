"""Placement of weights and KV cache, fit checks, KV sizes and transfer times."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.cost import (
    Deployment,
    advised_layout,
    check_fits,
    check_layout,
    kv_cache_bytes,
    kv_transfer_time,
    min_chips,
    placement,
    smallest_layout,
    valid_tensor_parallel,
)
from infersim.errors import InfersimError
from infersim.hardware import load_hardware
from infersim.model import load_model

H100 = load_hardware("h100")


def test_llama_70b_does_not_fit_one_h100_and_says_how_many_it_needs():
    dep = Deployment(model=load_model("llama-3.1-70b"), hardware=H100)
    with pytest.raises(InfersimError) as err:
        check_fits(dep, field="pools.decode.deployment")
    assert str(err.value) == (
        "pools.decode.deployment: llama-3.1-70b bf16 needs 141 GB of weights; 1× h100 holds "
        "72 GB at memory_fraction 0.9: use at least 2 chips (tp·pp)")
    assert placement(dep).min_chips == 2
    assert check_fits(Deployment(model=load_model("llama-3.1-70b"), hardware=H100, tp=2)).fits


def test_kv_capacity_is_what_the_weights_leave():
    dep = Deployment(model=load_model("llama-3-8b"), hardware=H100)
    place = placement(dep)
    free = 0.9 * 80e9 - 16_060_522_496
    assert place.kv_capacity_tokens == math.floor(free / 131072)
    assert place.kv_capacity_bytes == pytest.approx(free)
    # Half the memory: less KV room, by exactly the fraction given up.
    half = placement(dep, memory_fraction=0.45)
    assert half.kv_capacity_tokens == math.floor((0.45 * 80e9 - 16_060_522_496) / 131072)


def test_gqa_kv_stops_splitting_beyond_the_kv_heads():
    # Llama-3.1-70B has 8 KV heads: TP 16 replicates them, so KV room per chip stops growing.
    model = load_model("llama-3.1-70b")
    b200 = load_hardware("b200")
    tp8 = placement(Deployment(model=model, hardware=b200, tp=8))
    tp16 = placement(Deployment(model=model, hardware=b200, tp=16))
    per_chip_8 = tp8.kv_capacity_bytes / tp8.kv_capacity_tokens / 8
    per_chip_16 = tp16.kv_capacity_bytes / tp16.kv_capacity_tokens / 16
    assert per_chip_16 == pytest.approx(per_chip_8, rel=1e-3)


def test_sram_machines_need_many_chips():
    llama70 = load_model("llama-3.1-70b")
    # 141 GB over 44 GB wafers at 0.9 -> 4 CS-3 (Cerebras serves 70B on four).
    assert min_chips(Deployment(model=llama70, hardware=load_hardware("wse3"))) == 4
    lpu = load_hardware("lpu")
    need = min_chips(Deployment(model=load_model("llama-2-7b"), hardware=lpu, precision="fp16"))
    assert need == math.floor(load_model("llama-2-7b").weight_bytes("fp16") / (0.9 * 230e6)) + 1
    assert 60 <= need <= 70
    assert placement(Deployment(model=load_model("llama-2-7b"), hardware=lpu, precision="fp16",
                                tp=8, pp=math.ceil(need / 8))).fits


def test_kv_room_shortfall_is_reported_with_the_chips_needed():
    dep = Deployment(model=load_model("llama-3.1-70b"), hardware=H100, tp=2)
    tokens = placement(dep).kv_capacity_tokens
    with pytest.raises(InfersimError, match=r"use at least \d+ chips \(tp·pp\)") as err:
        check_fits(dep, min_kv_tokens=10 * tokens)
    need = int(re.search(r"use at least (\d+) chips", str(err.value)).group(1))
    assert need % 2 == 0  # the advice keeps tp 2 and adds stages
    bigger = Deployment(model=dep.model, hardware=H100, tp=2, pp=need // 2)
    assert check_fits(bigger, min_kv_tokens=10 * tokens).fits
    smaller = Deployment(model=dep.model, hardware=H100, tp=2, pp=need // 2 - 1)
    assert placement(smaller).kv_capacity_tokens < 10 * tokens
    assert check_fits(dep, min_kv_tokens=tokens).kv_capacity_tokens == tokens


def test_memory_fraction_is_validated():
    dep = Deployment(model=load_model("llama-3-8b"), hardware=H100)
    with pytest.raises(InfersimError, match="memory_fraction: expected a fraction in"):
        placement(dep, memory_fraction=1.5)


def test_kv_cache_bytes_follow_the_kv_precision():
    model = load_model("llama-3.1-8b")
    bf16 = Deployment(model=model, hardware=H100)
    fp8 = Deployment(model=model, hardware=H100, precision="fp8")
    assert kv_cache_bytes(bf16, 1000) == 1000 * 32 * 8 * 128 * 2 * 2
    assert kv_cache_bytes(fp8, 1000) == kv_cache_bytes(bf16, 1000) / 2
    # MLA caches one latent per token: DeepSeek-V3 needs (512 + 64) x 61 layers.
    mla = Deployment(model=load_model("deepseek-v3"), hardware=H100, precision="fp8")
    assert kv_cache_bytes(mla, 1) == (512 + 64) * 61


def test_kv_transfer_time_is_latency_plus_serialisation():
    assert kv_transfer_time(50e9, 50e9, 1e-5) == pytest.approx(1.0 + 1e-5)
    assert kv_transfer_time(0, 50e9, 1e-5) == 1e-5
    with pytest.raises(InfersimError, match="bandwidth"):
        kv_transfer_time(1e6, 0.0, 1e-5)
    with pytest.raises(InfersimError, match="latency_s"):
        kv_transfer_time(1e6, 1e9, -1.0)


# ---- advice: the smallest layout a serving engine can run ---------------------------------------

_ADVICE_MODELS = [load_model(n) for n in ("llama-3.1-8b", "llama-3.1-70b", "mixtral-8x7b",
                                          "qwen3-32b", "llama-2-7b")]
_ADVICE_CHIPS = [load_hardware(n) for n in ("h100", "a100", "lpu", "wse3", "trainium2")]


@settings(max_examples=40, deadline=None)
@given(model=st.sampled_from(_ADVICE_MODELS), chip=st.sampled_from(_ADVICE_CHIPS),
       kv_tokens=st.integers(1, 300_000))
def test_smallest_layout_runs_holds_the_budget_and_nothing_smaller_does(model, chip, kv_tokens):
    dep = Deployment(model=model, hardware=chip, precision="fp16" if chip.name == "lpu" else "bf16")
    layout = smallest_layout(dep, 0.9, kv_tokens)

    def room(tp: int, pp: int) -> int:
        return placement(Deployment(model=model, hardware=chip, precision=dep.precision, tp=tp,
                                    pp=pp)).kv_capacity_tokens

    runnable = [(tp, pp) for tp in valid_tensor_parallel(model, chip)
                for pp in range(1, model.num_layers + 1)]
    holding = [(tp * pp, pp, tp) for tp, pp in runnable if room(tp, pp) >= kv_tokens]
    if layout is None:
        assert not holding
        return
    check_layout(model, chip, layout.tp, layout.pp)  # one the scenario accepts
    assert layout.kv_capacity_tokens == room(layout.tp, layout.pp) >= kv_tokens
    assert (layout.chips, layout.pp, layout.tp) == min(holding)


def test_advice_keeps_the_users_tp_when_it_can_run_and_changes_it_when_it_cannot():
    llama70 = load_model("llama-3.1-70b")
    at_tp2 = Deployment(model=llama70, hardware=H100, tp=2)
    # 131,136 tokens: tp 2 × pp 2 does (4 chips); tp 1 × pp 3 would too, with fewer chips, but
    # the user chose tp 2 (latency) and it runs.
    kept = advised_layout(at_tp2, 0.9, 131_136)
    assert (kept.tp, kept.pp) == (2, 2)
    assert smallest_layout(at_tp2, 0.9, 131_136).chips == 3
    # tp 1 on LPUs: no pp <= 32 layers holds Llama-3.1-8B, so the advice picks another tp.
    lpu = load_hardware("lpu")
    llama8 = load_model("llama-3.1-8b")
    moved = advised_layout(Deployment(model=llama8, hardware=lpu), 0.9, 4096)
    assert moved.tp != 1 and moved.pp <= llama8.num_layers
    with pytest.raises(InfersimError, match=r"use at least 84 chips: tp 4 × pp 21 holds the "
                                            r"weights and 4,096 tokens of KV$"):
        check_fits(Deployment(model=llama8, hardware=lpu))


def test_advice_when_no_runnable_layout_holds_the_model():
    # A billion tokens of KV for Llama-3.1-405B on A100s: tp stops at one 8-GPU domain and pp
    # at 126 layers, and even 1,008 chips do not hold it.
    a100 = load_hardware("a100")
    huge = Deployment(model=load_model("llama-3.1-405b"), hardware=a100)
    assert smallest_layout(huge, 0.9, 10**9) is None
    with pytest.raises(InfersimError, match=r"no layout an engine can run holds it .*\(tp at "
                                            r"most 8 within one a100 scale-up domain, pp at "
                                            r"most 126 layers"):
        check_fits(huge, min_kv_tokens=10**9)
