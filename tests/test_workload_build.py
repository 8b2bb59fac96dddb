"""WorkloadConfig and build_workload: validation, determinism, closed loops, mixes, traces."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from infersim.errors import InfersimError
from infersim.workload import (
    ClosedLoop,
    RequestTable,
    arrival_times,
    build_workload,
    list_mixes,
    load_mix,
    parse_workload,
)
from infersim.workload import arrivals as arr

FIXTURES = Path(__file__).parent / "fixtures" / "traces"
REAL = Path(__file__).resolve().parents[2] / "shared" / "traces"
FIXED = {"dist": "fixed", "value": 10}
POISSON = {"process": "poisson", "rate": 10}


def build(data: dict, seed: int = 0, base_dir: Path | None = None):
    return build_workload(parse_workload(data), np.random.default_rng(seed), base_dir=base_dir)


def table_bytes(t: RequestTable) -> bytes:
    parts = [t.arrival_s.tobytes(), t.prompt_tokens.tobytes(), t.output_tokens.tobytes(),
             t.class_index.tobytes(), repr(t.class_names).encode()]
    if t.prefix_hashes is not None:
        parts += [h.tobytes() for h in t.prefix_hashes]
    return b"|".join(parts)


def test_the_documented_example():
    t = build({"arrival": {"process": "poisson", "rate": 20}, "requests": 2000,
               "prompt_tokens": {"dist": "lognormal", "mean": 1024, "sigma": 0.6, "max": 32768},
               "output_tokens": {"dist": "fixed", "value": 256}})
    assert isinstance(t, RequestTable) and len(t) == 2000
    assert t.arrival_s[0] == 0 and np.all(np.diff(t.arrival_s) >= 0)
    assert t.arrival_s[-1] == pytest.approx(1999 / 20, rel=0.1)  # sd of the sum: ~2 %
    assert t.prompt_tokens.mean() == pytest.approx(1024, rel=0.05)
    assert np.all(t.output_tokens == 256)
    assert t.class_names == ("default",) and np.all(t.class_index == 0)


@pytest.mark.parametrize("data", [
    {"arrival": {"process": "gamma", "rate": 5, "burstiness": 0.5}, "requests": 300, "mix": "chat"},
    {"arrival": {"process": "diurnal", "mean_rate": 5, "amplitude": 0.5, "period_s": 60},
     "requests": 300, "mix": "assistant-fleet"},
    {"trace": {"format": "mooncake", "path": str(FIXTURES / "mooncake.jsonl")}},
    {"trace": {"format": "lengths", "path": str(FIXTURES / "lengths.csv"), "shuffle": True},
     "arrival": {"process": "poisson", "rate": 1}},
])
def test_same_seed_same_bytes_other_seed_other_table(data):
    a, b = build(data, seed=7), build(data, seed=7)
    assert table_bytes(a) == table_bytes(b)
    if "trace" not in data or data["trace"].get("shuffle"):
        assert table_bytes(a) != table_bytes(build(data, seed=8))


def test_changing_output_lengths_leaves_arrivals_and_prompts_alone():
    base = {"arrival": POISSON, "requests": 500,
            "prompt_tokens": {"dist": "lognormal", "mean": 500, "sigma": 1.0}}
    a = build({**base, "output_tokens": {"dist": "fixed", "value": 10}})
    b = build({**base, "output_tokens": {"dist": "uniform", "low": 1, "high": 900}})
    assert a.arrival_s.tobytes() == b.arrival_s.tobytes()
    assert a.prompt_tokens.tobytes() == b.prompt_tokens.tobytes()


def test_closed_loop_fields():
    w = build({"concurrency": 32, "think_time_s": 2.5, "think_dist": "exponential",
               "requests": 100, "prompt_tokens": FIXED, "output_tokens": FIXED})
    assert isinstance(w, ClosedLoop)
    assert (w.users, w.think_time_s, w.think_dist, len(w)) == (32, 2.5, "exponential", 100)
    assert np.all(w.requests.prompt_tokens == 10)


def test_offline_batch():
    t = build({"arrival": {"process": "offline"}, "requests": 50, "prompt_tokens": FIXED,
               "output_tokens": FIXED})
    assert np.all(t.arrival_s == 0)


def test_inline_mixture_shares_and_per_class_slos():
    t = build({"arrival": POISSON, "requests": 40_000, "slo": {"ttft_ms": 2000},
               "mix": {"classes": [
                   {"name": "agent", "weight": 1, "mix": "coding-agent",
                    "slo": {"tpot_ms": 30}},
                   {"name": "chat", "weight": 3, "prompt_tokens": FIXED,
                    "output_tokens": {"dist": "fixed", "value": 7}, "slo": {"ttft_ms": 500}}]}})
    assert t.class_names == ("agent", "chat")
    share = np.bincount(t.class_index) / len(t)
    assert share[0] == pytest.approx(0.25, abs=0.01)
    chat = t.class_index == 1
    assert np.all(t.prompt_tokens[chat] == 10) and np.all(t.output_tokens[chat] == 7)
    # Class targets override the workload-wide ones key by key.
    assert [dict(s) for s in t.class_slo] == [{"ttft_ms": 2000.0, "tpot_ms": 30.0},
                                              {"ttft_ms": 500.0}]


def test_nested_named_mixture_names_and_slos():
    t = build({"arrival": POISSON, "requests": 1000,
               "mix": {"classes": [{"name": "fleet", "weight": 1, "mix": "assistant-fleet",
                                    "slo": {"ttft_ms": 250}},
                                   {"name": "code", "weight": 1, "mix": "coding"}]}})
    assert t.class_names == ("fleet/chat", "fleet/coding-agent", "fleet/summariser", "code")
    assert dict(t.class_slo[0]) == {"ttft_ms": 250.0, "tpot_ms": 100.0}
    assert dict(t.class_slo[2]) == {"ttft_ms": 250.0, "e2el_ms": 60000.0}
    assert dict(t.class_slo[3]) == {}


def test_a_mix_that_includes_itself_is_an_error(tmp_path):
    (tmp_path / "loop.yaml").write_text(
        "classes: [{name: again, weight: 1, mix: loop.yaml}]\n")
    with pytest.raises(InfersimError) as err:
        build({"arrival": POISSON, "requests": 5, "mix": "loop.yaml"}, base_dir=tmp_path)
    assert str(err.value) == ("mix: expected mixes that do not include themselves, got "
                              "'loop.yaml -> loop.yaml'")


def test_unknown_mix_lists_the_shipped_ones():
    with pytest.raises(InfersimError) as err:
        build({"arrival": POISSON, "requests": 5, "mix": "chitchat"})
    assert str(err.value).startswith("mix: expected a shipped mix (")
    assert "chat" in str(err.value) and str(err.value).endswith("got 'chitchat'")


def test_bad_mix_file_names_the_file_and_field(tmp_path):
    (tmp_path / "bad.yaml").write_text("prompt_tokens: {dist: fixed, value: 0}\n"
                                       "output_tokens: {dist: fixed, value: 1}\n")
    with pytest.raises(InfersimError) as err:
        build({"arrival": POISSON, "requests": 5, "mix": "bad.yaml"}, base_dir=tmp_path)
    assert str(err.value) == (f"{tmp_path / 'bad.yaml'}: prompt_tokens.value: expected an "
                              "integer >= 1, got 0")


# ---------------------------------------------------------------------------------------------
# Traces through the config


def test_trace_relative_path_requests_cap_and_max_requests():
    trace = {"format": "azure", "path": "azure_2023.csv"}
    assert len(build({"trace": trace}, base_dir=FIXTURES)) == 4
    assert len(build({"trace": trace, "requests": 2}, base_dir=FIXTURES)) == 2
    assert len(build({"trace": {**trace, "max_requests": 3}, "requests": 2},
                     base_dir=FIXTURES)) == 2
    assert len(build({"trace": {**trace, "max_requests": 3}}, base_dir=FIXTURES)) == 3


def test_trace_window_and_speedup_through_the_config():
    t = build({"trace": {"format": "mooncake", "path": "mooncake.jsonl.gz", "speedup": 3,
                         "window_s": [0, 5]}}, base_dir=FIXTURES)
    assert t.arrival_s.tolist() == [0.0, 0.0, 1.0]
    assert [len(h) for h in t.prefix_hashes] == [2, 3, 1]


def test_timed_trace_lengths_under_a_synthetic_or_closed_loop():
    t = build({"trace": {"format": "azure", "path": "azure_2023.csv"},
               "arrival": {"process": "offline"}}, base_dir=FIXTURES)
    assert np.all(t.arrival_s == 0) and t.prompt_tokens.tolist() == [374, 396, 2048, 12]
    w = build({"trace": {"format": "mooncake", "path": "mooncake.jsonl"}, "concurrency": 2},
              base_dir=FIXTURES)
    assert isinstance(w, ClosedLoop) and w.requests.prefix_hashes is not None


def test_lengths_trace_needs_an_arrival_process():
    with pytest.raises(InfersimError) as err:
        parse_workload({"trace": {"format": "lengths", "path": "x.csv"}})
    assert str(err.value) == ("workload: expected an arrival process (e.g. {process: poisson, "
                              "rate: 10}) or concurrency (a lengths trace has no timestamps), "
                              "got neither")


def test_shuffled_lengths_table_is_a_permutation():
    t = build({"trace": {"format": "lengths", "path": "lengths.csv", "shuffle": True},
               "arrival": POISSON}, base_dir=FIXTURES, seed=3)
    assert sorted(t.prompt_tokens.tolist()) == [100, 2015, 3772]


def test_missing_trace_file_names_the_resolved_path(tmp_path):
    with pytest.raises(InfersimError) as err:
        build({"trace": {"format": "azure", "path": "gone.csv"}}, base_dir=tmp_path)
    assert str(err.value) == f"{tmp_path / 'gone.csv'}: no such file; expected an existing trace file"


# ---------------------------------------------------------------------------------------------
# Validation: one line naming the field


@pytest.mark.parametrize("data, message", [
    ({"arrival": {"process": "poisson", "rate": -1}, "requests": 10, "prompt_tokens": FIXED,
      "output_tokens": FIXED},
     "workload.arrival.rate: expected a number >= 1e-06, got -1"),
    ({"arrival": {"process": "gamma", "rate": 1}, "requests": 10, "prompt_tokens": FIXED,
      "output_tokens": FIXED},
     "workload.arrival: expected exactly one of burstiness or cv, got neither"),
    ({"arrival": {"process": "steps", "steps": [[5, 1]]}, "requests": 10,
      "prompt_tokens": FIXED, "output_tokens": FIXED},
     "workload.arrival.steps: expected the first step to start at 0 s, got 5.0"),
    ({"arrival": {"process": "diurnal", "mean_rate": 1, "amplitude": 1.5, "period_s": 10},
      "requests": 10, "prompt_tokens": FIXED, "output_tokens": FIXED},
     "workload.arrival.amplitude: expected a number < 1, got 1.5"),
    ({"arrival": POISSON, "requests": 10, "prompt_tokens": {"dist": "lognormal", "mean": 1024},
      "output_tokens": FIXED},
     "workload.prompt_tokens.sigma: expected a value (this field is required)"),
    ({"arrival": POISSON, "requests": 10, "prompt_tokens": FIXED},
     "workload: expected both prompt_tokens and output_tokens, got no output_tokens"),
    ({"arrival": POISSON, "requests": 10, "prompt_tokens": FIXED, "output_tokens": FIXED,
      "mix": "chat"},
     "workload: expected exactly one of prompt_tokens + output_tokens, mix or trace, got "
     "prompt_tokens/output_tokens and mix"),
    ({"requests": 10, "mix": "chat"},
     "workload: expected an arrival process (e.g. {process: poisson, rate: 10}) or "
     "concurrency, got neither"),
    ({"arrival": POISSON, "concurrency": 3, "requests": 10, "mix": "chat"},
     "workload: expected arrival (open loop) or concurrency (closed loop), got both"),
    ({"arrival": POISSON, "mix": "chat"},
     "workload: expected requests (how many to generate), got none"),
    ({"arrival": POISSON, "requests": True, "mix": "chat"},
     "workload.requests: expected an integer, got True"),
    ({"arrival": POISSON, "requests": 10, "mix": "chat", "think_time_s": 1},
     "workload: expected think_time_s/think_dist only with concurrency (closed loop)"),
    ({"arrival": POISSON, "requests": 10, "mix": "chat", "rate": 3},
     "workload.rate: unknown key; expected one of the keys arrival, concurrency, think_time_s, "
     "think_dist, requests, prompt_tokens, output_tokens, mix, trace, slo (did you mean 'trace'?)"),
    ({"arrival": POISSON, "requests": 10,
      "mix": {"classes": [{"name": "a", "weight": 0, "mix": "chat"}]}},
     "workload.mix.classes.0.weight: expected a number > 0, got 0"),
    ({"arrival": POISSON, "requests": 10,
      "mix": {"classes": [{"name": "a", "weight": 1, "mix": "chat", "slo": {"ttft": 3}}]}},
     "workload.mix.classes.0.slo.ttft: unknown key; expected one of the keys ttft_ms, tpot_ms, "
     "itl_ms, e2el_ms (did you mean 'ttft_ms'?)"),
    ({"trace": {"format": "csv", "path": "x.csv"}},
     "workload.trace.format: expected one of 'azure', 'mooncake', 'burstgpt' or 'lengths', "
     "got 'csv'"),
    ({"trace": {"format": "azure", "path": "x.csv", "window_s": [10, 5]}},
     "workload.trace: expected window_s end > start, got [10.0, 5.0]"),
    ({"trace": {"format": "azure", "path": "x.csv", "speedup": 2},
      "arrival": {"process": "offline"}},
     "workload: expected trace.speedup only when replaying the trace's own timestamps, got it "
     "with arrival/concurrency"),
])
def test_bad_config_is_one_line_naming_the_field(data, message):
    with pytest.raises(InfersimError) as err:
        parse_workload(data)
    assert str(err.value) == message


def test_json_schema_is_generated():
    from infersim.workload import WorkloadConfig

    schema = WorkloadConfig.model_json_schema()
    assert {"arrival", "concurrency", "requests", "mix", "trace", "slo"} <= set(schema["properties"])


# ---------------------------------------------------------------------------------------------
# The shipped mixes


def test_every_shipped_mix_loads_and_records_its_sources():
    names = list_mixes()
    assert {"chat", "coding", "coding-agent", "summariser", "long-context",
            "assistant-fleet"} <= set(names)
    for name in names:
        spec, _ = load_mix(name)
        assert spec.description and spec.sources and spec.derivation, name


@pytest.mark.parametrize("name, prompt_share", [
    ("coding-agent", 0.20),  # 80 % of tokens are output
    ("summariser", 0.80),  # 80 % of tokens are prompt
])
def test_token_split_of_the_mission_mixes(name, prompt_share):
    t = build({"arrival": {"process": "offline"}, "requests": 100_000, "mix": name})
    p, o = t.prompt_tokens.sum(), t.output_tokens.sum()
    assert p / (p + o) == pytest.approx(prompt_share, abs=0.01)


@pytest.mark.parametrize("name, relative, fmt", [
    ("chat", "azure-2023/AzureLLMInferenceTrace_conv.csv", "azure"),
    ("coding", "azure-2023/AzureLLMInferenceTrace_code.csv", "azure"),
    ("long-context", "mooncake-fast25/conversation_trace.jsonl", "mooncake"),
    ("arxiv-summarization",
     "arxiv-summarization/arxiv_summarization_stats_llama2_tokenizer_filtered_v2.csv", "lengths"),
])
def test_fitted_mixes_reproduce_their_trace(name, relative, fmt):
    path = REAL / relative
    if not path.is_file():
        pytest.skip(f"real trace {relative} not present")
    from infersim.workload import load_trace

    trace = load_trace(path, fmt)
    t = build({"arrival": {"process": "offline"}, "requests": 100_000, "mix": name})
    for sampled, real in ((t.prompt_tokens, trace.prompt_tokens),
                          (t.output_tokens, trace.output_tokens)):
        # Means within 4 % (sampling sd ~0.5 %, table interpolation up to 3 % on tiny outputs).
        assert sampled.mean() == pytest.approx(real.mean(), rel=0.04)
        # Kolmogorov-Smirnov distance between the sampled and the real distribution.
        grid = np.unique(real)
        cdf_real = np.searchsorted(np.sort(real), grid, side="right") / len(real)
        cdf_sim = np.searchsorted(np.sort(sampled), grid, side="right") / len(sampled)
        assert np.max(np.abs(cdf_real - cdf_sim)) < 0.03
        assert math.isclose(np.median(sampled), np.median(real), rel_tol=0.1)


@pytest.mark.parametrize("arrival, direct", [
    ({"process": "poisson", "rate": 4}, lambda n, g: arr.poisson_arrivals(n, 4, g)),
    ({"process": "gamma", "rate": 4, "cv": 2}, lambda n, g: arr.gamma_arrivals(n, 4, 0.25, g)),
    ({"process": "gamma", "rate": 4, "burstiness": 0.25},
     lambda n, g: arr.gamma_arrivals(n, 4, 0.25, g)),
    ({"process": "steps", "steps": [[0, 1], [10, 4]]},
     lambda n, g: arr.step_arrivals(n, [[0, 1], [10, 4]], g)),
    ({"process": "diurnal", "mean_rate": 4, "amplitude": 0.3, "period_s": 50, "phase_s": 5},
     lambda n, g: arr.diurnal_arrivals(n, 4, 0.3, 50, g, phase_s=5)),
    ({"process": "offline"}, lambda n, g: arr.offline_arrivals(n)),
])
def test_config_arrivals_are_the_documented_processes(arrival, direct):
    config = parse_workload({"arrival": arrival, "requests": 200, "mix": "chat"}).arrival
    got = arrival_times(config, 200, np.random.default_rng(1))
    assert got.tobytes() == direct(200, np.random.default_rng(1)).tobytes()


def test_a_trace_is_one_class_carrying_the_workload_slo():
    t = build({"trace": {"format": "azure", "path": "azure_2023.csv"}, "slo": {"ttft_ms": 300}},
              base_dir=FIXTURES)
    assert t.class_names == ("default",) and [dict(s) for s in t.class_slo] == [{"ttft_ms": 300.0}]
