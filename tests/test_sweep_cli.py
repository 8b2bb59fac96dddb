"""``infersim sweep`` on the real simulator: the table, the resumable store, the YAML form, and
one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from infersim.cli import main

TINY = Path(__file__).resolve().parent / "fixtures" / "plans" / "scenarios" / "tiny-disaggregated.yaml"


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code or 0
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_sweep_command_writes_the_table_and_resumes(tmp_path, capsys):
    out = tmp_path / "sweep"
    argv = ["sweep", str(TINY), "--grid", "workload.arrival.rate=4,16",
            "--grid", "pools.decode.instances=1,2", "--set", "workload.requests=30",
            "--seeds", "2", "--workers", "1", "--out", str(out)]
    code, _, err = run(argv, capsys)
    assert code == 0, err
    assert "8 runs (8 simulated, 0 from" in err
    table = pd.read_csv(out / "sweep.csv")
    assert len(table) == 8 and len(list((out / "runs").glob("*.json"))) == 8
    spread = pd.read_csv(out / "sweep_spread.csv")
    assert len(spread) == 4 and (spread["replicas"] == 2).all()
    assert table[["workload.arrival.rate", "pools.decode.instances", "replica"]].values.tolist()[:4] == [
        [4, 1, 0], [4, 1, 1], [4, 2, 0], [4, 2, 1]]
    assert (table["completed"] == 30).all()
    assert "scenario.model" not in table.columns  # provenance stays in the per-run JSON
    # CSV has no null but NaN; parquet keeps None for metrics a run does not report.
    pd.testing.assert_frame_equal(pd.read_parquet(out / "sweep.parquet").fillna(np.nan),
                                  table.fillna(np.nan), check_dtype=False)
    # Replicas differ by seed; the rerun simulates nothing and writes the same bytes.
    assert table.loc[0, "seed"] != table.loc[1, "seed"]
    before = (out / "sweep.csv").read_bytes()
    code, _, err = run(argv, capsys)
    assert code == 0 and "8 runs (0 simulated, 8 from" in err
    assert (out / "sweep.csv").read_bytes() == before


def test_sweep_file_form(tmp_path, capsys):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"scenario: {TINY}\ngrid:\n  pools.decode.max_batch_size: [16, 64, 128]\n"
                     "set: {workload.requests: 30}\n")
    code, _, err = run(["sweep", str(sweep), "--workers", "1", "--out", str(tmp_path / "o")],
                       capsys)
    assert code == 0, err
    table = pd.read_csv(tmp_path / "o" / "sweep.csv")
    assert table["pools.decode.max_batch_size"].tolist() == [16, 64, 128]


@pytest.mark.parametrize(("argv", "message"), [
    (["--grid", "workload.arrival.rate"], "--grid: expected KEY=V1,V2,... (a field path and its "
                                          "values), got 'workload.arrival.rate'"),
    ([], "--grid: expected at least one --grid KEY=V1,V2 (or a sweep file with grid:), got 'none'"),
    (["--grid", "pools.decod.instances=1,2"],
     "--grid pools.decod: expected one of prefill, decode, got 'decod'"),
    (["--grid", "workload.arrival.rate=1", "--backend", "slurm"],
     "--backend: expected local or ray, got 'slurm'"),
    (["--grid", "workload.arrival.rate=1", "--workers", "0"],
     "--workers: expected an integer >= 1, got 0"),
])
def test_bad_sweep_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    code, _, err = run(["sweep", str(TINY), "--out", str(tmp_path), *argv], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
