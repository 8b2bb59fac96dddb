"""Sweeps: seeds derived from what a run simulates, resumable stores, identical results on every
executor (in-process, local processes, Ray).

The runs here use a small stand-in for the simulator (a queue whose tail latency grows with load
and shrinks with instances, plus seeded noise), so the sweep machinery is tested on its own and
fast; ``test_sweep_simulate.py`` runs the real simulator through the same paths.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.errors import InfersimError
from infersim.plan.executors import LocalExecutor, SerialExecutor, make_executor
from infersim.plan.runner import SimulatorRunner
from infersim.plan.sweep import (
    RunTask,
    derive_seed,
    expand,
    load_sweep_file,
    make_spec,
    parse_grid_option,
    run_sweep,
)
from infersim.scenario import load_scenario

TINY = Path(__file__).resolve().parent / "fixtures" / "plans" / "scenarios" / "tiny-disaggregated.yaml"

# --- the stand-in simulator -------------------------------------------------------------------


def toy_run(task: RunTask) -> dict:
    """p99 latency of an M/M/c-ish queue: load / capacity, with seeded noise; picklable."""
    values = dict(o.split("=", 1) for o in task.overrides)
    rate = float(values.get("workload.arrival.rate", 1))
    instances = int(values.get("pools.decode.instances", 1))
    if rate < 0:
        raise InfersimError(field="workload.arrival.rate", expected="a rate >= 0", given=rate)
    rng = np.random.default_rng(task.seed)
    utilisation = min(rate / (15.0 * instances), 0.99)
    return {
        "completed": 100,
        "p99_ttft_ms": 50.0 / (1 - utilisation) + float(rng.normal(0, 1)),
        "output_throughput": rate * 200.0,
        "infersim": {"utilisation": utilisation},
    }


class ToyRunner:
    run = staticmethod(toy_run)

    def base_seed(self, scenario: str, fixed) -> int:
        return 7

    def run_hash(self, task: RunTask) -> str:
        key = json.dumps([task.scenario, sorted(task.overrides), task.seed])
        return hashlib.sha256(key.encode()).hexdigest()[:16]

    def payload(self, task: RunTask) -> RunTask:
        return task


def spec(rates=("5", "10", "20"), instances=("1", "2"), replicas=1):
    return make_spec("toy.yaml", [("workload.arrival.rate", list(rates)),
                                  ("pools.decode.instances", list(instances))], replicas=replicas)


# --- seeds -------------------------------------------------------------------------------------


def test_seed_depends_on_overrides_not_their_order():
    a = derive_seed(0, ["x=1", "y=2"])
    assert a == derive_seed(0, ["y=2", "x=1"])
    assert a != derive_seed(0, ["x=1", "y=3"])
    assert a != derive_seed(1, ["x=1", "y=2"])
    assert a != derive_seed(0, ["x=1", "y=2"], replica=1)


def test_seed_derivation_is_pinned():
    # Stored results are keyed by seed: changing the derivation silently orphans every store.
    assert derive_seed(0, ["workload.arrival.rate=10"]) == 2867626100306914652


@given(st.integers(0, 2**64 - 1), st.lists(st.text(min_size=1, max_size=8), max_size=4),
       st.integers(0, 100))
@settings(max_examples=50, deadline=None)
def test_seed_is_a_non_negative_int63(base, overrides, replica):
    seed = derive_seed(base, overrides, replica)
    assert 0 <= seed < 2**63
    assert seed == derive_seed(base, list(reversed(overrides)), replica)


def test_adding_grid_values_leaves_existing_runs_unchanged():
    small = {(t.point, t.replica): t.seed for t in expand(spec(rates=("5", "10")), 7)}
    large = {(t.point, t.replica): t.seed for t in expand(spec(rates=("5", "10", "40")), 7)}
    assert small.items() <= large.items()


def test_expand_is_the_cross_product_in_grid_order():
    tasks = expand(spec(replicas=2), 7)
    assert len(tasks) == 3 * 2 * 2
    assert [t.position for t in tasks[:4]] == [(0, 0), (0, 0), (0, 1), (0, 1)]
    assert [t.replica for t in tasks[:2]] == [0, 1]
    assert tasks[0].overrides == ("workload.arrival.rate=5", "pools.decode.instances=1")
    assert len({t.seed for t in tasks}) == len(tasks)


# --- grid input --------------------------------------------------------------------------------


def test_grid_option_parses_key_and_values():
    assert parse_grid_option("workload.arrival.rate=5, 10,20") == (
        "workload.arrival.rate", ("5", "10", "20"))


@pytest.mark.parametrize("text", ["rate", "=1,2", "rate=", "rate=1,,2"])
def test_malformed_grid_option_is_one_line(text):
    with pytest.raises(InfersimError) as err:
        parse_grid_option(text)
    assert str(err.value) == (f"--grid: expected KEY=V1,V2,... (a field path and its values), "
                              f"got {text!r}")


def test_seed_is_not_a_grid_key():
    with pytest.raises(InfersimError, match="use seeds: N replicas"):
        make_spec("s.yaml", [("seed", ["1", "2"])])


def test_sweep_file_resolves_scenario_next_to_it(tmp_path):
    (tmp_path / "scen.yaml").write_text("x: 1\n")
    (tmp_path / "sweep.yaml").write_text(
        "scenario: scen.yaml\ngrid:\n  workload.arrival.rate: [5, 10.5]\n"
        "  pools.decode.hardware: [h100, b200]\nseeds: 2\nset: {workload.requests: 50}\n")
    loaded = load_sweep_file(tmp_path / "sweep.yaml")
    assert loaded.scenario == str(tmp_path / "scen.yaml")
    assert loaded.grid == (("workload.arrival.rate", ("5", "10.5")),
                           ("pools.decode.hardware", ("h100", "b200")))
    assert loaded.fixed == ("workload.requests=50",)
    assert loaded.runs == 8


def test_sweep_file_unknown_key_names_file_and_field(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("scenario: s.yaml\ngrid: {a: [1]}\nreplicas: 3\n")
    with pytest.raises(InfersimError) as err:
        load_sweep_file(path)
    assert str(err.value) == (f"{path}: replicas: unknown key; expected one of the keys scenario, "
                              "grid, seeds, seed, set")


@pytest.mark.parametrize(("text", "message"), [
    ("scenario: s.yaml\ngrid: {a: 5}\n", "grid.a: expected a list, got 5"),
    ("scenario: s.yaml\ngrid: {}\n", "grid: expected at least 1 item"),
    ("grid: {a: [1]}\n", "scenario: expected a value (this field is required)"),
    ("scenario: s.yaml\ngrid: {a: [1]}\nseeds: .nan\n", "seeds: expected an integer, got nan"),
    ("scenario: s.yaml\ngrid: {a: [1]}\nseeds: 0\n", "seeds: expected an integer >= 1, got 0"),
    ("scenario: s.yaml\ngrid: {a: [1]}\nseed: -1\n", "seed: expected an integer >= 0, got -1"),
    ("scenario: s.yaml\ngrid: {a: [1]}\nset: [1]\n", "set: expected a mapping"),
])
def test_sweep_file_mistakes_are_worded_by_the_shared_translator(tmp_path, text, message):
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(InfersimError) as err:
        load_sweep_file(path)
    assert str(err.value).startswith(f"{path}: {message}"), str(err.value)


# --- running -----------------------------------------------------------------------------------


def test_serial_and_process_pool_give_identical_tables(tmp_path):
    serial = run_sweep(spec(), ToyRunner(), SerialExecutor(), tmp_path / "a")
    with LocalExecutor(workers=2) as executor:
        pooled = run_sweep(spec(), ToyRunner(), executor, tmp_path / "b")
    pd.testing.assert_frame_equal(serial.table, pooled.table)
    assert (tmp_path / "a" / "sweep.csv").read_bytes() == (tmp_path / "b" / "sweep.csv").read_bytes()
    assert list(serial.table.columns[:4]) == [
        "workload.arrival.rate", "pools.decode.instances", "replica", "seed"]
    assert serial.table["workload.arrival.rate"].tolist() == [5, 5, 10, 10, 20, 20]
    assert "infersim.utilisation" in serial.table.columns
    back = pd.read_parquet(tmp_path / "a" / "sweep.parquet")
    pd.testing.assert_frame_equal(back, serial.table)


def test_replica_spread_summarises_each_point_over_its_seeds(tmp_path):
    outcome = run_sweep(spec(rates=("5", "20"), instances=("1",), replicas=3), ToyRunner(),
                        SerialExecutor(), tmp_path)
    assert outcome.paths[-1] == tmp_path / "sweep_spread.csv"
    spread = pd.read_csv(tmp_path / "sweep_spread.csv")
    assert spread["workload.arrival.rate"].tolist() == [5, 20]
    assert spread["replicas"].tolist() == [3, 3]
    table = outcome.table
    at_5 = table[table["workload.arrival.rate"] == 5]["p99_ttft_ms"]
    assert spread.loc[0, "p99_ttft_ms_mean"] == pytest.approx(at_5.mean())
    assert spread.loc[0, "p99_ttft_ms_std"] == pytest.approx(at_5.std(ddof=1))
    assert spread.loc[0, "p99_ttft_ms_min"] <= spread.loc[0, "p99_ttft_ms_mean"] <= (
        spread.loc[0, "p99_ttft_ms_max"])
    # the stand-in's throughput does not depend on the seed: no spread
    assert spread.loc[1, "output_throughput_std"] == 0
    assert "seed_mean" not in spread.columns and "replica_mean" not in spread.columns


def test_more_instances_lower_the_tail_in_the_stand_in(tmp_path):
    # Sanity of the fixture itself: the table carries the physics the runs computed.
    table = run_sweep(spec(), ToyRunner(), SerialExecutor(), None).table
    at_20 = table[table["workload.arrival.rate"] == 20].set_index("pools.decode.instances")
    assert at_20.loc[2, "p99_ttft_ms"] < at_20.loc[1, "p99_ttft_ms"]


def test_rerun_reuses_the_store_and_extends_only_new_points(tmp_path):
    progress = []
    first = run_sweep(spec(rates=("5", "10")), ToyRunner(), SerialExecutor(), tmp_path,
                      on_progress=lambda done, total: progress.append((done, total)))
    assert (first.ran, first.reused) == (4, 0)
    assert progress == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]
    assert len(list((tmp_path / "runs").glob("*.json"))) == 4
    again = run_sweep(spec(rates=("5", "10")), ToyRunner(), SerialExecutor(), tmp_path)
    assert (again.ran, again.reused) == (0, 4)
    pd.testing.assert_frame_equal(first.table, again.table)
    larger = run_sweep(spec(rates=("5", "10", "20")), ToyRunner(), SerialExecutor(), tmp_path)
    assert (larger.ran, larger.reused) == (2, 4)
    pd.testing.assert_frame_equal(larger.table.iloc[:4], first.table)


def test_a_result_from_another_infersim_version_is_redone(tmp_path):
    run_sweep(spec(rates=("5",)), ToyRunner(), SerialExecutor(), tmp_path)
    victim = sorted((tmp_path / "runs").glob("*.json"))[0]
    record = json.loads(victim.read_text())
    victim.write_text(json.dumps({**record, "infersim_version": "0.0.1"}))
    again = run_sweep(spec(rates=("5",)), ToyRunner(), SerialExecutor(), tmp_path)
    assert (again.ran, again.reused) == (1, 1)


def test_a_half_written_record_is_redone(tmp_path):
    run_sweep(spec(rates=("5",)), ToyRunner(), SerialExecutor(), tmp_path)
    victim = sorted((tmp_path / "runs").glob("*.json"))[0]
    victim.write_text('{"hash": "trunc')
    again = run_sweep(spec(rates=("5",)), ToyRunner(), SerialExecutor(), tmp_path)
    assert (again.ran, again.reused) == (1, 1)
    assert json.loads(victim.read_text())["hash"] == victim.stem


def test_a_bad_run_is_reported_with_its_overrides(tmp_path):
    bad = spec(rates=("5", "-1"))
    with pytest.raises(InfersimError) as err, LocalExecutor(workers=2) as executor:
        run_sweep(bad, ToyRunner(), executor, tmp_path)
    assert str(err.value) == (
        "2 of 4 sweep runs failed; first, with workload.arrival.rate=-1, pools.decode.instances=1: "
        "workload.arrival.rate: expected a rate >= 0, got -1.0")
    # The good runs are kept for the rerun after the fix.
    assert len(list((tmp_path / "runs").glob("*.json"))) == 2


def test_local_backend_rejects_an_address():
    with pytest.raises(InfersimError, match="--address: expected no address with --backend local"):
        make_executor("local", address="ray://head:10001")


def test_ray_backend_without_ray_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(InfersimError) as err:
        make_executor("ray")
    assert str(err.value) == ("--backend: expected Ray installed for the ray backend "
                              "(pip install 'infersim[ray]'), got 'ray'")


@pytest.mark.parametrize(("address", "expected"), [
    ("head-without-port", "--address: expected HOST:PORT, ray://HOST:PORT or auto, got "
                          "'head-without-port'"),
    ("ray://127.0.0.1:1", "--address: expected a Ray head answering at 127.0.0.1:1 (no "
                          "connection within 5 s), got 'ray://127.0.0.1:1'"),
])
def test_an_unreachable_ray_address_fails_fast(address, expected):
    pytest.importorskip("ray")
    with pytest.raises(InfersimError) as err:
        make_executor("ray", address=address)
    assert str(err.value) == expected


# --- Ray ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_session():
    ray = pytest.importorskip("ray")
    tests_dir = str(Path(__file__).resolve().parent)
    repo = str(Path(__file__).resolve().parents[1])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": f"{tests_dir}:{repo}"}})
    yield ray
    ray.shutdown()


def test_ray_gives_the_same_table_as_in_process_runs(tmp_path, ray_session):
    # In-process and local-process tables are identical (tested above), so one reference will do.
    reference = run_sweep(spec(), ToyRunner(), SerialExecutor(), tmp_path / "serial")
    executor = make_executor("ray")
    try:
        on_ray = run_sweep(spec(), ToyRunner(), executor, tmp_path / "ray")
    finally:
        executor.close()
    assert ray_session.is_initialized()  # a session it did not start is left running
    pd.testing.assert_frame_equal(reference.table, on_ray.table)
    assert (tmp_path / "serial" / "sweep.csv").read_bytes() == (tmp_path / "ray" / "sweep.csv").read_bytes()


def test_real_simulations_on_ray_match_local_processes(tmp_path, ray_session):
    """The real simulator through both parallel paths: same seeds, same summaries, same bytes.

    600 requests make the pooled token-gap arrays long enough that a BLAS reduction would use
    several threads if a worker let it (and round differently from Ray's one-thread workers).
    """
    grid = make_spec(str(TINY), [("workload.arrival.rate", ["4", "12"]),
                                 ("pools.decode.max_batch_size", ["8", "128"])],
                     fixed=["workload.requests=600"])
    with LocalExecutor(workers=2) as executor:
        run_sweep(grid, SimulatorRunner(), executor, tmp_path / "local")
    executor = make_executor("ray", workers=2)
    try:
        on_ray = run_sweep(grid, SimulatorRunner(), executor, tmp_path / "ray")
    finally:
        executor.close()
    assert (tmp_path / "local" / "sweep.csv").read_bytes() == (tmp_path / "ray" / "sweep.csv").read_bytes()
    table = on_ray.table
    assert len(table) == 4 and (table["completed"] == 600).all()
    # Run hashes are the resolved scenarios' hashes, seed included.
    first = table.iloc[0]
    resolved = load_scenario(str(TINY), overrides=("workload.requests=600",
                                                   "workload.arrival.rate=4",
                                                   "pools.decode.max_batch_size=8"),
                             seed=int(first["seed"]))
    assert first["run_hash"] == resolved.hash
    # Physics the table must show: capping the decode batch at 8 sequences leaves requests
    # queueing for a decode slot at the higher load, so they take longer end to end.
    at_12 = table[table["workload.arrival.rate"] == 12].set_index("pools.decode.max_batch_size")
    assert at_12.loc[8, "mean_e2el_ms"] > at_12.loc[128, "mean_e2el_ms"]


def test_workers_get_the_resolved_scenario_not_the_file(tmp_path):
    """A worker rebuilds the run from its resolved data alone (the file may not exist there) and
    refuses data that does not rebuild to the hash the driver filed the run under."""
    copy = tmp_path / "tiny.yaml"
    copy.write_text(TINY.read_text())
    task = expand(make_spec(str(copy), [("workload.requests", ["20"])]), 7)[0]
    runner = SimulatorRunner()
    item = runner.payload(task)
    copy.unlink()
    summary = runner.run(item)
    assert summary["completed"] == 20 and summary["scenario_hash"] == runner.run_hash(task)
    with pytest.raises(RuntimeError, match="rebuilt with hash"):
        runner.run(replace(item, scenario_hash="0" * 16))
