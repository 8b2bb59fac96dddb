"""Steady-state window: warm-up and drain left out, offered rate stated, overload and short runs
warned about."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import infersim
from infersim.steady import MIN_WINDOW_REQUESTS, in_system, steady_state

BENCH = Path(__file__).parent / "fixtures" / "bench"


def _table(arrival, finish, *, rejected=None, output=10, prompt=100) -> pd.DataFrame:
    arrival = np.asarray(arrival, dtype=float)
    finish = np.asarray(finish, dtype=float)
    n = len(arrival)
    rejected = np.zeros(n, bool) if rejected is None else np.asarray(rejected)
    completed = ~rejected & np.isfinite(finish)
    e2e = np.where(completed, finish - arrival, np.nan)
    return pd.DataFrame({"arrival_at": arrival, "last_token_at": np.where(completed, finish,
                                                                           np.nan),
                         "completed": completed, "rejected": rejected,
                         "ttft_s": e2e / 10, "tpot_s": e2e / 20, "e2e_s": e2e,
                         "output_tokens": np.full(n, output), "prompt_tokens": np.full(n, prompt)})


def test_window_is_the_middle_80_percent_of_the_arrival_span_and_counts_completions_in_it():
    # 201 arrivals one per second from t=0 to 200; each takes 1 s: window [20, 180]
    arrival = np.arange(201.0)
    block, warnings = steady_state(_table(arrival, arrival + 1.0), np.zeros(201), {}, 300.0)
    assert block["window_s"] == [20.0, 180.0]
    assert block["window_requests"] == 161  # arrivals 20..180
    assert block["request_throughput"] == pytest.approx(161 / 160)  # finishes 20..180 (19..179 +1)
    assert block["offered_request_rate"] == pytest.approx(1.0)
    assert block["median_e2el_ms"] == pytest.approx(1000.0)
    assert block["output_throughput"] == pytest.approx(10 * 161 / 160)
    assert (block["overloaded"], block["too_short"], warnings) == (False, False, [])


def test_goodput_counts_completions_in_the_window_that_meet_every_target():
    arrival = np.arange(201.0)
    service = np.where(arrival % 2 == 0, 1.0, 3.0)  # every other request takes 3 s
    block, _ = steady_state(_table(arrival, arrival + service), np.zeros(201),
                            {"e2el_ms": 2000.0}, 300.0)
    done = (arrival + service >= 20) & (arrival + service <= 180)
    good = done & (service <= 2.0)
    assert block["request_goodput"] == pytest.approx(good.sum() / 160)


def test_in_system_counts_arrived_and_unfinished():
    arrival = np.array([0.0, 1.0, 2.0, 3.0])
    finish = np.array([0.5, 5.0, np.inf, 2.5])
    assert [in_system(arrival, finish, t) for t in (0.0, 1.0, 2.6, 3.0, 6.0)] == [1, 1, 1, 2, 1]


def test_a_growing_queue_is_overloaded():
    # arrivals at 2/s, service one at a time 1 s each: completions lag further and further
    arrival = np.arange(400) * 0.5
    finish = np.arange(1, 401) * 1.0
    block, warnings = steady_state(_table(arrival, finish), np.zeros(400), {}, 1000.0)
    assert block["overloaded"]
    assert block["in_system_at_end"] - block["in_system_at_start"] > 50
    assert warnings[0].startswith("overloaded: offered 2.01 req/s, served 1 req/s in the steady "
                                  "window (requests in the system grew from ")


def test_refusals_in_the_window_are_overload():
    arrival = np.arange(201.0)
    rejected = arrival == 100
    block, warnings = steady_state(_table(arrival, arrival + 1.0, rejected=rejected),
                                   np.zeros(201), {}, 300.0)
    assert block["rejected"] == 1 and block["overloaded"]
    assert "1 requests refused in the steady window" in warnings[0]


def test_a_short_run_is_flagged():
    arrival = np.arange(50.0)
    block, warnings = steady_state(_table(arrival, arrival + 30.0), np.zeros(50), {}, 200.0)
    assert block["too_short"]
    assert warnings == [f"run too short for a steady state: the steady window holds 40 arrivals "
                        f"(at least {MIN_WINDOW_REQUESTS} wanted) and lasts 39.2 s, under 5 "
                        "median end-to-end latencies (30 s each); raise workload.requests"]


def test_offline_batch_has_no_window():
    block, warnings = steady_state(_table(np.zeros(10), np.arange(1.0, 11.0)), np.zeros(10), {},
                                   20.0)
    assert block["window_s"] is None and warnings == []


def test_steady_throughput_does_not_depend_on_run_length():
    """The issue's symptom: the same offered 4 req/s read 2.10 or 3.77 req/s by run length."""
    def run(n):
        return infersim.simulate(BENCH / "a100-vllm.yaml", overrides=[
            "workload.concurrency=null", "workload.arrival={process: poisson, rate: 4}",
            "workload.output_tokens={dist: fixed, value: 1024}",  # ~16 s each: a long drain
            f"workload.requests={n}"]).summary

    short, long = run(80), run(1200)
    # the whole-run figure moves with the run's length ...
    assert abs(short["request_throughput"] / long["request_throughput"] - 1) > 0.25
    # ... the steady one matches what was offered once the run is long enough, and a run too
    # short to show it says so
    steady = long["steady_state"]
    assert steady["request_throughput"] == pytest.approx(steady["window_offered_request_rate"],
                                                         rel=0.08)
    assert not steady["too_short"] and not steady["overloaded"]
    assert short["steady_state"]["too_short"]
