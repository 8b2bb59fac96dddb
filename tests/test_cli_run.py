"""``infersim run / compare / validate / schema`` and ``infersim.simulate`` end to end.

Runs use the shipped scenarios with small request counts (``--set workload.requests=...``) so the
whole file stays within a few seconds.
"""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from strategies import scenario_dicts

import infersim
from infersim import cli
from infersim.paths import shipped_dir
from infersim.report.outputs import dumps_summary
from infersim.report.save import save_result
from infersim.summary import VLLM_KEYS

SEED_SCENARIOS = sorted(p.stem for p in shipped_dir("scenarios").glob("*.yaml"))
FEW = ["workload.requests=120"]


def _main(argv, capsys) -> tuple[int, str, str]:
    try:
        cli.main(argv)
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """The default scenario, run twice into two folders by the Python API."""
    base = tmp_path_factory.mktemp("runs")
    first = infersim.simulate("default", overrides=["workload.requests=200"])
    save_result(first, base / "a")
    second = infersim.simulate("default", overrides=["workload.requests=200"])
    save_result(second, base / "b", plots=False)
    return first, base


def test_run_without_arguments_runs_the_default_into_runs_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = _main(["run", "--set", "workload.requests=60", "--no-plots"], capsys)
    assert code == 0, err
    folder = tmp_path / "runs" / "default"
    assert (folder / "summary.json").is_file() and (folder / "requests.parquet").is_file()
    assert "p99" in out and "$ per million output tokens" in out


def test_running_the_default_twice_keeps_both_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = ["run", "--set", "workload.requests=30", "--no-plots", "--quiet"]
    assert _main(args, capsys)[0] == 0
    first = (tmp_path / "runs" / "default" / "summary.json").read_bytes()
    code, _, err = _main(args, capsys)
    assert code == 0, err
    assert (tmp_path / "runs" / "default" / "summary.json").read_bytes() == first  # untouched
    assert (tmp_path / "runs" / "default-2" / "summary.json").is_file()
    assert _main([*args, "--force"], capsys)[0] == 0  # --force replaces runs/default itself
    assert not (tmp_path / "runs" / "default-3").exists()


def test_summary_has_vllm_keys_backend_cost_and_provenance(default_run):
    result, base = default_run
    summary = json.loads((base / "a" / "summary.json").read_text())
    assert summary["backend"] == "infersim"
    assert (summary["model_id"], summary["num_prompts"], summary["request_rate"],
            summary["burstiness"]) == ("llama-3.1-8b", 200, 8.0, 1.0)
    assert set(VLLM_KEYS) <= set(summary)
    assert summary["completed"] == 200 and summary["failed"] == 0
    assert summary["seed"] == result.scenario.seed
    assert summary["scenario_hash"] == result.scenario.hash and len(summary["scenario_hash"]) == 16
    assert summary["infersim_version"] == infersim.__version__
    assert summary["scenario"]["name"] == "default"
    cost = summary["cost"]
    assert cost["dollars_per_hour"] == pytest.approx(3 * 2.99)  # three H100s
    assert cost["usd_per_million_output_tokens"] > cost["usd_per_million_input_tokens"] > 0
    assert cost["joules_per_output_token"] > 0 and "prefill pools" in cost["split_rule"]
    assert set(cost["pools"]) == {"prefill", "decode"}


def test_same_scenario_and_seed_give_byte_identical_files(default_run):
    _, base = default_run
    for name in ("summary.json", "requests.parquet", "token_gaps.parquet", "timeseries.parquet",
                 "decode_epochs.parquet", "decode_runs.parquet", "links.parquet"):
        assert (base / "a" / name).read_bytes() == (base / "b" / name).read_bytes(), name


