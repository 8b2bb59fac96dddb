"""Golden digests: every shipped, validation and engine-coverage scenario gives the results it
gave when ``tests/golden/digests.json`` was last regenerated (see tests/golden/README.md)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]


def _golden():
    spec = importlib.util.spec_from_file_location("regen_golden", ROOT / "tools" / "regen_golden.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


golden = _golden()


def test_every_scenario_gives_its_recorded_results():
    expected = json.loads(golden.DIGESTS.read_text(encoding="utf-8"))
    diff = golden.differences(expected, golden.compute_digests())
    assert not diff, (
        "simulation results changed:\n  " + "\n  ".join(diff) + "\nIf the change is intended, run "
        "`PYTHONPATH=$PWD python tools/regen_golden.py` and state in the commit message which "
        "results changed and why (tests/golden/README.md).")


def test_digests_cover_every_shipped_scenario():
    recorded = set(json.loads(golden.DIGESTS.read_text(encoding="utf-8")))
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "scenarios").rglob("*.yaml")}
    assert shipped <= recorded


def test_table_digest_sees_one_value_change(tmp_path):
    frame = pd.DataFrame({"t": np.array([0.5, 1.25]), "pool": pd.Categorical(["a", None])})
    frame.to_parquet(tmp_path / "a.parquet")
    frame.loc[1, "t"] = np.nextafter(1.25, 2.0)  # one ulp
    frame.to_parquet(tmp_path / "b.parquet")
    frame.to_parquet(tmp_path / "c.parquet")
    a, b, c = (golden.table_digest(tmp_path / f"{x}.parquet") for x in "abc")
    assert a != b and b == c


def test_summary_digest_ignores_the_version_only(tmp_path):
    def digest(summary: dict) -> str:
        path = tmp_path / "summary.json"
        path.write_text(json.dumps(summary), encoding="utf-8")
        return golden.summary_digest(path)

    base = {"completed": 3, "infersim_version": "0.1.0"}
    assert digest(base) == digest({**base, "infersim_version": "9.9"})
    assert digest(base) != digest({**base, "completed": 4})


def test_differences_names_each_changed_file():
    expected = {"s.yaml": {"summary.json": "1", "requests.parquet": "2"}, "gone.yaml": {}}
    actual = {"s.yaml": {"summary.json": "1", "requests.parquet": "3"}, "new.yaml": {}}
    assert golden.differences(expected, actual) == [
        "gone.yaml: no longer run (scenario removed?)", "new.yaml: new scenario, no digest recorded",
        "s.yaml: requests.parquet changed"]
