"""Report outputs on tiny synthetic tables: phases add up, files are reproducible, plots exist."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.report import plots
from infersim.report.outputs import dumps_summary, json_ready, write_parquet
from infersim.report.tables import compare_rows, compare_table, summary_table


def _requests() -> pd.DataFrame:
    """Three requests: disaggregated (with transfer), disaggregated, and a mixed-pool one."""
    nan = float("nan")
    return pd.DataFrame({
        "request_id": [0, 1, 2],
        "class_name": pd.Categorical(["agent", "summary", "agent"]),
        "arrival_at": [0.0, 1.0, 2.0],
        "prefill_start_at": [0.1, 1.0, 2.5],
        "first_token_at": [0.3, 1.4, 2.9],
        "kv_transfer_start_at": [0.35, 1.4, nan],
        "kv_transfer_end_at": [0.40, 1.5, nan],
        "decode_start_at": [0.45, 1.5, 2.9],
        "last_token_at": [1.45, 2.0, 3.9],
        "completed": [True, True, True],
    })


def test_phases_add_up_to_end_to_end_latency():
    req = _requests()
    phases = plots.request_phases(req)
    e2e = req["last_token_at"] - req["arrival_at"]
    np.testing.assert_allclose(phases.sum(axis=1), e2e)
    # request 0: 0.1 s in the prefill queue + 0.05 s before its transfer + 0.05 s after it
    assert phases.loc[0, "wait_s"] == pytest.approx(0.2)
    assert phases.loc[0, "transfer_s"] == pytest.approx(0.05)
    assert phases.loc[2, "transfer_s"] == 0.0  # mixed pool: no transfer
    assert (phases >= -1e-12).all().all()


def test_phases_of_a_first_token_sent_at_decode_admission():
    # first_token_from: decode — the client's first token is the decode admission, after the
    # transfer and a wait for a slot; the prefill ended at prefill_end_at, earlier.
    req = _requests()
    req["prefill_end_at"] = [0.3, 1.4, math.nan]   # mixed request 2: prefill ends at its first token
    req["first_token_at"] = [0.45, 1.5, 2.9]
    phases = plots.request_phases(req)
    np.testing.assert_allclose(phases.sum(axis=1), req["last_token_at"] - req["arrival_at"])
    assert phases.loc[0, "prefill_s"] == pytest.approx(0.2)
    assert phases.loc[0, "wait_s"] == pytest.approx(0.2)  # 0.1 queued + 0.1 around the transfer
    assert phases.loc[1, "prefill_s"] == pytest.approx(0.4)
    assert phases.loc[2, "prefill_s"] == pytest.approx(0.4)
    assert (phases >= -1e-12).all().all()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(*[st.floats(0, 10)] * 6), min_size=1, max_size=20))
def test_phases_are_their_intervals_and_sum_to_e2e_for_any_ordered_instants(rows):
    instants = []
    for row in rows:
        a, q, p, t0, t, d = row
        arrival = a
        start = arrival + q
        first = start + p
        transfer_start = first + t0
        transfer_end = transfer_start + t
        instants.append((arrival, start, first, transfer_start, transfer_end, transfer_end + d,
                         transfer_end + d + 1.0))
    cols = ["arrival_at", "prefill_start_at", "first_token_at", "kv_transfer_start_at",
            "kv_transfer_end_at", "decode_start_at", "last_token_at"]
    req = pd.DataFrame(instants, columns=cols)
    phases = plots.request_phases(req)
    # The four phases telescope to e2e whatever the formulas; what must hold besides is that
    # each is the interval it names: the queue and the wait for a link or for decode room are
    # waiting, the transfer is the transfer, decode runs from decode start to the last token.
    np.testing.assert_allclose(phases.sum(axis=1), req["last_token_at"] - req["arrival_at"],
                               rtol=1e-9, atol=1e-9)
    q, p, t0, t, d = (np.array([row[i] for row in rows]) for i in range(1, 6))
    np.testing.assert_allclose(phases["wait_s"], q + t0 + d, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(phases["prefill_s"], p, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(phases["transfer_s"], t, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(phases["decode_s"], 1.0, rtol=1e-9, atol=1e-9)


def _timeseries() -> pd.DataFrame:
    # Two decode instances sampled at their own instants; one prefill instance.
    return pd.DataFrame({
        "instance": pd.Categorical(["d.0", "d.1", "d.0", "d.1", "p.0"]),
        "pool": pd.Categorical(["decode", "decode", "decode", "decode", "prefill"]),
        "time_at": [0.0, 0.5, 1.0, 1.5, 0.0],
        "busy": [True, True, True, False, True],
        "batch_size": [4, 2, 8, 0, 1],
        "kv_blocks_used": [10, 5, 20, 0, 0],
        "kv_blocks_capacity": [100, 100, 100, 100, 50],
        "queue_length": [1, 0, 3, 0, 2],
    })


def test_pool_timeline_is_the_mean_over_instances_of_step_functions():
    line = plots.pool_timeline(_timeseries(), end_s=2.0, points=5)  # grid 0, .5, 1, 1.5, 2
    decode = line[line["pool"] == "decode"].reset_index(drop=True)
    # t=0: d.0 has 4, d.1 has no sample yet (0); t=1: d.0 8, d.1 2; t=2: d.0 8, d.1 0
    np.testing.assert_allclose(decode["batch_size"], [2.0, 3.0, 5.0, 4.0, 4.0])
    np.testing.assert_allclose(decode["kv_used_fraction"].iloc[2], (0.20 + 0.05) / 2)
    assert set(line["pool"]) == {"decode", "prefill"}


def test_json_ready_turns_nan_into_null_and_numpy_into_python():
    data = {"a": np.float64(1.5), "b": float("nan"), "c": np.int64(3), "d": [np.inf, 1],
            "e": np.bool_(True), "f": {"g": np.array([1.0, np.nan])}}
    ready = json_ready(data)
    assert ready == {"a": 1.5, "b": None, "c": 3, "d": [None, 1], "e": True,
                     "f": {"g": [1.0, None]}}
    json.loads(dumps_summary(data))  # strict JSON: no NaN literal


def test_parquet_is_byte_identical_for_the_same_frame(tmp_path):
    frame = _requests()
    write_parquet(frame, tmp_path / "a.parquet")
    write_parquet(frame.copy(), tmp_path / "b.parquet")
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    back = pd.read_parquet(tmp_path / "a.parquet")
    pd.testing.assert_frame_equal(back, frame)


def test_plots_are_written_and_reproducible(tmp_path):
    ttft = np.array([0.1, 0.2, 0.3, 0.5])
    itl = np.repeat([0.008, 0.009, 0.06], [100, 50, 2])
    paths = [
        plots.plot_latency_cdfs(ttft, itl, tmp_path / "cdf.png", title="t", ttft_slo_ms=400,
                                itl_slo_ms=50, percentile=99),
        plots.plot_timeline(plots.pool_timeline(_timeseries(), 2.0), tmp_path / "tl.png",
                            title="t"),
        plots.plot_utilization([{"name": "prefill", "role": "prefill", "chips": 1,
                                 "utilization": 0.25},
                                {"name": "decode", "role": "decode", "chips": 4,
                                 "utilization": 0.9}], tmp_path / "u.png", title="t"),
        plots.plot_breakdown(_requests(), tmp_path / "b.png", title="t"),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = plots.plot_breakdown(_requests(), tmp_path / "b2.png", title="t")
    assert again.read_bytes() == paths[-1].read_bytes()


def test_plots_cope_with_no_requests(tmp_path):
    empty = np.array([])
    path = plots.plot_latency_cdfs(empty, empty, tmp_path / "cdf.png", title="nothing")
    assert path.stat().st_size > 0


SUMMARY = {"scenario_name": "s", "completed": 10, "failed": 0, "duration": 2.0,
           "p99_ttft_ms": 123.4, "p99_itl_ms": float("nan"),
           "cost": {"dollars_per_hour": 8.97, "usd_per_million_output_tokens": 0.8,
                    "pools": {"decode": {"role": "decode", "chips": 2, "utilization": 0.5}},
                    "classes": {}}}


def test_tables_show_missing_numbers_as_a_dash():
    from rich.console import Console

    console = Console(width=120, record=True)
    console.print(summary_table(SUMMARY))
    text = console.export_text()
    assert "123.4" in text and "8.97" in text and "—" in text and "50 % of time with work" in text
    console.print(compare_table([SUMMARY, SUMMARY], ["a", "b"]))
    rows = compare_rows([SUMMARY], ["a"])
    assert rows["a"]["p99_ttft_ms"] == 123.4
    assert math.isnan(rows["a"]["p99_itl_ms"])
    assert rows["a"]["cost.dollars_per_hour"] == 8.97


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0.001, 10), st.integers(1, 50)), min_size=1, max_size=60),
       st.floats(0, 100))
def test_weighted_percentile_equals_numpy_on_the_expanded_gaps(pairs, q):
    values = np.array([v for v, _ in pairs])
    counts = np.array([c for _, c in pairs])
    expected = np.percentile(np.repeat(values, counts), q)
    assert plots.weighted_percentile(values, counts, q) == pytest.approx(expected, rel=1e-12)


def test_cdf_curve_thins_large_multisets_exactly_at_its_points():
    values = np.arange(1, 100_001, dtype=float)
    x, y = plots.cdf_curve(values, max_points=100)
    assert len(x) == 100 and x[-1] == 100_000 and y[-1] == 100.0
    np.testing.assert_allclose(y, x / 100_000 * 100)  # uniform: share = value / n
    x, y = plots.cdf_curve(np.array([3.0, 1.0]), np.array([1, 3]))
    np.testing.assert_allclose(x, [1.0, 3.0])
    np.testing.assert_allclose(y, [75.0, 100.0])


def test_pool_occupancy_is_the_exact_time_weighted_mean_over_instances():
    occ = plots.pool_occupancy(_timeseries(), end_s=2.0)
    # d.0: batch 4 on [0, 1), 8 on [1, 2) -> 6; KV 0.10, 0.20 -> 0.15.
    # d.1: nothing before 0.5, 2 on [0.5, 1.5), 0 after -> 1; KV 0.05 for 1 s of 2 -> 0.025.
    assert occ["decode"]["mean_batch"] == pytest.approx((6 + 1) / 2)
    assert occ["decode"]["kv_used_fraction"] == pytest.approx((0.15 + 0.025) / 2)
    assert occ["prefill"] == {"mean_batch": 1.0, "kv_used_fraction": 0.0}
    # a fine grid of the timeline converges on the same means
    line = plots.pool_timeline(_timeseries(), end_s=2.0, points=200_001)
    decode = line[line["pool"] == "decode"]
    assert decode["batch_size"].mean() == pytest.approx(3.5, abs=1e-3)
    assert plots.pool_occupancy(_timeseries().iloc[:0], 2.0) == {}


def test_utilization_plot_draws_busy_batch_and_kv_and_is_reproducible(tmp_path):
    pools = [{"name": "prefill", "role": "prefill", "chips": 1, "utilization": 0.25,
              "dollars_per_hour": 2.99, "mean_batch": 0.8, "max_batch_size": 256,
              "kv_used_fraction": 0.002},
             {"name": "decode", "role": "decode", "chips": 2, "utilization": 1.0,
              "mean_batch": 8.6, "max_batch_size": 256, "kv_used_fraction": 0.023}]
    a = plots.plot_utilization(pools, tmp_path / "a.png", title="t")
    b = plots.plot_utilization(pools, tmp_path / "b.png", title="t")
    busy_only = plots.plot_utilization([{k: v for k, v in p.items()
                                         if k not in ("mean_batch", "kv_used_fraction")}
                                        for p in pools], tmp_path / "c.png", title="t")
    assert a.read_bytes() == b.read_bytes() != busy_only.read_bytes()
    labels = [label for _, label, _ in plots.UTILIZATION_BARS]
    assert labels[0].startswith("time with work in progress")
    assert "max_batch_size" in labels[1] and "KV" in labels[2]


def test_a_busy_decode_pool_is_not_read_as_a_full_one(tmp_path, monkeypatch):
    # QA: the default scenario's decode pool is ~100 % busy at a mean batch of ~9 of 256. The
    # run folder's utilisation plot is fed the batch and KV shares that say so.
    import infersim
    from infersim.report import save

    result = infersim.simulate("scenarios/default.yaml", overrides=["workload.requests=150"])
    occ = plots.pool_occupancy(result.timeseries, float(result.summary["duration"]))
    decode = result.summary["cost"]["pools"]["decode"]
    assert decode["utilization"] > 0.9
    assert occ["decode"]["mean_batch"] / 256 < 0.1 and occ["decode"]["kv_used_fraction"] < 0.1
    captured = {}
    original = plots.plot_utilization

    def spy(pools, path, *, title):
        captured["pools"] = pools
        return original(pools, path, title=title)

    monkeypatch.setattr(plots, "plot_utilization", spy)
    save.write_plots(result, tmp_path)
    by_name = {p["name"]: p for p in captured["pools"]}
    assert by_name["decode"]["max_batch_size"] == 256
    assert by_name["decode"]["mean_batch"] == pytest.approx(occ["decode"]["mean_batch"])
    assert by_name["decode"]["kv_used_fraction"] == pytest.approx(occ["decode"]["kv_used_fraction"])