def test_outputs_load_in_pandas_and_agree_with_the_summary(default_run):
    result, base = default_run
    requests = pd.read_parquet(base / "a" / "requests.parquet")
    assert len(requests) == 200
    done = requests[requests["completed"]]
    assert (done["e2e_s"] >= done["ttft_s"]).all()
    assert (done["ttft_s"] > 0).all()
    gaps = pd.read_parquet(base / "a" / "token_gaps.parquet")
    # every completed request has output_tokens - 1 gaps
    assert gaps["count"].sum() == (done["output_tokens"] - 1).sum()
    assert (gaps["gap_s"] > 0).all()
    timeseries = pd.read_parquet(base / "a" / "timeseries.parquet")
    assert {"pool", "time_at", "batch_size", "queue_length"} <= set(timeseries.columns)
    # the exact token clock rebuilds every token of a request
    times = result.token_times(0)
    assert len(times) == requests.loc[0, "output_tokens"]
    assert times[0] == pytest.approx(requests.loc[0, "first_token_at"])
    assert times[-1] == pytest.approx(requests.loc[0, "last_token_at"])


def test_plots_are_written(default_run):
    _, base = default_run
    for name in ("latency_cdf.png", "timeline.png", "utilization.png", "breakdown.png"):
        data = (base / "a" / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, name


@pytest.mark.parametrize("name", SEED_SCENARIOS)
def test_every_seed_scenario_runs_and_its_numbers_are_sane(name):
    result = infersim.simulate(name, overrides=FEW)
    s = result.summary
    assert s["completed"] == 120 and s["failed"] == 0
    assert s["p99_e2el_ms"] >= s["p99_ttft_ms"] > 0
    assert s["mean_itl_ms"] > 0 and s["output_throughput"] > 0
    assert 0 < s["request_throughput"] <= 120 / (s["duration"] - 1e-9)
    cost = s["cost"]
    assert cost["cost_usd"] > 0 and cost["usd_per_request"] > 0
    assert cost["joules_per_output_token"] > 0
    assert all(0 <= p["utilization"] <= 1 for p in cost["pools"].values())


def test_disaggregation_lowers_p99_itl_under_prefill_heavy_load():
    few = ["workload.requests=600"]
    unified = infersim.simulate("h100-unified", overrides=few).summary
    split = infersim.simulate("h100-disaggregated", overrides=few).summary
    assert split["p99_itl_ms"] < unified["p99_itl_ms"]
    assert unified["cost"]["dollars_per_hour"] == split["cost"]["dollars_per_hour"]


def test_workload_mix_prices_a_task_of_each_class():
    classes = infersim.simulate("workload-mix", overrides=["workload.requests=200"]) \
        .summary["cost"]["classes"]
    assert set(classes) == {"coding-agent", "summariser"}
    # The coding agent's long generations run on dearer decode time than the summariser's prompts.
    assert classes["coding-agent"]["usd_per_task"] > classes["summariser"]["usd_per_task"] > 0
    agent = classes["coding-agent"]
    assert agent["output_tokens"] > 2 * agent["input_tokens"]


def test_progress_is_reported_up_to_done():
    seen: list[float] = []
    infersim.simulate("default", overrides=FEW, progress=seen.append)
    assert seen and seen[-1] == pytest.approx(1.0)
    assert seen == sorted(seen)


def test_compare_json_puts_runs_side_by_side(capsys):
    code, out, err = _main(["compare", "h100-unified", "h100-disaggregated", "--json",
                            "--set", "workload.requests=80"], capsys)
    assert code == 0, err
    rows = json.loads(out)
    assert list(rows) == ["h100-unified", "h100-disaggregated"]
    assert rows["h100-unified"]["cost.dollars_per_hour"] > 0
    assert "p99_itl_ms" in rows["h100-disaggregated"]


def test_compare_table(capsys):
    code, out, err = _main(["compare", "default", "default", "--set", "workload.requests=40"],
                           capsys)
    assert code == 0, err
    assert "default (default)" in out and "J" in out
    # piped (capsys is not a terminal): plain columns, no box drawing, no ANSI escapes
    assert not set(out) & set("┃━│┏┓┗┛┡┩└┘─\x1b")
    assert "SLO p99 TTFT" in out and "rejected requests" in out


def test_validate_says_ok_and_what_fits(capsys):
    code, out, err = _main(["validate", "nvl72-split"], capsys)
    assert code == 0, err
    assert out.startswith("ok: nvl72-split") and "KV room" in out


def test_schema_prints_the_json_schema(tmp_path, capsys):
    code, out, _ = _main(["schema"], capsys)
    assert code == 0
    schema = json.loads(out)
    assert schema["title"] == "infersim scenario" and schema["additionalProperties"] is False
    code, out, _ = _main(["schema", "--out", str(tmp_path / "s.json")], capsys)
    assert code == 0 and json.loads((tmp_path / "s.json").read_text()) == schema


def test_a_time_limit_stops_the_clock_and_bills_only_delivered_work():
    s = infersim.simulate("default", overrides=["time_limit=5 s", "workload.requests=200"]).summary
    assert s["duration"] == pytest.approx(5.0)
    extras = s["infersim"]
    # every request is accounted for: finished, failed (arrived, unfinished) or not yet arrived
    assert s["failed"] > 0 and extras["not_arrived_at_stop"] > 0
    assert s["completed"] + s["failed"] + extras["not_arrived_at_stop"] == 200
    assert s["failed"] == extras["in_flight_at_stop"] + extras["rejected"]
    assert extras["percentiles_exclude_in_flight"]
    assert s["cost"]["cost_usd"] == pytest.approx(3 * 2.99 * 5.0 / 3600)
    assert s["cost"]["requests"] == s["completed"]


def test_a_closed_loop_workload_runs():
    workload = {"concurrency": 4, "requests": 40,
                "prompt_tokens": {"dist": "fixed", "value": 256},
                "output_tokens": {"dist": "fixed", "value": 16}}
    from infersim.scenario import load_scenario

    sc = load_scenario("default")
    data = {**sc.resolved(), "workload": workload}
    s = infersim.simulate(data).summary
    assert s["completed"] == 40
    assert s["total_output_tokens"] == 40 * 16


def test_a_trace_relative_to_the_scenario_file_is_replayed(tmp_path):
    (tmp_path / "trace.csv").write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:03.9799600,512,8\n"
        "2023-11-16 18:17:04.5000000,1024,4\n"
        "2023-11-16 18:17:05.0000000,256,2\n")
    text = (shipped_dir("scenarios") / "default.yaml").read_text()
    text = text.split("workload:")[0] + (
        "workload: {trace: {format: azure, path: trace.csv}}\n"
        "slo: {ttft_ms: 1000, itl_ms: 50, percentile: 99}\n")
    (tmp_path / "s.yaml").write_text(text)
    s = infersim.simulate(str(tmp_path / "s.yaml")).summary
    assert s["completed"] == 3 and s["total_input_tokens"] == 512 + 1024 + 256


