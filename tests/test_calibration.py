"""Calibration: the shipped knobs against published measurements and measured operator times.

Run with ``pytest -s tests/test_calibration.py`` to see the table of every published figure,
its prediction and the error (also in docs/cost-model.md).
"""

from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pytest

from infersim.cost import Deployment
from infersim.cost.calibration import (
    KNOBS,
    calibration_report,
    fit_knobs,
    format_report,
    published_figures,
)
from infersim.cost.step import combine, deployment_constants
from infersim.hardware import list_hardware, load_hardware
from infersim.model import load_model

VIDUR = Path(__file__).parent / "fixtures" / "vidur"


@pytest.fixture(scope="module")
def report():
    return calibration_report()


def test_published_figures_are_met(report):
    print("\n" + format_report(report))
    errors = [abs(r.error) for r in report]
    assert statistics.median(errors) <= 0.15
    worst = max(report, key=lambda r: abs(r.error))
    assert abs(worst.error) <= 0.40, f"row {worst.figure.row} off by {100 * worst.error:+.0f} %"


def test_every_published_row_is_covered(report):
    rows = {r.figure.row.rstrip("ab") for r in report}
    assert rows == {str(n) for n in range(1, 15)}


def test_every_knob_records_what_it_was_fitted_to():
    attributes = {"compute_efficiency", "memory_efficiency", "step_overhead_s",
                  "layer_latency_s", "hop_latency_s"}
    assert set(KNOBS) == attributes
    measured_on = {f.hardware for f in published_figures()}
    for name in list_hardware():
        hw = load_hardware(name)
        for knob in attributes:
            assert hw.sources[knob].strip(), f"{name}.{knob} has no fitted_to"
        if name in measured_on:
            assert any("published.md row" in hw.sources[k] for k in attributes), name


def test_single_stream_rows_are_laid_out_to_hold_their_own_context():
    # An SRAM machine keeps weights and KV on chip: the row-13 layout is sized for both
    # (docs/engine-validation.md D4), so the estimator predicts a deployment that can serve the request.
    from infersim.cost import placement

    contexts = {"12": 1000 + 200, "13": 3584 + 512, "14a": 10_000 + 1500, "14b": 10_000 + 1500}
    for fig in published_figures():
        if fig.row in contexts:
            dep = fig.deployment()
            assert placement(dep).kv_capacity_tokens >= contexts[fig.row], fig.row
            # and the request fits the model's own window, or a real engine would refuse it
            assert contexts[fig.row] <= dep.model.max_context_tokens, fig.row
    row13 = next(f for f in published_figures() if f.row == "13")
    assert (row13.tp, row13.pp) == (8, 10)  # 9 GroqNodes hold the weights, not the 4K context


def test_the_fitter_lands_on_the_shipped_knob():
    # The LPU's layer latency was fitted to row 13: a grid around it picks it again.
    knobs, results = fit_knobs("lpu", {"layer_latency_s": [30e-6, 35.5e-6, 41e-6]})
    assert knobs == {"layer_latency_s": 35.5e-6}
    assert abs(results[0].error) < 0.02


def _rows(name: str) -> list[dict[str, str]]:
    with (VIDUR / name).open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_layer_operator_times_match_vidur_h100_profiles():
    """The calibrated H100 roofline against measured per-layer operator times (no attention):
    Llama-2-7B/70B projections, MLP, norms and elementwise ops, 1-4096 tokens, TP 1-8."""
    h100 = load_hardware("h100")
    errors = []
    for row in _rows("layer_times.csv"):
        tokens, tp = int(row["num_tokens"]), int(row["tp"])
        c = deployment_constants(Deployment(model=load_model(row["model"]), hardware=h100, tp=tp))
        per_layer = 1.0 / c.layers
        attention = combine(c.attn_flops_per_token * tokens * per_layer / c.flops_rate,
                            (c.attn_weight_bytes + tokens * c.attn_act_bytes_per_token)
                            * per_layer / c.bandwidth, c.overlap)
        mlp = combine(c.dense_flops_per_token * tokens * per_layer / c.flops_rate,
                      (c.dense_weight_bytes + tokens * c.dense_act_bytes_per_token)
                      * per_layer / c.bandwidth, c.overlap)
        predicted = attention + mlp + h100.layer_latency_s
        errors.append(predicted / (float(row["layer_ms"]) * 1e-3) - 1.0)
    print(f"\nvidur layers: median |error| {100 * statistics.median(map(abs, errors)):.1f} %, "
          f"max {100 * max(map(abs, errors)):.1f} % over {len(errors)} shapes")
    assert statistics.median(abs(e) for e in errors) <= 0.20
    assert max(abs(e) for e in errors) <= 0.45


def test_lpu_knobs_fitted_on_7b_carry_to_70b():
    """Held out: Groq's Llama-2-70B at ~300 tok/s on 576 LPUs (8 per stage, 72 stages, int8),
    with the layer latency fitted to the 7B row only."""
    from infersim.cost import StepBatch, step_time

    dep = Deployment(model=load_model("llama-2-70b"), hardware=load_hardware("lpu"),
                     precision="int8", tp=8, pp=72)
    tokens_per_s = 1.0 / step_time(dep, StepBatch(decode_kv_lens=(4096,))).time_s
    assert tokens_per_s == pytest.approx(300, rel=0.10)
