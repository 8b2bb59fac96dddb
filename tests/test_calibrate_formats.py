"""Reading benchmark result files: vLLM bench serve, guidellm, genai-perf and AIPerf.

The fixtures in ``tests/fixtures/bench`` carry each tool's own field names (see generate.py
there); malformed copies of them must fail with one line naming the file, the field path inside
it, what was expected and what was given.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from infersim.calibrate.formats import METRICS, Load, detect_tool, read_benchmark
from infersim.errors import InfersimError

BENCH = Path(__file__).parent / "fixtures" / "bench"
AIPERF = "aiperf-c24/profile_export_aiperf.json"


def _load(name: str) -> dict:
    return json.loads((BENCH / name).read_text())


def test_vllm_detailed_run_is_replayed_request_by_request():
    (run,) = read_benchmark(BENCH / "vllm-c4.json")
    data = _load("vllm-c4.json")
    assert run.tool == "vllm"
    assert run.load == Load("concurrency", 4.0)
    assert run.requests == data["completed"] == len(run.prompt_tokens)
    assert run.prompt_tokens.tolist() == data["input_lens"]
    assert run.output_tokens.tolist() == data["output_lens"]
    # statistics recomputed from the per-request lists: vLLM's own median agrees, and p90 (which
    # vLLM printed no key for) is there too
    assert run.metrics["median_ttft_ms"] == pytest.approx(data["median_ttft_ms"], rel=1e-4)
    assert run.metrics["median_e2el_ms"] == pytest.approx(data["median_e2el_ms"], rel=1e-4)
    assert run.metrics["median_tpot_ms"] == pytest.approx(data["median_tpot_ms"], rel=1e-4)
    assert "p90_ttft_ms" in run.metrics and "p90_ttft_ms" not in data
    assert run.start_s is not None and run.start_s[0] == 0.0 and np.all(np.diff(run.start_s) >= 0)


def test_vllm_summary_only_run_keeps_its_statistics_and_mean_lengths():
    (run,) = read_benchmark(BENCH / "vllm-rate4.json")
    data = _load("vllm-rate4.json")
    assert run.load == Load("rate", 4.0, 1.0)
    assert run.prompt_tokens is None
    assert run.mean_prompt_tokens == pytest.approx(data["total_input_tokens"] / data["completed"])
    assert run.metrics == {k: data[k] for k in METRICS if k in data}
    assert "p90_ttft_ms" not in run.metrics  # vLLM printed p99 only


def test_guidellm_report_is_one_run_per_benchmark():
    runs = read_benchmark(BENCH / "guidellm.json")
    data = _load("guidellm.json")
    assert [r.load for r in runs] == [Load("concurrency", 2.0), Load("concurrency", 16.0)]
    assert [r.source for r in runs] == [f"{BENCH / 'guidellm.json'}#benchmarks.{i}"
                                        for i in range(2)]
    metrics = data["benchmarks"][1]["metrics"]
    assert runs[1].metrics == {
        "median_ttft_ms": metrics["time_to_first_token_ms"]["successful"]["median"],
        "p90_ttft_ms": metrics["time_to_first_token_ms"]["successful"]["percentiles"]["p90"],
        # guidellm's inter-token latency is per request (e2e - ttft)/(output - 1): vLLM's TPOT
        "median_tpot_ms": metrics["inter_token_latency_ms"]["successful"]["median"],
        # request_latency is in seconds
        "median_e2el_ms": 1e3 * metrics["request_latency"]["successful"]["median"]}
    assert runs[0].prompt_tokens.tolist() == [
        r["prompt_tokens"] for r in data["benchmarks"][0]["requests"]["successful"]]


def test_genai_perf_export():
    (run,) = read_benchmark(BENCH / "genai-perf-c8.json")
    data = _load("genai-perf-c8.json")
    assert run.tool == "genai-perf" and run.load == Load("concurrency", 8.0)
    assert run.mean_prompt_tokens == 512 and run.mean_output_tokens == 128
    # genai-perf's inter_token_latency is per request (e2e - ttft)/(output - 1): vLLM's TPOT
    assert run.metrics == {"median_ttft_ms": data["time_to_first_token"]["p50"],
                           "p90_ttft_ms": data["time_to_first_token"]["p90"],
                           "median_tpot_ms": data["inter_token_latency"]["p50"],
                           "median_e2el_ms": data["request_latency"]["p50"]}
    assert run.requests is None and run.prompt_tokens is None  # its export does not say


def test_aiperf_run_folder_is_replayed_from_its_per_request_records():
    (run,) = read_benchmark(BENCH / AIPERF)
    data = _load(AIPERF)
    records = [json.loads(line) for line in
               (BENCH / "aiperf-c24" / "profile_export.jsonl").read_text().splitlines()]
    assert run.tool == "aiperf" and run.load == Load("concurrency", 24.0)
    assert run.requests == len(records) == data["request_count"]["avg"]
    assert run.prompt_tokens.tolist() == [r["metrics"]["input_sequence_length"]["value"]
                                          for r in records]
    assert run.mean_output_tokens == pytest.approx(data["output_sequence_length"]["avg"])
    # recomputed from the records, they agree with AIPerf's own aggregates
    for ours, block in (("median_ttft_ms", "time_to_first_token"),
                        ("p90_ttft_ms", "time_to_first_token"),
                        ("median_tpot_ms", "inter_token_latency"),
                        ("median_e2el_ms", "request_latency")):
        stat = "p90" if ours.startswith("p90") else "p50"
        assert run.metrics[ours] == pytest.approx(data[block][stat], rel=1e-4), ours


def test_aiperf_export_alone_keeps_its_statistics(tmp_path):
    lone = tmp_path / "profile_export_aiperf.json"
    lone.write_text((BENCH / AIPERF).read_text())
    (run,) = read_benchmark(lone)
    assert run.prompt_tokens is None and run.requests == 64
    assert run.metrics["median_ttft_ms"] == _load(AIPERF)["time_to_first_token"]["p50"]


def test_malformed_aiperf_record_names_its_line(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "profile_export_aiperf.json").write_text((BENCH / AIPERF).read_text())
    lines = (BENCH / "aiperf-c24" / "profile_export.jsonl").read_text().splitlines()
    bad = json.loads(lines[2])
    bad["metrics"]["output_sequence_length"]["value"] = "many"
    lines[2] = json.dumps(bad)
    (folder / "profile_export.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(InfersimError) as err:
        read_benchmark(folder / "profile_export_aiperf.json")
    assert str(err.value) == (f"{folder / 'profile_export.jsonl'}:3: metrics."
                              "output_sequence_length.value: expected an integer >= 0, "
                              "got 'many'")


def test_detect_tool_refuses_other_json():
    assert detect_tool({"foo": 1}) is None
    assert detect_tool([1, 2]) is None


def _broken(tmp_path, name: str, edit) -> Path:
    data = _load(name)
    edit(data)
    path = tmp_path / Path(name).name
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(("name", "edit", "message"), [
    ("vllm-rate4.json", lambda d: d.update(request_rate=-1.0),
     "request_rate: expected a finite number >= 0, got -1.0"),
    ("vllm-rate4.json", lambda d: d.update(max_concurrency="8"),
     "max_concurrency: expected an integer >= 1 or null, got '8'"),
    ("vllm-rate4.json", lambda d: d.update(median_ttft_ms="fast"),
     "median_ttft_ms: expected a finite number >= 0, got 'fast'"),
    ("vllm-c4.json", lambda d: d.update(output_lens=d["output_lens"][:-1]),
     "output_lens: expected a list of 40 token counts, got '39 items'"),
    ("vllm-c4.json", lambda d: d["itls"].__setitem__(3, 0.5),
     "itls.3: expected a list of gaps in seconds, got 0.5"),
    ("guidellm.json", lambda d: d["benchmarks"][1]["config"]["strategy"].update(type_="sweep"),
     "benchmarks.1.config.strategy.type_: expected one of synchronous, concurrent, throughput, "
     "constant, poisson, got 'sweep'"),
    ("guidellm.json", lambda d: d["benchmarks"][0]["requests"]["successful"][2].pop(
        "prompt_tokens"),
     "benchmarks.0.requests.successful.2.prompt_tokens: expected a value (this field is "
     "required)"),
    (AIPERF, lambda d: d["input_config"]["loadgen"].pop("concurrency"),
     "input_config.loadgen.concurrency: expected the load: concurrency or request_rate"),
    ("genai-perf-c8.json", lambda d: d["time_to_first_token"].update(unit="parsecs"),
     "time_to_first_token.unit: expected a time unit (ms, s, sec, us, ns), got 'parsecs'"),
])
def test_malformed_fields_are_one_line_naming_file_field_expected_given(tmp_path, name, edit,
                                                                         message):
    path = _broken(tmp_path, name, edit)
    with pytest.raises(InfersimError) as err:
        read_benchmark(path)
    assert str(err.value) == f"{path}: {message}"


def test_not_json_and_unknown_json_and_missing_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"completed": 3,\n oops}')
    with pytest.raises(InfersimError, match=r"bad.json:2: not valid JSON"):
        read_benchmark(bad)
    other = tmp_path / "other.json"
    other.write_text('{"hello": 1}')
    with pytest.raises(InfersimError, match=re.escape(
            "expected a vllm bench serve --save-result JSON, a guidellm benchmarks.json or a "
            "genai-perf/AIPerf profile export, got 'keys hello'")):
        read_benchmark(other)
    with pytest.raises(InfersimError, match="expected an existing benchmark result file"):
        read_benchmark(tmp_path / "missing.json")


def test_hostile_result_files_are_one_line_errors(tmp_path):
    """Result files go through the same bounded JSON reader as every other input: nesting too
    deep, numbers of thousands of digits and devices are errors, not tracebacks or hangs."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InfersimError, match="nested at most"):
        read_benchmark(deep)
    huge = tmp_path / "huge.json"
    huge.write_text('{"completed": ' + "9" * 5000 + "}")
    with pytest.raises(InfersimError, match="4,300 digits"):
        read_benchmark(huge)
    with pytest.raises(InfersimError, match="readable UTF-8 JSON"):
        read_benchmark(Path("/dev/zero"))
