"""``infersim roofline``: answers for every shipped model on every shipped chip."""

from __future__ import annotations

import json
import re

import pytest

from infersim.cli import main
from infersim.cli.roofline import roofline
from infersim.cost import Deployment, check_layout, placement, valid_tensor_parallel
from infersim.errors import InfersimError
from infersim.hardware import list_hardware, load_hardware
from infersim.model import list_models, load_model


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["roofline", *args])
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


def test_json_summary_of_the_seed_example(capsys):
    code, out, _ = run(capsys, "--model", "llama-3-8b", "--hardware", "h100", "--ideal",
                       "--prompt", "6", "--context", "64", "--json")
    assert code == 0
    summary = json.loads(out)
    assert summary["decode"]["tokens_per_s_per_user"] == pytest.approx(208.6, rel=0.01)
    assert summary["prefill"]["bound"] == "memory"
    assert summary["prefill"]["tokens_per_s"] == pytest.approx(1256, rel=0.01)
    assert summary["ridge_point"] == pytest.approx(295.2, rel=1e-3)
    assert summary["fits"] is True and summary["min_chips"] == 1
    assert summary["weight_bytes"] == pytest.approx(16.06e9, rel=1e-3)


def test_table_output_names_the_bounds(capsys):
    code, out, _ = run(capsys, "--model", "llama-3.1-70b", "--hardware", "h100", "--tp", "4",
                       "--batch", "64", "--prompt", "2048")
    assert code == 0
    assert "prefill of 2048 tokens" in out and "compute" in out and "memory" in out


def test_too_big_a_model_is_one_line_and_exit_2(capsys):
    code, out, err = run(capsys, "--model", "llama-3.1-70b", "--hardware", "h100")
    assert code == 2 and out == ""
    assert err.strip() == ("infersim: error: llama-3.1-70b bf16 needs 141 GB of weights; "
                           "1× h100 holds 72 GB at memory_fraction 0.9: use at least 2 chips (tp·pp)")


def test_a_precision_the_chip_lacks_is_a_user_error(capsys):
    code, _, err = run(capsys, "--model", "llama-3-8b", "--hardware", "a100", "--precision", "fp8")
    assert code == 2 and "peak_flops.fp8" in err and len(err.strip().splitlines()) == 1


def _advised(message: str, tp: int) -> tuple[int, int]:
    """The (tp, pp) an advice names: ``tp A × pp B``, or ``N chips (tp·pp)`` at the same tp."""
    concrete = re.search(r"use at least (\d+) chips: tp (\d+) × pp (\d+) holds", message)
    if concrete:
        chips, tp, pp = map(int, concrete.groups())
        assert chips == tp * pp, message
        return tp, pp
    same_tp = re.search(r"use at least (\d+) chips \(tp·pp\)$", message)
    assert same_tp, message
    chips = int(same_tp.group(1))
    assert chips % tp == 0, message
    return tp, chips // tp


@pytest.mark.parametrize("hardware", list_hardware())
def test_every_model_on_every_chip_answers_or_names_a_layout_that_runs(hardware):
    # The command's body, without re-parsing arguments for each of the 100-odd pairs. Following
    # the advice once must give a layout the scenario accepts (tp splits the heads within one
    # scale-up domain, pp at most the layers) on which the same question is answered.
    chip = load_hardware(hardware)
    for name in list_models():
        model = load_model(name)
        dep = Deployment(model=model, hardware=chip)
        try:
            summary = roofline(dep, batch=1, prompt=512, context=512)
        except InfersimError as err:
            message = str(err)
            assert "\n" not in message
            tp, pp = _advised(message, dep.tp)
            check_layout(model, chip, tp, pp)
            summary = roofline(Deployment(model=model, hardware=chip, tp=tp, pp=pp),
                               batch=1, prompt=512, context=512)
        assert summary["fits"] and summary["decode"]["time_s"] > 0
        assert summary["chips"] >= summary["min_chips"]
        json.dumps(summary)


def test_llama8b_on_lpus_is_advised_a_layout_the_scenario_accepts(capsys):
    # QA: "use at least 78 chips (tp·pp)" read as tp 1 × pp 78, which the scenario rejects
    # (Llama-3.1-8B has 32 layers). The advice now names tp and pp and holds a 4K context.
    code, _, err = run(capsys, "--model", "llama-3.1-8b", "--hardware", "lpu")
    assert code == 2
    assert err.strip().endswith("use at least 84 chips: tp 4 × pp 21 holds the weights and "
                                "4,096 tokens of KV")
    model, lpu = load_model("llama-3.1-8b"), load_hardware("lpu")
    check_layout(model, lpu, 4, 21)
    assert placement(Deployment(model=model, hardware=lpu, tp=4, pp=21)).kv_capacity_tokens \
        >= 4096
    # ... and it is the smallest: no valid layout of fewer chips holds 4,096 tokens.
    for tp in valid_tensor_parallel(model, lpu):
        for pp in range(1, model.num_layers + 1):
            if tp * pp < 84:
                room = placement(Deployment(model=model, hardware=lpu, tp=tp, pp=pp))
                assert room.kv_capacity_tokens < 4096, (tp, pp)