@settings(max_examples=12, deadline=None)
@given(data=scenario_dicts())
def test_any_small_scenario_conserves_requests_prices_work_and_repeats_itself(data):
    result = infersim.simulate(data)
    s, requests = result.summary, result.requests
    n = data["workload"]["requests"]
    assert s["completed"] + s["failed"] == n == len(requests)
    done = requests[requests["completed"]]
    assert (done["e2e_s"] >= done["ttft_s"]).all() and (done["ttft_s"] > 0).all()
    assert s["request_goodput"] <= s["request_throughput"] + 1e-12
    cost = s["cost"]
    assert cost["input_cost_usd"] + cost["output_cost_usd"] == pytest.approx(cost["cost_usd"])
    assert cost["energy_j"] > 0 and cost["cost_usd"] > 0
    again = infersim.simulate(data).summary
    assert dumps_summary(again) == dumps_summary(s)


def test_each_class_is_held_to_its_own_slo_else_the_scenarios():
    from infersim.scenario import load_scenario

    data = load_scenario("workload-mix").resolved()
    data["workload"] = {**data["workload"], "requests": 60, "mix": {"classes": [
        {"name": "strict", "weight": 0.5, "mix": "chat", "slo": {"ttft_ms": 0.001}},
        {"name": "lenient", "weight": 0.5, "mix": "chat"}]}}
    classes = infersim.simulate(data).summary["classes"]
    assert list(classes) == ["strict", "lenient"]
    assert classes["strict"]["slo"] == {"ttft_ms": 0.001}
    assert classes["strict"]["request_goodput"] == 0.0  # no prefill takes a microsecond
    assert classes["lenient"]["slo"] == {"ttft_ms": 2000.0, "itl_ms": 50.0}
    assert classes["lenient"]["request_goodput"] > 0
    assert classes["strict"]["requests"] + classes["lenient"]["requests"] == 60


