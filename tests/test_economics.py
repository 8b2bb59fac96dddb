"""Economics: the cluster is billed for every chip-hour; tokens share the bill by phase."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from infersim.economics import (
    SPLIT_RULE,
    ClassTokens,
    PoolUsage,
    cluster_economics,
    pool_economics,
)


def _pool(name="p", role="prefill", instances=2, chips=1, busy_s=0.0, price=2.0, tdp=700.0,
          idle=100.0, share=None) -> PoolUsage:
    return PoolUsage(name=name, role=role, instances=instances, chips_per_instance=chips,
                     busy_s=busy_s, price_per_chip_hour=price, tdp_watts=tdp, idle_watts=idle,
                     prefill_share=share)


def test_an_hour_of_a_pool_costs_chips_times_price():
    pe = pool_economics(_pool(instances=4, chips=2, price=3.0), duration_s=3600.0)
    assert pe.chips == 8
    assert pe.dollars_per_hour == 24.0
    assert pe.cost_usd == pytest.approx(24.0)


def test_energy_is_tdp_while_busy_and_idle_power_otherwise():
    # 2 instances of 1 chip for 10 s: 5 instance-seconds busy, 15 idle.
    pe = pool_economics(_pool(busy_s=5.0), duration_s=10.0)
    assert pe.energy_j == pytest.approx(5 * 700 + 15 * 100)
    assert pe.utilization == pytest.approx(0.25)
    assert pe.average_power_w == pytest.approx((5 * 700 + 15 * 100) / 10)


def test_every_summary_says_busy_chips_are_charged_tdp_as_an_upper_bound():
    # Busy means a step in progress, not saturation: a decode chip at a batch of 9 of 256 is
    # charged its TDP like one at 256, and the bill says so rather than passing it off as metered.
    rep = cluster_economics([_pool(busy_s=5.0)], 10.0, [ClassTokens("all", 1, 10, 10)])
    assert "TDP" in rep.split_rule and "upper bound" in rep.split_rule
    assert "whatever the batch" in rep.split_rule


def test_busy_time_above_capacity_is_clamped_not_negative_idle():
    pe = pool_economics(_pool(instances=1, busy_s=10.000001), duration_s=10.0)
    assert pe.utilization == 1.0
    assert pe.energy_j == pytest.approx(10 * 700)


def test_prefill_pays_for_input_and_decode_for_output():
    pools = [_pool("prefill", "prefill", instances=1, price=1.0),
             _pool("decode", "decode", instances=3, price=1.0)]
    rep = cluster_economics(pools, 3600.0, [ClassTokens("default", 10, 2_000_000, 500_000)])
    assert rep.dollars_per_hour == 4.0
    assert rep.input_cost_usd == pytest.approx(1.0)
    assert rep.output_cost_usd == pytest.approx(3.0)
    assert rep.usd_per_million_input_tokens == pytest.approx(0.5)
    assert rep.usd_per_million_output_tokens == pytest.approx(6.0)
    assert rep.usd_per_request == pytest.approx(0.4)
    assert rep.usd_per_million_tokens == pytest.approx(4.0 / 2.5)
    assert rep.split_rule == SPLIT_RULE


def test_mixed_pool_splits_by_prefill_share():
    rep = cluster_economics([_pool("m", "mixed", instances=1, price=10.0, share=0.3)], 3600.0,
                            [ClassTokens("default", 1, 1000, 1000)])
    assert rep.input_cost_usd == pytest.approx(3.0)
    assert rep.output_cost_usd == pytest.approx(7.0)


def test_mixed_pool_without_share_is_refused():
    with pytest.raises(ValueError, match="prefill_share"):
        _pool(role="mixed", share=None)


def test_joules_per_output_token_is_all_energy_over_output_tokens():
    rep = cluster_economics([_pool(instances=1, busy_s=1.0)], 1.0,
                            [ClassTokens("default", 1, 100, 7)])
    assert rep.energy_j == pytest.approx(700.0)
    assert rep.joules_per_output_token == pytest.approx(100.0)
    assert rep.joules_per_token == pytest.approx(700.0 / 107)


def test_no_delivered_tokens_gives_nan_not_zero_or_infinity():
    rep = cluster_economics([_pool()], 10.0, [ClassTokens("default", 0, 0, 0)])
    assert rep.cost_usd > 0
    assert math.isnan(rep.usd_per_million_output_tokens)
    assert math.isnan(rep.usd_per_request)


def test_the_coding_agent_and_the_summariser_pay_for_what_they_use():
    # Decode is dear, prefill cheap: the output-heavy class costs more per task.
    pools = [_pool("prefill", "prefill", instances=1, price=1.0),
             _pool("decode", "decode", instances=4, price=1.0)]
    coder = ClassTokens("coding-agent", 100, 100 * 500, 100 * 2000)
    summariser = ClassTokens("summariser", 100, 100 * 2000, 100 * 500)
    rep = cluster_economics(pools, 3600.0, [coder, summariser])
    by_name = {c.name: c for c in rep.classes}
    assert by_name["coding-agent"].usd_per_task > by_name["summariser"].usd_per_task
    assert sum(c.cost_usd for c in rep.classes) == pytest.approx(rep.cost_usd)
    assert sum(c.energy_j for c in rep.classes) == pytest.approx(rep.energy_j)
    d = rep.to_dict()
    assert set(d["classes"]) == {"coding-agent", "summariser"}
    assert set(d["pools"]) == {"prefill", "decode"}


pools_st = st.lists(
    st.builds(
        _pool,
        name=st.text("abc", min_size=1, max_size=3),
        role=st.sampled_from(["prefill", "decode", "mixed"]),
        instances=st.integers(1, 8), chips=st.integers(1, 8),
        busy_s=st.floats(0, 1000), price=st.floats(0.1, 50), tdp=st.floats(100, 2000),
        idle=st.floats(10, 100), share=st.floats(0.0, 1.0)),
    min_size=1, max_size=4)

_INPUT_SHARE = {"prefill": lambda p: 1.0, "decode": lambda p: 0.0,
                "mixed": lambda p: p.prefill_share}


@given(pools=pools_st, duration=st.floats(1.0, 100.0),
       tokens=st.tuples(st.integers(1, 10**6), st.integers(1, 10**6), st.integers(1, 10**4)))
def test_bill_invariants(pools, duration, tokens):
    inp, out, req = tokens
    rep = cluster_economics(pools, duration, [ClassTokens("default", req, inp, out)])
    # Every chip-hour is billed, and each pool's bill goes to input tokens by its role's share
    # (recomputed here from the pools, not from the report's own totals).
    bills = [p.chips * p.price_per_chip_hour * duration / 3600 for p in pools]
    shares = [_INPUT_SHARE[p.role](p) for p in pools]
    assert rep.cost_usd == pytest.approx(sum(bills))
    assert rep.input_cost_usd == pytest.approx(
        sum(b * s for b, s in zip(bills, shares, strict=True)), abs=1e-12)
    assert rep.output_cost_usd == pytest.approx(
        sum(b * (1 - s) for b, s in zip(bills, shares, strict=True)), abs=1e-12)
    assert rep.usd_per_million_input_tokens == pytest.approx(rep.input_cost_usd / inp * 1e6)
    assert rep.classes[0].cost_usd == pytest.approx(rep.cost_usd)
    # Energy lies between every chip idle and every chip at TDP for the whole span.
    max_energy = sum(p.chips * max(p.tdp_watts, p.idle_watts) for p in pools) * duration
    min_energy = sum(p.chips * min(p.tdp_watts, p.idle_watts) for p in pools) * duration
    assert min_energy * (1 - 1e-9) <= rep.energy_j <= max_energy * (1 + 1e-9)
    # Utilisation is busy time over capacity, busy time beyond capacity counted as full.
    for pe, p in zip(rep.pools, pools, strict=True):
        capacity = p.instances * duration
        assert pe.utilization == pytest.approx(min(p.busy_s, capacity) / capacity)
