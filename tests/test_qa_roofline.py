"""QA: ``infersim roofline`` refuses tensor-parallel splits no engine can run.

Tensor parallelism splits each layer's attention heads over the chips of a stage, so ``tp`` must
divide the query heads and divide (or be a multiple of, replicating) the KV heads — the same rule
the scenario layer applies to pools. A roofline for ``--tp 3`` on a 32-head model would report
times for a layout that does not exist.
"""

from __future__ import annotations

import pytest

from infersim.cli import main


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["roofline", *args])
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


@pytest.mark.parametrize(("model", "tp", "expected"), [
    ("llama-3.1-8b", "3", "a divisor of llama-3.1-8b's 32 attention heads"),
    ("llama-3.1-8b", "64", "a divisor of llama-3.1-8b's 32 attention heads"),
    ("llama-3.1-70b", "6", "a divisor of llama-3.1-70b's 64 attention heads"),
])
def test_a_tp_that_does_not_split_the_heads_is_one_line_exit_2(capsys, model, tp, expected):
    code, out, err = run(capsys, "--model", model, "--hardware", "h100", "--tp", tp)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("infersim: error: --tp: expected ")
    assert expected in err and f"got {tp}" in err


def test_kv_heads_must_split_or_replicate_evenly(capsys, tmp_path):
    # 48 query heads, 8 KV heads: tp 6 divides the query heads, but 6 chips can neither split
    # 8 KV heads evenly nor hold whole replicas of them.
    config = tmp_path / "config.json"
    config.write_text('{"hidden_size": 6144, "num_hidden_layers": 4, "num_attention_heads": 48, '
                      '"num_key_value_heads": 8, "intermediate_size": 16384, '
                      '"vocab_size": 32000}')
    code, _, err = run(capsys, "--model", str(config), "--hardware", "h100", "--tp", "6")
    assert code == 2 and err.count("\n") == 1
    assert "--tp: expected a divisor or a multiple of" in err and "8 KV heads, got 6" in err
    # tp 16 on Llama-3.1-70B (64 heads, 8 KV heads): each KV head replicated on two chips.
    code, _, err = run(capsys, "--model", "llama-3.1-70b", "--hardware", "b200", "--tp", "16",
                       "--json")
    assert code == 0, err


def test_valid_splits_still_answer(capsys):
    code, out, err = run(capsys, "--model", "llama-3.1-70b", "--hardware", "h100", "--tp", "4",
                         "--json")
    assert code == 0 and err == "" and out.startswith("{")


def test_ideal_tensor_parallel_all_reduce_runs_at_full_link_bandwidth():
    # Ideal mode strips every fitted term of the all-reduce (NCCL's bus efficiency and call
    # cost, fitted on H100). What remains is the engines' custom all-reduce on NVSwitch at the
    # datasheet's link figures: one-shot, 2 latencies + (p-1) messages read at the link's
    # one-direction bandwidth, or two-shot, 4 latencies + 2(p-1)/p messages, whichever is
    # faster; twice per layer.
    from infersim.cost import Deployment, StepBatch, step_time
    from infersim.hardware import load_hardware
    from infersim.model import load_model

    model, h100 = load_model("llama-3.1-70b"), load_hardware("h100")
    tokens = 64
    cost = step_time(Deployment(model=model, hardware=h100, tp=4, ideal=True),
                     StepBatch(decode_kv_lens=(512,) * tokens))
    message = tokens * model.hidden_size * 2.0  # bf16 activations of every token
    bw, lat = h100.scaleup_bandwidth, h100.scaleup_latency_s
    one_shot = 2 * lat + 3 * message / bw
    two_shot = 4 * lat + 2 * 3 / 4 * message / bw
    assert one_shot < two_shot  # 256 KiB on 4 GPUs: below the crossover
    assert cost.comm_s == pytest.approx(2 * model.num_layers * one_shot, rel=1e-12)


def test_kv_shortfall_message_reads_as_one_sentence(capsys):
    # Weights fit on 2× H100 but 64 sequences of 2,049 tokens of KV do not.
    code, out, err = run(capsys, "--model", "llama-3.1-70b", "--hardware", "h100", "--tp", "2",
                         "--batch", "64", "--prompt", "2048")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.strip() == (
        "infersim: error: llama-3.1-70b bf16 on 2× h100 (144 GB at memory_fraction 0.9) has "
        "room for 8,827 tokens of KV after 141 GB of weights, fewer than the 131,136 required: "
        "use at least 4 chips (tp·pp)")
