"""The summary speaks vLLM bench's language, and its ITL figures are those of the raw gaps."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.errors import InfersimError
from infersim.metrics import summarize
from infersim.sim import simulate_cluster, weighted_percentile
from tests.strategies import pd_cluster, table

VLLM_KEYS = ["completed", "failed", "duration", "request_throughput", "output_throughput",
             "total_token_throughput"] + [f"{stat}_{metric}_ms" for metric in
                                          ("ttft", "tpot", "itl", "e2el")
                                          for stat in ("mean", "median", "std", "p50", "p90",
                                                       "p99")]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 10), st.integers(1, 20)), min_size=1, max_size=30),
       st.floats(0, 100))
def test_weighted_percentile_is_numpys_on_the_expanded_values(pairs, q):
    pairs.sort()
    values = np.array([v for v, _ in pairs])
    counts = np.array([c for _, c in pairs])
    expected = np.percentile(np.repeat(values, counts), q)
    assert weighted_percentile(values, counts, q) == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.fixture(scope="module")
def run():
    rng = np.random.default_rng(5)
    n = 120
    work = table(np.cumsum(rng.exponential(0.01, n)), rng.integers(10, 1500, n),
                 rng.integers(1, 120, n))
    return simulate_cluster(pd_cluster(decode=2, kv_tokens=5000), work, seed=0)


def test_summary_has_vllm_keys_and_values(run):
    summary = summarize(run)
    assert all(key in summary for key in VLLM_KEYS)
    df = run.requests
    done = df[df.completed]
    assert summary["completed"] == len(done) == 120 and summary["failed"] == 0
    assert summary["duration"] == run.duration_s == done.last_token_at.max()
    assert summary["request_throughput"] == pytest.approx(120 / run.duration_s)
    assert summary["output_throughput"] == pytest.approx(done.output_tokens.sum()
                                                         / run.duration_s)
    assert summary["total_token_throughput"] == pytest.approx(
        (done.output_tokens.sum() + done.prompt_tokens.sum()) / run.duration_s)
    assert summary["mean_ttft_ms"] == pytest.approx(done.ttft_s.mean() * 1e3)
    assert summary["p99_e2el_ms"] == pytest.approx(np.percentile(done.e2e_s, 99) * 1e3)
    tpot = [(r.e2e_s - r.ttft_s) / (r.output_tokens - 1) for r in done.itertuples()
            if r.output_tokens > 1]
    assert summary["median_tpot_ms"] == pytest.approx(np.median(tpot) * 1e3)
    assert summary["median_ttft_ms"] == summary["p50_ttft_ms"]


def test_itl_pools_every_gap_of_every_request(run):
    summary = summarize(run)
    raw = np.concatenate([np.diff(run.token_times(r)) for r in range(len(run.requests))]) * 1e3
    assert len(raw) == (run.requests.output_tokens - 1).sum()
    assert summary["mean_itl_ms"] == pytest.approx(raw.mean(), rel=1e-9)
    assert summary["std_itl_ms"] == pytest.approx(raw.std(), rel=1e-6)
    for p in (50, 90, 99):
        assert summary[f"p{p}_itl_ms"] == pytest.approx(np.percentile(raw, p), rel=1e-9)
    # ITL weighs long requests more than TPOT does: the two differ
    assert summary["mean_itl_ms"] != pytest.approx(summary["mean_tpot_ms"], rel=1e-6)


def test_goodput_counts_requests_meeting_every_slo(run):
    df = run.requests
    slo = {"ttft_ms": float(np.median(df.ttft_s) * 1e3), "itl_ms": 12.0, "percentile": 90}
    summary = summarize(run, slo)
    max_gap = np.array([np.diff(run.token_times(r)).max() if df.output_tokens[r] > 1 else 0.0
                        for r in range(len(df))])
    meets = (df.ttft_s * 1e3 <= slo["ttft_ms"]) & (max_gap * 1e3 <= slo["itl_ms"])
    assert 0 < meets.sum() < len(df)
    assert summary["request_goodput"] == pytest.approx(meets.sum() / run.duration_s)
    ttft = summary["slo_attainment"]["ttft_ms"]
    assert ttft["value"] == pytest.approx(np.percentile(df.ttft_s * 1e3, 90))
    assert ttft["met"] is False
    np.testing.assert_allclose(run.max_token_gap()[df.output_tokens > 1],
                               max_gap[df.output_tokens > 1], rtol=1e-12)


def test_failed_counts_rejected_and_in_flight():
    result = simulate_cluster(pd_cluster(queue_limit=1), table(np.zeros(6), [3000] * 6,
                                                               [400] * 6),
                              seed=0, time_limit_s=0.5)
    summary = summarize(result)
    extras = summary["infersim"]
    assert summary["completed"] + summary["failed"] == 6
    assert extras["rejected"] == 5 and extras["in_flight_at_stop"] == 1
    assert summary["duration"] == 0.5


def test_simulator_extras(run):
    extras = summarize(run)["infersim"]
    assert set(extras["utilization"]) == {"prefill", "decode"}
    assert 0 < extras["utilization"]["prefill"] < 1
    assert extras["kv_transfer"]["transfers"] == (run.requests.output_tokens > 1).sum()
    assert extras["chips"] == {"prefill": 1, "decode": 2}


@pytest.mark.parametrize("slo, message", [
    ({"ttft": 100}, r"^slo\.ttft: expected one of ttft_ms, tpot_ms, itl_ms, e2el_ms, "
                    r"percentile, got 'ttft'$"),
    ({"ttft_ms": -1}, r"^slo\.ttft_ms: expected a number > 0, got -1$"),
    ({"percentile": 120}, r"^slo\.percentile: expected a number > 0 and <= 100, got 120$"),
])
def test_bad_slo_is_named(run, slo, message):
    with pytest.raises(InfersimError, match=message):
        summarize(run, slo)