def test_validate_warns_about_requests_longer_than_a_decode_instances_kv(capsys):
    # 80 LPUs hold Llama-3.1-8B's weights with room for ~3k tokens of KV: long requests can't fit.
    code, out, err = _main(["validate", "blackwell-prefill-lpu-decode",
                            "--set", "pools.decode.pp=10"], capsys)
    assert code == 0, err
    assert "warning:" in out and "decode instance" in out
    code, out, _ = _main(["validate", "blackwell-prefill-lpu-decode"], capsys)
    assert code == 0 and "warning" not in out


def test_a_mixed_pool_is_billed_by_the_engines_prefill_share():
    from infersim.economics import mixed_prefill_share

    result = infersim.simulate("h100-unified", overrides=FEW)
    for name, stats in result.sim.pools.items():
        if stats["role"] != "mixed":
            continue
        pool = result.cost.to_dict()["pools"][name]
        assert 0 < stats["prefill_busy_s"] < stats["busy_s"]
        assert pool["input_share"] == pytest.approx(stats["prefill_busy_s"] / stats["busy_s"])
        assert pool["input_share_source"] == "engine step-time share of prefill work"
        # A mixed pool that never ran a step has no busy time to split: output tokens pay.
        assert mixed_prefill_share(name, {"busy_s": 0.0}) == (
            0.0, "pool never busy: idle cost to output tokens")
        with pytest.raises(ValueError, match="no prefill_busy_s"):
            mixed_prefill_share(name, {"busy_s": 1.0})


def test_validate_warns_about_requests_longer_than_the_models_context_window(capsys):
    from infersim.scenario import load_scenario
    from infersim.scenario.preflight import build_scenario_workload

    sets = ["model=llama-2-7b", "workload.requests=200", "workload.prompt_tokens.mean=3000"]
    table = build_scenario_workload(load_scenario("default", overrides=sets))
    longer = int(((table.prompt_tokens + table.output_tokens) > 4096).sum())  # Llama-2: 4K
    assert 0 < longer < 200
    code, out, err = _main(["validate", "default", *[a for s in sets for a in ("--set", s)]],
                           capsys)
    assert code == 0, err
    assert (f"warning: {longer:,} of 200 requests are longer (prompt + output) than llama-2-7b's "
            "4,096-token context window") in out
    code, out, _ = _main(["validate", "default", "--set", "workload.prompt_tokens.mean=3000"],
                         capsys)
    assert code == 0 and "context window" not in out  # Llama-3.1-8B: 128K


def test_run_warns_about_and_counts_requests_longer_than_the_context_window(tmp_path, capsys):
    """The run serves them (a real engine would refuse them), so it says so as validate does."""
    sets = ["model=llama-2-7b", "workload.requests=40", "workload.prompt_tokens.mean=3000"]
    argv = [a for s in sets for a in ("--set", s)]
    code, out, err = _main(["validate", "default", *argv], capsys)
    assert code == 0, err
    warning = next(line.strip() for line in out.splitlines() if "context window" in line)
    longer = int(warning.split()[1])
    assert 0 < longer < 40
    code, out, err = _main(["run", "default", *argv, "--out", str(tmp_path / "a"), "--quiet",
                            "--no-plots"], capsys)
    assert code == 0, err
    # (40 requests also draw the steady-state warnings: too short, and here overloaded)
    assert [line for line in err.splitlines()
            if line.startswith("warning:") and "context window" in line] == [warning]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["infersim"]["beyond_context_requests"] == longer
    assert summary["completed"] == 40  # served all the same

    code, out, err = _main(["run", "default", "--set", "workload.requests=40", "--out",
                            str(tmp_path / "b"), "--quiet", "--no-plots"], capsys)
    assert code == 0 and "context window" not in err
    summary = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert summary["infersim"]["beyond_context_requests"] == 0
