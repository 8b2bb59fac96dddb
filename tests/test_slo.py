"""infersim.slo: the one place a request's or a run's SLO verdict is stated."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from infersim import slo
from infersim.errors import InfersimError
from infersim.scenario import load_scenario


def _latencies(ttft_s, tpot_s, e2e_s, max_gap_s):
    return slo.request_latencies_ms(np.array(ttft_s, dtype=float), np.array(tpot_s, dtype=float),
                                    np.array(e2e_s, dtype=float), np.array(max_gap_s, dtype=float))


def test_a_target_is_met_at_equality_and_missed_just_above():
    ms = _latencies([0.5, 0.5000001], [0.01, 0.01], [1.0, 1.0], [0.02, 0.02])
    assert slo.meets(ms, {"ttft_ms": 500.0}, among=np.array([True, True])).tolist() == [True, False]


def test_a_one_token_request_cannot_miss_tpot_or_itl():
    ms = _latencies([0.1], [np.nan], [0.1], [np.nan])
    assert slo.meets(ms, {"tpot_ms": 1e-9, "itl_ms": 1e-9}, among=np.array([True])).tolist() \
        == [True]


def test_requests_outside_among_never_meet():
    ms = _latencies([0.1, np.nan], [0.01, np.nan], [0.2, np.nan], [0.02, np.nan])
    assert slo.meets(ms, {}, among=np.array([True, False])).tolist() == [True, False]


@given(st.lists(st.tuples(st.floats(0, 10), st.floats(0, 1), st.floats(0, 20), st.floats(0, 1)),
                min_size=1, max_size=30),
       st.dictionaries(st.sampled_from(slo.SLO_KEYS), st.floats(1e-3, 2e4), max_size=4))
def test_meeting_every_target_is_meeting_each_one(rows, targets):
    ttft, tpot, e2e, gap = (np.array(c) for c in zip(*rows, strict=True))
    ms = slo.request_latencies_ms(ttft, tpot, e2e, gap)
    among = np.ones(len(rows), dtype=bool)
    every = slo.meets(ms, targets, among=among)
    each = np.logical_and.reduce([slo.meets(ms, {k: v}, among=among) for k, v in targets.items()]
                                 or [among])
    assert (every == each).all()
    # a looser target never loses a request
    looser = {k: v * 2 for k, v in targets.items()}
    assert (slo.meets(ms, looser, among=among) >= every).all()


def test_a_run_misses_a_target_it_has_no_value_for():
    assert slo.target_met(50.0, 50.0) and not slo.target_met(50.1, 50.0)
    assert not slo.target_met(math.nan, 50.0)


@pytest.mark.parametrize("given_slo, message", [
    ({"ttft": 100}, r"^slo\.ttft: expected one of ttft_ms, tpot_ms, itl_ms, e2el_ms, percentile"),
    ({"itl_ms": True}, r"^slo\.itl_ms: expected a number > 0, got True$"),
    ({"percentile": 0}, r"^slo\.percentile: expected a number > 0 and <= 100, got 0$"),
])
def test_bad_targets_are_named(given_slo, message):
    with pytest.raises(InfersimError, match=message):
        slo.check_slo(given_slo)


def test_check_slo_drops_unset_targets_and_keeps_order():
    assert list(slo.check_slo({"itl_ms": 50, "ttft_ms": None, "percentile": 90})) == \
        ["itl_ms", "percentile"]


def test_percentile_keys_name_the_summary_field():
    assert slo.percentile_key("ttft", 99.0) == "p99_ttft_ms"
    assert slo.percentile_key("itl", 99.9) == "p99.9_itl_ms"
    assert slo.SLO(ttft_ms=1.0, percentile=90).summary_key("ttft") == "p90_ttft_ms"


def test_a_scenario_states_its_own_targets_else_its_workloads():
    own = load_scenario("default")
    assert slo.stated_targets(own) == {"ttft_ms": 1000.0, "itl_ms": 50.0}
    assert slo.slo_of(own).targets() == {"ttft": 1000.0, "itl": 50.0}
    borrowed = load_scenario("default", overrides=["slo={}", "workload.slo={tpot_ms: 30}"])
    assert slo.stated_targets(borrowed) == {"tpot_ms": 30.0}
    assert slo.slo_of(borrowed, attainment=0.5) == slo.SLO(tpot_ms=30.0, attainment=0.5)


def test_classes_are_held_to_their_own_targets_else_the_scenarios():
    sc = load_scenario("workload-mix", overrides=[
        "workload.mix={classes: [{name: agent, weight: 0.5, mix: coding-agent, "
        "slo: {ttft_ms: 2000}}, {name: chat, weight: 0.5, mix: chat}]}"])
    assert slo.class_targets(sc) == {"agent": {"ttft_ms": 2000.0},
                                     "chat": {"ttft_ms": 2000.0, "itl_ms": 50.0}}


def test_a_run_verdict_names_the_first_failure():
    summary = {"completed": 10, "p99_ttft_ms": 400.0, "p99_itl_ms": 60.0,
               "request_throughput": 2.0, "request_goodput": 2.0}
    target = slo.SLO(ttft_ms=500, itl_ms=50)
    assert slo.slo_verdict(summary, target, 10) == (False, "p99_itl_ms 60.0 > 50")
    assert slo.slo_verdict(summary, target, 11) == (False, "1 of 11 requests did not complete")
    summary["p99_itl_ms"] = 50.0
    assert slo.slo_verdict(summary, target, 10) == (True, "")
    summary["request_goodput"] = 1.0
    assert slo.slo_verdict(summary, target, 10) == (False, "50% of requests within every SLO < 90%")
    with pytest.raises(InfersimError, match=r"^slo\.ttft_ms: expected a percentile"):
        slo.slo_verdict(summary, slo.SLO(ttft_ms=500, percentile=95), 10)
