"""Calibration: fit the knobs on one load level, predict the others.

The fixtures were measured (synthetically, see tests/fixtures/bench/generate.py) on a deployment
whose step overhead and efficiencies differ from the A100 defaults the scenario starts from; the
fit sees only the runs marked ``fit``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from infersim import cli
from infersim.calibrate.fit import KNOBS, calibrate, knob_overrides, log_error, split_runs
from infersim.calibrate.formats import read_benchmark
from infersim.calibrate.overlay import read_overlay
from infersim.calibrate.replay import replay_workload, simulate_run
from infersim.errors import InfersimError
from infersim.scenario import load_scenario
from infersim.workload import ClosedLoop, RequestTable

BENCH = Path(__file__).parent / "fixtures" / "bench"


@pytest.fixture(scope="module")
def scenario():
    return load_scenario(BENCH / "a100-vllm.yaml")


@pytest.fixture(scope="module")
def fitted(scenario):
    runs = [*read_benchmark(BENCH / "vllm-c4.json"), *read_benchmark(BENCH / "vllm-c32.json")]
    return calibrate(scenario, runs, ["fit", "held-out"], max_evals=40)


def test_replay_keeps_the_benchmarks_lengths_and_load():
    (closed,) = read_benchmark(BENCH / "vllm-c4.json")
    workload = replay_workload(closed, seed=0)
    assert isinstance(workload, ClosedLoop) and workload.users == 4
    assert workload.requests.prompt_tokens.tolist() == closed.prompt_tokens.tolist()
    (open_loop,) = read_benchmark(BENCH / "vllm-rate4.json")
    table = replay_workload(open_loop, seed=0, max_requests=50)
    assert isinstance(table, RequestTable) and len(table) == 50
    assert set(table.prompt_tokens.tolist()) == {round(open_loop.mean_prompt_tokens)}
    # Poisson at 4/s: 49 gaps of mean 0.25 s
    assert 0.15 < table.arrival_s[-1] / 49 < 0.40


def test_fit_on_one_load_level_predicts_another_within_10_percent(fitted):
    held = next(r for r in fitted.runs if r.role == "held-out")
    assert held.run.load.value == 32
    for key in ("median_ttft_ms", "median_e2el_ms", "median_tpot_ms"):
        assert abs(held.relative(key)) <= 0.10, (key, held.measured[key], held.simulated[key])
    # and it did better than the defaults it started from
    defaults = simulate_run(load_scenario(BENCH / "a100-vllm.yaml"), held.run)
    before = sum(e * e for e in log_error(defaults, held.measured))
    after = sum(e * e for e in log_error(held.simulated, held.measured))
    assert after < before


def test_fitted_knobs_stay_in_their_bounds_and_are_deterministic(fitted, scenario):
    for knob, value in zip(fitted.knobs, fitted.values, strict=True):
        assert knob.low <= value <= knob.high
    again = calibrate(scenario, [fitted.runs[0].run, fitted.runs[1].run], ["fit", "held-out"],
                      max_evals=40)
    assert again.values == fitted.values


def test_split_runs_default_alternates_and_one_run_fits():
    assert split_runs([object()] * 5, None) == ["fit", "held-out", "fit", "held-out", "fit"]
    assert split_runs([object()], None) == ["fit"]
    assert split_runs([object()] * 3, [2]) == ["held-out", "held-out", "fit"]


def test_overrides_name_every_pool(scenario):
    assert knob_overrides(scenario, KNOBS[:1], [0.004]) == ["pools.vllm.step_overhead=0.004"]


def _main(argv, capsys):
    try:
        cli.main([str(a) for a in argv])
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_an_overlay_that_run_applies(tmp_path, capsys):
    overlay = tmp_path / "cal.yaml"
    code, out, err = _main(["calibrate", BENCH / "genai-perf-c8.json", BENCH / "aiperf-c24" / "profile_export_aiperf.json",
                            "--scenario", BENCH / "a100-vllm.yaml", "--knobs", "step_overhead",
                            "--max-evals", "8", "--max-requests", "48", "--out", overlay], capsys)
    assert code == 0, err
    assert "held-out median |error|" in out
    sets = read_overlay(overlay)
    assert len(sets) == 1 and sets[0].startswith("pools.vllm.step_overhead=")
    value = float(sets[0].split("=")[1])
    code, _, err = _main(["run", BENCH / "a100-vllm.yaml", "--overlay", overlay, "--no-plots",
                          "-q", "--out", tmp_path / "run"], capsys)
    assert code == 0, err
    import json
    pools = json.loads((tmp_path / "run" / "summary.json").read_text())["scenario"]["pools"]
    assert pools["vllm"]["step_overhead"] == value


@pytest.mark.parametrize(("argv", "message"), [
    (["--fit-on", "5"], "--fit-on: expected comma-separated run numbers in 0..0"),
    (["--knobs", "magic"], "--knobs: expected a comma-separated subset of step_overhead, "
                           "compute_efficiency, memory_efficiency, got 'magic'"),
])
def test_cli_bad_options_are_one_line(argv, message, capsys):
    code, _, err = _main(["calibrate", BENCH / "vllm-rate4.json", "--scenario",
                          BENCH / "a100-vllm.yaml", *argv], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_overlay_errors(tmp_path):
    path = tmp_path / "o.yaml"
    path.write_text("set: {a: 1}\n")
    with pytest.raises(InfersimError, match="overlay: expected 'calibration'"):
        read_overlay(path)
    path.write_text("overlay: calibration\nset: {pools.x.step_overhead: [1, 2]}\n")
    with pytest.raises(InfersimError, match=r"set.pools.x.step_overhead: expected a field path "
                                            r"mapped to one value"):
        read_overlay(path)


def test_pool_efficiencies_replace_the_chips_and_are_hashed(scenario):
    from infersim.scenario import resolve

    tuned = load_scenario(scenario, overrides=["pools.vllm.compute_efficiency=0.3",
                                               "pools.vllm.memory_efficiency=0.6"])
    resolved = resolve(tuned)
    chip = resolved.hardware["vllm"]
    assert (chip.compute_efficiency, chip.memory_efficiency) == (0.3, 0.6)
    assert resolved.deployments["vllm"].hardware is chip
    assert tuned.hash != scenario.hash
    assert "compute_efficiency" not in scenario.resolved()["pools"]["vllm"]  # unset: old hashes
    with pytest.raises(InfersimError, match=r"pools.vllm.memory_efficiency: expected a number "
                                            r"<= 1, got 1.5"):
        load_scenario(scenario, overrides=["pools.vllm.memory_efficiency=1.5"])
