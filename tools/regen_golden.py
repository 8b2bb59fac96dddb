"""Golden digests: what every shipped scenario produces, at small N, fingerprinted.

Runs each scenario of ``scenarios/*.yaml``, ``scenarios/validation/*.yaml`` and the engine-coverage
scenarios of ``tests/golden/scenarios/*.yaml`` (preemption by recompute and swap, full
reservation, layer-wise overlap, closed loops, prefix caching) with at most ``REQUESTS`` requests
and its own fixed seed, writes its outputs with the report writer ``infersim run`` uses into a
temporary folder, and records SHA-256 digests of ``summary.json`` and ``requests.parquet`` in
``tests/golden/digests.json``. ``tests/golden/test_golden.py`` recomputes them and compares:
"results are byte-identical" is then a test, not a claim.

What is digested is the content, not the library stamps around it:

- ``summary.json``: its text without the ``infersim_version`` key (a version bump is not a change
  of results);
- ``requests.parquet``: the table read back from the file, column by column (name, dtype, values;
  categorical columns as their labels), since the file's own bytes carry the pyarrow and pandas
  versions that wrote it.

Regenerate after a change that is meant to change results, and say in the commit message which
results changed and why:

    PYTHONPATH=$PWD python tools/regen_golden.py          # rewrite tests/golden/digests.json
    PYTHONPATH=$PWD python tools/regen_golden.py --check  # compare only; exit 1 on a difference
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIGESTS = ROOT / "tests" / "golden" / "digests.json"
REQUESTS = 200  # requests per scenario (fewer where the scenario has fewer)
VOLATILE_SUMMARY_KEYS = ("infersim_version",)


def scenario_paths() -> list[Path]:
    """Every scenario the digests cover, in a fixed order."""
    groups = (ROOT / "scenarios", ROOT / "scenarios" / "validation",
              ROOT / "tests" / "golden" / "scenarios")
    return [path for folder in groups for path in sorted(folder.glob("*.yaml"))]


def scenario_key(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def summary_digest(path: Path) -> str:
    summary = json.loads(path.read_text(encoding="utf-8"))
    for key in VOLATILE_SUMMARY_KEYS:
        summary.pop(key, None)
    text = json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def table_digest(path: Path) -> str:
    """SHA-256 over a parquet table's columns: name, dtype and values, in column order."""
    import numpy as np
    import pandas as pd

    frame = pd.read_parquet(path)
    digest = hashlib.sha256()
    digest.update(f"{len(frame)} rows\n".encode())
    for name in frame.columns:
        column = frame[name]
        digest.update(f"{name}:{column.dtype}\n".encode())
        if isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object:
            labels = ["\x00" if pd.isna(v) else str(v) for v in column.tolist()]
            digest.update("\x1f".join(labels).encode("utf-8"))
        else:
            digest.update(np.ascontiguousarray(column.to_numpy()).tobytes())
    return digest.hexdigest()


def run_one(path: Path, out_dir: Path) -> dict[str, str]:
    """Simulate one scenario at small N, write its outputs, digest them."""
    from infersim.api import simulate
    from infersim.report.save import save_result
    from infersim.yamlfile import read_yaml

    data = read_yaml(path, str(path))
    requests = (data.get("workload") or {}).get("requests")
    overrides = [] if requests is None or requests <= REQUESTS else [
        f"workload.requests={REQUESTS}"]
    result = simulate(path, overrides=overrides)
    save_result(result, out_dir, plots=False)
    return {"summary.json": summary_digest(out_dir / "summary.json"),
            "requests.parquet": table_digest(out_dir / "requests.parquet")}


def compute_digests() -> dict[str, dict[str, str]]:
    out = {}
    with tempfile.TemporaryDirectory(prefix="infersim-golden-") as tmp:
        for i, path in enumerate(scenario_paths()):
            out[scenario_key(path)] = run_one(path, Path(tmp) / str(i))
    return out


def differences(expected: dict, actual: dict) -> list[str]:
    """One line per scenario whose digests differ, or that is new or gone."""
    lines = []
    for key in sorted(set(expected) | set(actual)):
        if key not in actual:
            lines.append(f"{key}: no longer run (scenario removed?)")
        elif key not in expected:
            lines.append(f"{key}: new scenario, no digest recorded")
        else:
            changed = [name for name in sorted(set(expected[key]) | set(actual[key]))
                       if expected[key].get(name) != actual[key].get(name)]
            if changed:
                lines.append(f"{key}: {', '.join(changed)} changed")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with tests/golden/digests.json instead of rewriting it")
    args = parser.parse_args()
    actual = compute_digests()
    if args.check:
        expected = json.loads(DIGESTS.read_text(encoding="utf-8"))
        diff = differences(expected, actual)
        print("\n".join(diff) if diff else f"{len(actual)} scenarios: digests unchanged")
        return 1 if diff else 0
    DIGESTS.write_text(json.dumps(actual, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {DIGESTS.relative_to(ROOT)} ({len(actual)} scenarios)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