def test_step_overhead_replaces_the_chips_per_step_time(capsys):
    args = ("--model", "llama-3.1-70b", "--hardware", "h100", "--tp", "4", "--batch", "16",
            "--prompt", "450", "--json")
    _, out, _ = run(capsys, *args)
    _, out_vllm, _ = run(capsys, *args, "--step-overhead", "5.5 ms")
    chip, vllm = json.loads(out), json.loads(out_vllm)
    assert chip["step_overhead_s"] == pytest.approx(2e-3)
    assert vllm["step_overhead_s"] == pytest.approx(5.5e-3)
    assert vllm["decode"]["time_s"] - chip["decode"]["time_s"] == pytest.approx(3.5e-3)
    assert vllm["decode"]["step_coefficients"]["a_s"] - chip["decode"]["step_coefficients"][
        "a_s"] == pytest.approx(3.5e-3)
    _, table, _ = run(capsys, *args[:-1], "--step-overhead", "5.5 ms")
    assert "step overhead" in table and "5.5 ms" in table


@pytest.mark.parametrize("value", ["5 GB", "-2 ms", "fast"])
def test_a_bad_step_overhead_is_one_line_and_exit_2(capsys, value):
    code, _, err = run(capsys, "--model", "llama-3-8b", "--hardware", "h100",
                       "--step-overhead", value)
    assert code == 2
    assert "--step-overhead" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_summary_names_the_smallest_runnable_layout_beside_the_weights_only_count(capsys):
    # 78 LPUs hold Llama-3.1-8B's weights, but no runnable layout has 78 chips with KV for the
    # batch: the summary says which one does.
    code, out, _ = run(capsys, "--model", "llama-3.1-8b", "--hardware", "lpu", "--tp", "4",
                       "--pp", "21", "--json")
    summary = json.loads(out)
    assert code == 0 and summary["min_chips"] == 78
    smallest = summary["smallest_layout"]
    assert (smallest["tp"], smallest["pp"], smallest["chips"]) == (16, 5, 80)
    assert smallest["kv_tokens"] == 1 * (1024 + 1)
    model, lpu = load_model("llama-3.1-8b"), load_hardware("lpu")
    check_layout(model, lpu, 16, 5)
    assert placement(Deployment(model=model, hardware=lpu, tp=16, pp=5)).kv_capacity_tokens \
        >= 1025
    _, table, _ = run(capsys, "--model", "llama-3.1-8b", "--hardware", "lpu", "--tp", "4",
                      "--pp", "21")
    assert "smallest runnable layout" in table and "tp 16 × pp 5 = 80 chips" in table


@pytest.mark.parametrize("args, message", [
    (("--model", "llama-3.1-70b", "--hardware", "wse3", "--tp", "4"),
     "--tp: expected 1 (wse3 chips meet only over Ethernet"),
    (("--model", "llama-3.1-8b", "--hardware", "lpu", "--tp", "8", "--pp", "33"),
     "pp: expected at most 32 pipeline stages (llama-3.1-8b has 32 layers"),
])
def test_layouts_no_vendor_runs_are_one_line_errors(capsys, args, message):
    code, _, err = run(capsys, *args)
    assert code == 2 and err.count("\n") == 1
    assert message in err


def test_wse3_advice_pipelines_across_wafers():
    from infersim.cost import smallest_layout

    dep = Deployment(model=load_model("llama-3.1-70b"), hardware=load_hardware("wse3"))
    assert valid_tensor_parallel(dep.model, dep.hardware) == (1,)
    layout = smallest_layout(dep)
    assert layout is not None and (layout.tp, layout.pp) == (1, 4)


def test_pipelined_decode_in_the_summary(capsys):
    from infersim.cost.pipeline import cycle_s, stage_plan

    code, out, _ = run(capsys, "--model", "llama-3.1-70b", "--hardware", "wse3", "--pp", "4",
                       "--batch", "8", "--context", "1024", "--json")
    assert code == 0
    piped = json.loads(out)["decode"]["pipelined"]
    assert piped["micro_batches"] == 4 and piped["sequences_per_micro_batch"] == 2
    dep = Deployment(model=load_model("llama-3.1-70b"), hardware=load_hardware("wse3"), pp=4)
    from infersim.cost import StepBatch

    assert piped["cycle_s"] == pytest.approx(
        cycle_s(stage_plan(dep, StepBatch(decode_kv_lens=(1024, 1024))), 4))
    assert piped["tokens_per_s"] == pytest.approx(8 / piped["cycle_s"])
    code, out, _ = run(capsys, "--model", "llama-3.1-8b", "--hardware", "h100", "--json")
    assert json.loads(out)["decode"]["pipelined"] is None
