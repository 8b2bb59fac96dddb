"""The engine against published measurements (benchmarks/validate_published.py, fast subset).

The full validation (``python benchmarks/validate_published.py``, docs/engine-validation.md) runs every
published row the simulator can reproduce. Here: the single-stream rows, three TensorRT-LLM offline
rows at NVIDIA's own request counts, vLLM 0.6's offline row 8 and online TPOT (rows 9b, 11b) with
each scenario's serving-framework step overhead, each held to a bound on its error against the
published figure, and to a tighter bound on its distance from the analytical estimator (for the
same deployment, step overhead included) wherever both model the same thing. Bounds sit a little
above what the shipped profiles give (see the comment at each); a change to the engine, the knobs
or the scenarios that moves a figure past them fails.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infersim.cost.calibration import calibration_report, published_figures

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "validate_published.py"
_spec = importlib.util.spec_from_file_location("validate_published", _PATH)
vp = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("validate_published", vp)
_spec.loader.exec_module(vp)

PUBLISHED = {f.row: f.published for f in published_figures()}


@pytest.fixture(scope="module")
def estimator():
    return {r.figure.row: r.predicted for r in calibration_report()}


def _case(rows: tuple[str, ...], quick: bool = False):
    (case,) = [c for c in vp.cases(quick=quick) if c.rows == rows]
    return case


def _measure(case) -> dict[str, float]:
    return {m.row: m.value for m in vp.run_case(case)}


def _rel(a: float, b: float) -> float:
    return abs(a - b) / b


# -- single stream: rows 12-14 ------------------------------------------------------------------


@pytest.mark.parametrize("rows", [("12",), ("13",), ("14a", "14b")])
def test_single_stream_rows_meet_published(rows, estimator):
    measured = _measure(_case(rows))
    for row, value in measured.items():
        # measured: +1.2 %, -0.3 %, +0.0 %, -3.7 % (row 14b: TTFT)
        assert _rel(value, PUBLISHED[row]) <= 0.05, (row, value)
        # one request alone is exactly the estimator's single-stream formula: mean decode step
        # over contexts prompt+1 .. prompt+output-1, prefill of the whole prompt in one pass.
        # Row 13 included: the calibration and the scenario run the same tp8·pp10 layout.
        assert _rel(value, estimator[row]) <= 1e-9, (row, value, estimator[row])


def test_a_prompt_chunked_by_the_step_budget_costs_a_second_weight_pass():
    """Row 14b at the scenario default budget (8,192 tokens): two prefill steps, each reading the
    weights and paying the step overhead, so TTFT exceeds the one-pass figure."""
    case = _case(("14a", "14b"))
    one_pass = _measure(case)["14b"]
    chunked = _measure(vp.Case(rows=case.rows, scenario=case.scenario,
                               overrides=("pools.trn2.max_batch_tokens=8192",), seeds=(1,),
                               measure=case.measure))["14b"]
    assert one_pass < chunked < 1.05 * one_pass


# -- offline TensorRT-LLM: rows 1, 4, 7 at NVIDIA's request counts --------------------------------


@pytest.mark.parametrize(("row", "isl", "osl", "n"),
                         [r for r in vp.TRTLLM_ROWS if r[0] in ("1", "4", "7")])
def test_trtllm_offline_rows_meet_published(row, isl, osl, n, estimator):
    (measured,) = vp.run_case(vp.trtllm_case(row, isl, osl, n))
    # measured: +8.1 % (row 1, inherited from the estimator's +8.4 %), +2.4 %, -2.7 %
    assert _rel(measured.value, PUBLISHED[row]) <= 0.10
    # makespan of a finite run against the estimator's steady state: -0.2 %, -0.6 %, -0.1 %
    assert _rel(measured.value, estimator[row]) <= 0.02


def test_without_kv_reservation_the_engine_preempts_and_loses_throughput():
    """Row 3 (1000/1000) at max_batch_size 2048: on demand the engine admits more sequences than
    their final KV fits, then recomputes the evicted ones; reserving whole requests (TensorRT-LLM's
    GUARANTEED_NO_EVICT, the scenario's kv_reservation: full) avoids it. Smaller N keeps it fast."""
    reserved = vp.run_case(vp.trtllm_case("3", 1000, 1000, 1500))[0].value
    on_demand = vp.run_case(vp.trtllm_case("3", 1000, 1000, 1500, reserve=False))[0].value
    assert on_demand < 0.97 * reserved


def test_full_reservation_at_fixed_lengths_is_the_whole_request_batch_cap():
    """With fixed lengths GUARANTEED_NO_EVICT runs exactly the whole requests that fit at once:
    the scenario's kv_reservation: full gives row 3 the very schedule of on-demand KV with
    max_batch_size capped at that count (the emulation the validation used before), with no
    preemption, and never more than that many requests admitted."""
    case = vp.trtllm_case("3", 1000, 1000, 1500)
    cap = vp.reservation_batch_cap(1000, 1000)
    assert cap == 488  # 61,006 blocks // 125 blocks
    scenario = vp.SCENARIOS / case.scenario
    full = vp.infersim.simulate(scenario, seed=1, overrides=list(case.overrides)).requests
    capped = vp.infersim.simulate(scenario, seed=1, overrides=[
        *case.overrides, "pools.gpu.kv_reservation=on_demand",
        f"pools.gpu.max_batch_size={cap}"]).requests
    assert full["completed"].all() and full["preemptions"].sum() == 0
    pd.testing.assert_frame_equal(full, capped)
    starts, ends = full["prefill_start_at"].to_numpy(), full["last_token_at"].to_numpy()
    assert max(int(((starts <= t) & (ends > t)).sum()) for t in np.unique(starts)) == cap


# -- vLLM 0.6.0: rows 8, 9b, 11b with the scenarios' step overhead -----------------------------


def _one_seed(case, *overrides: str):
    """``case`` on seed 1 alone, with ``overrides`` after the case's own."""
    runs = vp.run_case(vp.Case(rows=case.rows, scenario=case.scenario,
                               overrides=(*case.overrides, *overrides), seeds=(1,),
                               measure=case.measure, steady=case.steady))
    return {m.row: m for m in runs}


@pytest.mark.parametrize(("rows", "overhead_s"), [(("9a", "9b"), 6.5e-3), (("11a", "11b"), 2.5e-3)])
def test_vllm_online_tpot_meets_published_and_estimator(rows, overhead_s):
    """Published request count (500), Poisson 4 req/s, seed 1. The scenario carries vLLM 0.6's
    host time per step (6.5 ms at TP4 on H100, 2.5 ms at TP1 on A100: both fitted on these rows,
    so the published bound checks the scenario keeps the fit; the estimator bound checks the
    engine keeps the cost model)."""
    measured = _one_seed(_case(rows))[rows[1]]
    assert measured.step_overhead_s == pytest.approx(overhead_s)
    figure = {f.row: f for f in published_figures()}[rows[1]]
    # measured: +1.1 % (9b), -1.6 % (11b) against published
    assert _rel(measured.value, PUBLISHED[rows[1]]) <= 0.04
    # measured: -0.3 % (9b), -0.6 % (11b) against the estimator at the same step overhead
    assert _rel(measured.value, vp.estimate(figure, measured.step_overhead_s)) <= 0.02


def test_vllm_tp4_offline_row_8_meets_published():
    """Row 8 at the published 5,000 prompts, seed 1, with the scenario's 6.5 ms step overhead."""
    (measured,) = _one_seed(_case(("8",))).values()
    # measured (seed 1): -0.7 % at 6.5 ms; at the chip's 2 ms it is about +10 %
    assert _rel(measured.value, PUBLISHED["8"]) <= 0.03


def test_the_tp4_step_overhead_does_not_carry_over_to_the_a100_rows():
    """Out of sample: vLLM 0.6's 6.5 ms fitted at TP4 on H100 (rows 8-9) moves the A100 TP1
    row 11b far past the published TPOT, so the overhead is not one constant of vLLM 0.6
    (docs/engine-validation.md D2). The engine and the estimator still agree at the new value: the
    pool override reaches both the same way."""
    case = _case(("11a", "11b"))
    measured = _one_seed(case, "pools.gpu.step_overhead=6.5 ms")["11b"]
    figure = {f.row: f for f in published_figures()}["11b"]
    assert measured.step_overhead_s == pytest.approx(6.5e-3)
    # far above published at 6.5 ms; within 1 % at the A100's own 2.5 ms
    assert measured.value > 1.2 * PUBLISHED["11b"]
    assert _rel(measured.value, vp.estimate(figure, 6.5e-3)) <= 0.02


# -- the harness refuses runs that cannot stand for their row -------------------------------------


def _beyond_context(scenario: str, overrides: tuple[str, ...], seed: int) -> int:
    from infersim.scenario import check_scenario, load_scenario
    from infersim.scenario.preflight import beyond_context_requests, build_scenario_workload

    loaded = load_scenario(vp.SCENARIOS / scenario, overrides=list(overrides), seed=seed)
    return beyond_context_requests(check_scenario(loaded), build_scenario_workload(loaded))


@pytest.mark.parametrize("case", vp.cases(), ids=lambda c: "-".join(c.rows))
def test_every_validation_request_fits_its_models_context_window(case):
    # A request longer (prompt + output) than max_position_embeddings is refused by a real
    # engine, so no published figure was measured on one: row 13's 4K context on Llama-2-7B is
    # 3,584 + 512 = 4,096 tokens, the whole window, not 3,840 + 512.
    assert _beyond_context(case.scenario, case.overrides, case.seeds[0]) == 0


def test_the_context_window_check_sees_a_request_one_token_too_long():
    case = _case(("13",))
    assert _beyond_context(case.scenario, ("workload.prompt_tokens.value=3585",), 1) == 1


def test_a_rejected_request_is_an_error_not_a_figure():
    case = _case(("13",))
    tight = vp.Case(rows=case.rows, scenario=case.scenario, overrides=("pools.lpus.pp=9",),
                    seeds=(1,), measure=case.measure, layout_deviation="test")
    with pytest.raises(vp.ValidationError, match="0 of 1 requests completed"):
        vp.run_case(tight)


def test_a_layout_other_than_the_published_one_is_an_error():
    case = _case(("14a", "14b"))
    other = vp.Case(rows=case.rows, scenario=case.scenario, overrides=("pools.trn2.tp=8",),
                    seeds=(1,), measure=case.measure)
    with pytest.raises(vp.ValidationError, match="was measured on"):
        vp.run_case(other)


def test_the_report_names_the_median_and_the_worst_row():
    figures = {f.row: f for f in published_figures()}
    rows = [vp.Row(figures["12"], vp.Measured("12", 1890.0, (1890.0,)), 1800.0),
            vp.Row(figures["14a"], vp.Measured("14a", 19.8, (19.8,)), 19.8),
            vp.Row(figures["1"], vp.Measured("1", 28312.0 * 0.8, (0.0,)), 28312.0)]
    text = vp.format_table(rows)
    assert "median |error| 5.0 %" in text
    assert "worst row 1 (-20.0 %)" in text
