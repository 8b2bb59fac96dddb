"""docs/validation.md is what ``python -m infersim.validation`` generates, and its held-out set
is what the issue asks of it: strictly apart from the calibration set, wide enough, and within
the targets the page states (asserted here on the numbers the generator computes)."""

from __future__ import annotations

import math

import pytest

from infersim.hardware import list_hardware, load_hardware
from infersim.validation import evaluate, summary_table
from infersim.validation.__main__ import main
from infersim.validation.report import (
    DOC,
    TARGETS,
    build_page,
    calibration_outcomes,
    load_heldout,
    load_sources,
)


@pytest.fixture(scope="module")
def heldout():
    return evaluate(load_heldout())


def test_the_page_is_up_to_date_with_its_generator():
    assert DOC.read_text(encoding="utf-8") == build_page(), (
        "docs/validation.md is stale: run `python -m infersim.validation`")


def test_check_mode_says_so(tmp_path, capsys, monkeypatch):
    import infersim.validation.__main__ as cli

    monkeypatch.setattr(cli, "build_page", lambda: "the page\n")
    stale = tmp_path / "validation.md"
    stale.write_text("old", encoding="utf-8")
    assert main(["--check", "--out", str(stale)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["--out", str(stale)]) == 0
    assert main(["--check", "--out", str(stale)]) == 0


def test_held_out_set_is_wide_enough(heldout):
    assert len(heldout) >= 40
    assert len({o.reference.family for o in heldout}) >= 5
    metrics = {o.reference.metric for o in heldout}
    assert {"TTFT", "TPOT", "E2E", "throughput", "USER"} <= metrics
    # TP1, TP2, TP4 and TP8 on H100; a mixture-of-experts model; 70B and 405B on SRAM machines
    assert {o.reference.tp for o in heldout if o.reference.family == "h100"} >= {1, 2, 4, 8}
    assert any(o.reference.model == "mixtral-8x7b" for o in heldout)
    sram = {(o.reference.family, o.reference.model) for o in heldout}
    assert ("wse3", "llama-3.1-405b") in sram and ("lpu", "llama-2-70b") in sram


def test_every_held_out_row_is_predicted_and_cites_a_listed_source(heldout):
    keys = {s["key"] for s in load_sources()}
    for o in heldout:
        assert o.reference.source in keys, o.reference.id
        assert math.isfinite(o.predicted) and o.predicted > 0, (o.reference.id, o.note)


def test_calibration_and_held_out_sets_are_apart(heldout):
    calibration = calibration_outcomes()
    assert {o.reference.set for o in calibration} == {"calibration"}
    assert {o.reference.set for o in heldout} == {"held-out"}
    # the same measurement never sits in both: published.md rows 1-7 are the TensorRT-LLM H100
    # Llama-3.1-8B column, whose other ISL/OSL pairs are held out
    calib_keys = {(o.reference.family, o.reference.model, o.reference.metric,
                   round(o.reference.value, 3)) for o in calibration}
    for o in heldout:
        key = (o.reference.family, o.reference.model, o.reference.metric,
               round(o.reference.value, 3))
        assert key not in calib_keys, o.reference.id
    # and no knob says it was fitted on a held-out source
    held_sources = {o.reference.source for o in heldout}
    for chip in list_hardware():
        hw = load_hardware(chip)
        for knob in ("compute_efficiency", "memory_efficiency", "step_overhead_s",
                     "layer_latency_s", "hop_latency_s", "launch_overhead_s"):
            text = hw.sources[knob]
            assert not any(key in text for key in held_sources), (chip, knob)


def test_held_out_errors_meet_the_targets_the_page_reports(heldout):
    overall = {metric: (n, med, p90) for _, metric, n, med, p90 in summary_table(heldout, "all")}
    for metric, (median_target, p90_target) in TARGETS.items():
        n, median, p90 = overall[metric]
        assert n >= 8, metric
        assert median <= median_target and p90 <= p90_target, (metric, median, p90)
