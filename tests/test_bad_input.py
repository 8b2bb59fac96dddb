"""Everything a user can get wrong in a scenario gets one line, exit status 2, no traceback.

Each case starts from a small valid scenario, breaks one thing, runs the real command-line entry
point in-process, and checks: exit status 2, exactly one line on stderr, the field path (or the
file) named in it, and no Python traceback.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from strategies import with_value

from infersim import cli

BASE = {
    "name": "bad-input-base",
    "seed": 1,
    "model": "llama-3.1-8b",
    "precision": "bf16",
    "pools": {
        "prefill": {"role": "prefill", "hardware": "h100", "instances": 1},
        "decode": {"role": "decode", "hardware": "h100", "instances": 2},
    },
    "links": [{"between": ["prefill", "decode"], "bandwidth": "50 GB/s", "latency": "10 us"}],
    "router": {"policy": "least_loaded"},
    "workload": {
        "arrival": {"process": "poisson", "rate": 5},
        "requests": 20,
        "prompt_tokens": {"dist": "lognormal", "mean": 512, "sigma": 0.5},
        "output_tokens": {"dist": "fixed", "value": 32},
    },
    "slo": {"ttft_ms": 1000, "itl_ms": 50, "percentile": 99},
}


def _drop(data: dict, path: str) -> dict:
    out = copy.deepcopy(data)
    node = out
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    del node[keys[-1]]
    return out


TRACE_HEADER = "TIMESTAMP,ContextTokens,GeneratedTokens\n"

# (id, scenario data or raw text, extra command-line arguments, text the error must contain)
CASES = [
    # wrong types
    ("instances-string", with_value(BASE, "pools.decode.instances", "four"), [],
     "pools.decode.instances"),
    ("instances-float", with_value(BASE, "pools.decode.instances", 2.5), [], "pools.decode.instances"),
    ("tp-bool", with_value(BASE, "pools.decode.tp", True), [], "pools.decode.tp"),
    ("pools-list", with_value(BASE, "pools", ["prefill", "decode"]), [], "pools"),
    ("chunked-prefill-string", with_value(BASE, "pools.decode.chunked_prefill", "sometimes"), [],
     "pools.decode.chunked_prefill"),
    ("seed-string", with_value(BASE, "seed", "one"), [], "seed"),
    # out-of-range numbers
    ("instances-negative", with_value(BASE, "pools.decode.instances", -3), [],
     "pools.decode.instances"),
    ("tp-zero", with_value(BASE, "pools.prefill.tp", 0), [], "pools.prefill.tp"),
    ("memory-fraction-above-one", with_value(BASE, "pools.decode.memory_fraction", 1.5), [],
     "pools.decode.memory_fraction"),
    ("percentile-120", with_value(BASE, "slo.percentile", 120), [], "slo.percentile"),
    ("percentile-0", with_value(BASE, "slo.percentile", 0), [], "slo.percentile"),
    ("ttft-negative", with_value(BASE, "slo.ttft_ms", -5), [], "slo.ttft_ms"),
    ("rate-negative", with_value(BASE, "workload.arrival.rate", -1), [], "workload.arrival.rate"),
    ("requests-zero", with_value(BASE, "workload.requests", 0), [], "workload.requests"),
    ("seed-negative", with_value(BASE, "seed", -1), [], "seed"),
    # unknown keys
    ("unknown-top-key", {**BASE, "modle": "x"}, [], "modle"),
    ("unknown-pool-key", with_value(BASE, "pools.decode.gpus", 4), [], "pools.decode.gpus"),
    ("unknown-link-key", with_value(BASE, "links.0.speed", "1 GB/s"), [], "links.0.speed"),
    ("unknown-router-key", with_value(BASE, "router.strategy", "x"), [], "router.strategy"),
    ("unknown-slo-key", with_value(BASE, "slo.ttfb_ms", 5), [], "slo.ttfb_ms"),
    ("unknown-workload-key", with_value(BASE, "workload.rate", 5), [], "workload.rate"),
    # unknown names and choices
    ("unknown-chip", with_value(BASE, "pools.decode.hardware", "tpu-v9"), [], "pools.decode.hardware"),
    ("unknown-model", with_value(BASE, "model", "gpt-9"), [], "model"),
    ("missing-model-config", with_value(BASE, "model", "configs/none/config.json"), [], "model"),
    ("unknown-role", with_value(BASE, "pools.decode.role", "verify"), [], "pools.decode.role"),
    ("unknown-precision", with_value(BASE, "precision", "fp9"), [], "precision"),
    ("precision-chip-lacks", with_value(BASE, "pools.decode.precision", "fp4"), [],
     "pools.decode.precision"),
    ("unknown-kv-precision", with_value(BASE, "pools.decode.kv_precision", "fp3"), [],
     "pools.decode.kv_precision"),
    ("unknown-preemption", with_value(BASE, "pools.decode.preemption", "drop"), [],
     "pools.decode.preemption"),
    ("unknown-router", with_value(BASE, "router.policy", "fastest"), [], "router.policy"),
    ("unknown-arrival", with_value(BASE, "workload.arrival.process", "hawkes"), [],
     "workload.arrival.process"),
    ("unknown-length-dist", with_value(BASE, "workload.prompt_tokens.dist", "zipf"), [],
     "workload.prompt_tokens.dist"),
    ("pool-name-with-space", {**BASE, "name": "my run"}, [], "name"),
    # topology
    ("no-link", with_value(BASE, "links", []), [], "links"),
    ("link-to-unknown-pool", with_value(BASE, "links.0.between", ["prefill", "decoder"]), [],
     "links.0.between.1"),
    ("link-to-itself", with_value(BASE, "links.0.between", ["decode", "decode"]), [],
     "links.0.between"),
    ("link-one-end", with_value(BASE, "links.0.between", ["decode"]), [], "links.0.between"),
    ("duplicate-link", with_value(BASE, "links", BASE["links"] * 2), [], "links.1.between"),
    ("prefill-without-decode", with_value(BASE, "pools.decode.role", "mixed"), [],
     "pools.prefill.role"),
    ("decode-without-prefill", with_value(BASE, "pools.prefill.role", "mixed"), [],
     "pools.decode.role"),
    ("scaleup-domain-overfull",
     with_value(with_value(with_value(with_value(BASE, "links", []), "pools.prefill.scaleup_domain", "node0"),
               "pools.decode.scaleup_domain", "node0"), "pools.decode.instances", 12), [],
     "pools.decode.scaleup_domain"),
    ("model-does-not-fit", with_value(BASE, "model", "llama-3.1-405b"), [], "pools.prefill"),
    ("tp-not-dividing-heads", with_value(BASE, "pools.decode.tp", 3), [], "pools.decode.tp"),
    ("tp-beyond-scaleup-domain", with_value(BASE, "pools.decode.tp", 16), [], "pools.decode.tp"),
    ("pp-beyond-layers", with_value(BASE, "pools.decode.pp", 64), [], "pools.decode.pp"),
    ("empty-pools", with_value(BASE, "pools", {}), [], "pools"),
    ("missing-workload", _drop(BASE, "workload"), [], "workload"),
    ("missing-hardware", _drop(BASE, "pools.decode.hardware"), [], "pools.decode.hardware"),
    ("arrival-and-concurrency", with_value(BASE, "workload.concurrency", 4), [], "workload"),
    # units
    ("bandwidth-in-bytes", with_value(BASE, "links.0.bandwidth", "50 GB"), [], "links.0.bandwidth"),
    ("unknown-unit", with_value(BASE, "links.0.bandwidth", "50 XB/s"), [], "links.0.bandwidth"),
    ("latency-in-bytes", with_value(BASE, "links.0.latency", "10 GB"), [], "links.0.latency"),
    ("time-limit-words", {**BASE, "time_limit": "ten minutes"}, [], "time_limit"),
    # traces
    ("empty-trace", with_value(_drop(_drop(_drop(BASE, "workload.prompt_tokens"),
                                     "workload.output_tokens"), "workload.arrival"),
                         "workload.trace", {"format": "azure", "path": "empty.csv"}), [],
     "empty.csv"),
    ("missing-trace", with_value(_drop(_drop(_drop(BASE, "workload.prompt_tokens"),
                                       "workload.output_tokens"), "workload.arrival"),
                           "workload.trace", {"format": "azure", "path": "nowhere.csv"}), [],
     "nowhere.csv"),
    # command line
    ("set-unknown-path", BASE, ["--set", "pools.decode.gpus=3"], "pools.decode.gpus"),
    ("set-unknown-pool", BASE, ["--set", "pools.verify.instances=1"], "pools.verify"),
    ("set-no-equals", BASE, ["--set", "pools.decode.instances"], "--set"),
    ("set-index-out-of-range", BASE, ["--set", "links.5.bandwidth=1"], "links.5"),
    ("set-bad-value", BASE, ["--set", "pools.decode.instances=-3"], "pools.decode.instances"),
    ("seed-flag-word", BASE, ["--seed", "abc"], "--seed"),
    ("seed-flag-negative", BASE, ["--seed", "-1"], "--seed"),
    # files
    ("malformed-yaml", "name: x\npools: {prefill: [1, 2\n", [], "scenario.yaml"),
    ("top-level-list", "- name: x\n", [], "scenario.yaml"),
    ("empty-file", "", [], "scenario.yaml"),
    ("tab-indented-yaml", "name: x\npools:\n\tprefill: {}\n", [], "scenario.yaml"),
    ("duplicate-key", "name: x\nseed: 1\nseed: 2\n", [], "scenario.yaml:3: seed"),
]


def _write(tmp_path: Path, content) -> Path:
    (tmp_path / "empty.csv").write_text(TRACE_HEADER)  # a header and no rows
    path = tmp_path / "scenario.yaml"
    path.write_text(content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False))
    return path


def _run(argv: list[str], capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize(("content", "args", "needle"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_bad_scenario_is_one_line_exit_2(tmp_path, capsys, content, args, needle):
    path = _write(tmp_path, content)
    command = "run" if args else "validate"
    extra = [*args, "--out", str(tmp_path / "out")] if command == "run" else args
    code, err = _run([command, str(path), *extra], capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert needle in lines[0], lines[0]
    assert lines[0].startswith("infersim: error: ")


def test_there_are_at_least_forty_cases():
    assert len(CASES) >= 40


def test_missing_scenario_file(tmp_path, capsys):
    missing = str(tmp_path / "nope.yaml")
    code, err = _run(["validate", missing], capsys)
    assert code == 2
    assert err.count("\n") == 1 and missing in err and "Traceback" not in err


def test_error_names_file_field_expected_and_given(tmp_path, capsys):
    path = _write(tmp_path, with_value(BASE, "pools.decode.instances", -3))
    _, err = _run(["validate", str(path)], capsys)
    assert err.strip() == (f"infersim: error: {path}: pools.decode.instances: "
                           "expected an integer >= 1, got -3")


def test_unknown_key_suggests_the_right_one(tmp_path, capsys):
    path = _write(tmp_path, with_value(BASE, "pools.decode.instance", 4))
    _, err = _run(["validate", str(path)], capsys)
    assert "unknown key" in err and "did you mean 'instances'" in err


def test_the_real_command_prints_one_line_and_exits_2(tmp_path):
    # A fresh interpreter, as a user runs it: no warning or traceback may reach stderr.
    import subprocess
    import sys

    path = _write(tmp_path, with_value(BASE, "links.0.bandwidth", "50 GB"))
    proc = subprocess.run([sys.executable, "-c", "from infersim.cli import main; main()",
                           "run", str(path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "links.0.bandwidth" in proc.stderr
    assert "Traceback" not in proc.stderr
