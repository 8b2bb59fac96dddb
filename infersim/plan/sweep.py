"""Parameter sweeps: the cross product of scenario overrides, one seeded simulation per point.

A sweep asks "how do p99 TTFT, throughput and $/Mtok move as I vary the load, the pool sizes,
the chip?" It takes one scenario and a grid — each key a scenario field path
(``workload.arrival.rate``, ``pools.decode.instances``), each with a list of values — and runs
every combination, optionally several times with different seeds (replicas) to see the
run-to-run spread of tail latencies.

Seeds. Every run gets its own seed, derived from the scenario's base seed and the run's own
overrides: ``SeedSequence([base seed, sha256(sorted overrides), replica])``. A run's seed thus
depends only on *what* it simulates — never on which worker ran it, in what order, or what else
was in the sweep — so adding a value to the grid leaves every other run (and its stored result)
unchanged, and local processes and Ray give byte-identical tables.

Results. Each finished run is stored at once under ``DIR/runs/<hash>.json`` (the hash of the
resolved scenario and seed; see :mod:`infersim.plan.store`), so an interrupted sweep resumes
where it stopped. The sweep's table — one row per run: the swept values, replica, seed, then the
summary metrics — is written to ``DIR/sweep.parquet`` and ``DIR/sweep.csv``, in grid order; with
replicas, ``DIR/sweep_spread.csv`` adds each grid point's mean, spread and range over its seeds.
A stored result is reused only if the same infersim version produced it.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infersim import __version__, limits
from infersim.errors import InfersimError
from infersim.plan.executors import Executor, RunFailure
from infersim.plan.store import RunStore
from infersim.scenario.seeds import derive_seed
from infersim.schema_errors import error_from_validation
from infersim.yamlfile import read_yaml

# Sweeping the seed itself would defeat the derivation above; replicas are the way to vary it.
_RESERVED_KEYS = ("seed",)
# Summary entries that describe the run rather than measure it: kept in each run's JSON record,
# left out of the table (the table has its own seed and run_hash columns).
PROVENANCE_KEYS = ("scenario", "backend", "scenario_name", "scenario_hash", "seed",
                   "infersim_version", "cost.split_rule")


def override_text(value: Any) -> str:
    """The text of an override value as ``--set`` takes it: strings as they are, else JSON.

    JSON is a subset of the YAML that ``--set`` parses, so ``40``, ``0.5``, ``true`` and lists
    round-trip; one canonical text per value keeps derived seeds stable.
    """
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True)


def typed_value(text: str) -> Any:
    """A grid value as the table shows it: ``"40"`` -> 40, ``"0.5"`` -> 0.5, ``"h100"`` stays."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    return value if isinstance(value, (int, float, bool, str)) and value is not None else text


@dataclass(frozen=True)
class SweepSpec:
    """What to sweep: the scenario, the grid (ordered keys, each with its values) and replicas."""

    scenario: str
    grid: tuple[tuple[str, tuple[str, ...]], ...]
    replicas: int = 1
    base_seed: int | None = None          # None: the scenario's own seed
    fixed: tuple[str, ...] = ()           # "key=value" overrides applied to every run
    source: str | None = None             # the sweep file, for error messages

    @property
    def runs(self) -> int:
        return math.prod(len(values) for _, values in self.grid) * self.replicas


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep: everything a worker needs, as plain picklable values."""

    scenario: str
    overrides: tuple[str, ...]            # fixed overrides, then the grid point, "key=value"
    point: tuple[tuple[str, str], ...]    # the grid point: (key, value text) in grid order
    position: tuple[int, ...]             # index of each value in its grid list (table order)
    replica: int
    seed: int


def parse_grid_option(text: str) -> tuple[str, tuple[str, ...]]:
    """``"workload.arrival.rate=5,10,20"`` -> ``("workload.arrival.rate", ("5", "10", "20"))``."""
    key, sep, values = text.partition("=")
    key = key.strip()
    items = tuple(v.strip() for v in values.split(",")) if sep else ()
    if not key or not items or any(not v for v in items):
        raise InfersimError(field="--grid", expected="KEY=V1,V2,... (a field path and its values)",
                            given=text)
    return key, items


def parse_set_option(text: str, *, field_name: str = "--set") -> str:
    key, sep, value = text.partition("=")
    if not key.strip() or not sep:
        raise InfersimError(field=field_name, expected="KEY=VALUE", given=text)
    return f"{key.strip()}={value.strip()}"


def make_spec(scenario: str, grid: Sequence[tuple[str, Sequence[str]]], *, replicas: int = 1,
              base_seed: int | None = None, fixed: Sequence[str] = (),
              source: str | None = None, field_prefix: str = "--grid") -> SweepSpec:
    """Validate a grid and build the spec: unique keys, non-empty value lists, no seed key."""
    seen: set[str] = set()
    for key, values in grid:
        where = f"{field_prefix}.{key}" if source else field_prefix
        if key in _RESERVED_KEYS:
            raise InfersimError(file=source, field=where, expected="a scenario field other than "
                                "'seed' (use seeds: N replicas to vary the seed)", given=key)
        if key in seen:
            raise InfersimError(file=source, field=where, expected="each key once", given=key)
        if not values:
            raise InfersimError(file=source, field=where, expected="at least one value", given=[])
        if len(set(values)) != len(values):
            raise InfersimError(file=source, field=where, expected="distinct values",
                                given=list(values))
        seen.add(key)
    if not grid:
        raise InfersimError(file=source, field=field_prefix, expected="at least one grid key",
                            given="none")
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise InfersimError(file=source, field="seeds" if source else "--seeds",
                            expected="an integer >= 1 (replicas per grid point)", given=replicas)
    if base_seed is not None and (isinstance(base_seed, bool) or not isinstance(base_seed, int)
                                  or base_seed < 0):
        raise InfersimError(file=source, field="seed" if source else "--seed",
                            expected="a non-negative integer", given=base_seed)
    return SweepSpec(scenario=str(scenario), grid=tuple((k, tuple(v)) for k, v in grid),
                     replicas=replicas, base_seed=base_seed, fixed=tuple(fixed), source=source)


class SweepFile(BaseModel):
    """A sweep YAML, checked at the edge (errors worded by :mod:`infersim.schema_errors`)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    scenario: str = Field(min_length=1, description="the scenario, relative to this file")
    grid: dict[str, list[Any]] = Field(min_length=1, description="field path -> values")
    seeds: int = Field(1, ge=1, le=limits.MAX_COUNT, description="replicas per grid point")
    seed: int | None = Field(None, ge=0, le=limits.MAX_SEED, description="the base seed")
    set: dict[str, Any] | None = Field(None, description="field path -> value, every run")


def load_sweep_file(path: str | Path) -> SweepSpec:
    """Read a sweep YAML: ``scenario`` (relative to the file), ``grid``, ``seeds``, ``seed``, ``set``."""
    path = Path(path)
    data = read_yaml(path, what="sweep file")
    if not isinstance(data, dict):
        raise InfersimError(file=path, expected="a mapping with scenario: and grid:", given=data)
    try:
        sweep = SweepFile.model_validate(data)
    except ValidationError as err:
        raise error_from_validation(err, data, path, root=SweepFile) from None
    grid = [(key, [override_text(v) for v in values]) for key, values in sweep.grid.items()]
    fixed = [f"{k}={override_text(v)}" for k, v in (sweep.set or {}).items()]
    return make_spec(_resolve_relative(sweep.scenario, path), grid, replicas=sweep.seeds,
                     base_seed=sweep.seed, fixed=fixed, source=str(path), field_prefix="grid")


def _resolve_relative(target: str, relative_to: Path) -> str:
    """A path written in a file is relative to that file; a bare shipped name stays a name."""
    candidate = (relative_to.parent / target)
    if candidate.exists() or "/" in target or target.endswith((".yaml", ".yml")):
        return str(candidate)
    return target


def expand(spec: SweepSpec, base_seed: int) -> list[RunTask]:
    """Every run of the sweep, in table order: grid points (first key slowest), then replicas."""
    keys = [key for key, _ in spec.grid]
    tasks = []
    for position in itertools.product(*(range(len(values)) for _, values in spec.grid)):
        point = tuple((key, spec.grid[k][1][i])
                      for k, (key, i) in enumerate(zip(keys, position, strict=True)))
        overrides = (*spec.fixed, *(f"{key}={value}" for key, value in point))
        for replica in range(spec.replicas):
            tasks.append(RunTask(scenario=spec.scenario, overrides=overrides, point=point,
                                 position=tuple(position), replica=replica,
                                 seed=derive_seed(base_seed, overrides, replica)))
    return tasks


class Runner(Protocol):
    """How a sweep turns a task into a result; the real one wraps :func:`infersim.simulate`.

    ``base_seed``, ``run_hash`` and ``payload`` run here, before anything is dispatched, so a bad
    override fails fast with one line instead of in a hundred workers; ``payload(task)`` is what
    travels to a worker, where the picklable module-level function ``run`` turns it into a
    summary.
    """

    run: Callable[[Any], Mapping[str, Any]]

    def base_seed(self, scenario: str, fixed: Sequence[str]) -> int: ...

    def run_hash(self, task: RunTask) -> str: ...

    def payload(self, task: RunTask) -> Any: ...


@dataclass(frozen=True)
class SweepOutcome:
    table: pd.DataFrame
    ran: int                    # simulated now
    reused: int                 # found in the store
    paths: tuple[Path, ...] = field(default=())


def flatten_summary(summary: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested summary blocks become dotted columns (``infersim.kv_peak_bytes``); scalars only."""
    flat: dict[str, Any] = {}
    for key, value in summary.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_summary(value, prefix=f"{name}."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            flat[name] = value
        elif isinstance(value, (np.integer, np.floating, np.bool_)):
            flat[name] = value.item()
    return flat


def run_sweep(spec: SweepSpec, runner: Runner, executor: Executor, out_dir: Path | None, *,
              on_progress: Callable[[int, int], None] | None = None) -> SweepOutcome:
    """Run every task not already stored, stream results into the store, and build the table.

    ``on_progress(done, total)`` is called once for the runs found in the store and after every
    finished run. With ``out_dir`` None nothing is stored or written (a throwaway sweep).
    """
    base_seed = spec.base_seed if spec.base_seed is not None else runner.base_seed(
        spec.scenario, spec.fixed)
    tasks = expand(spec, base_seed)
    try:
        hashes = [runner.run_hash(task) for task in tasks]
    except InfersimError as err:
        raise _as_grid_error(err, spec) from None
    store = RunStore(out_dir) if out_dir is not None else None
    records: dict[int, Mapping[str, Any]] = {}
    todo = []
    for index, run_hash in enumerate(hashes):
        found = store.get(run_hash) if store else None
        # A result from another infersim version may follow other physics: redo it.
        if found is not None and found.get("infersim_version") == __version__:
            records[index] = found
        else:
            todo.append(index)
    # Two grid points that resolve to the same scenario and seed are one run.
    by_hash: dict[str, list[int]] = {}
    for index in todo:
        by_hash.setdefault(hashes[index], []).append(index)
    dispatch = [indices[0] for indices in by_hash.values()]
    total = len(tasks)
    done = total - len(todo)
    if on_progress:
        on_progress(done, total)
    failures: list[tuple[RunTask, str]] = []
    payloads = [runner.payload(tasks[i]) for i in dispatch]
    for slot, result in executor.map_unordered(runner.run, payloads):
        task = tasks[dispatch[slot]]
        run_hash = hashes[dispatch[slot]]
        if isinstance(result, RunFailure):
            failures.append((task, result.message))
        else:
            record = {"scenario": task.scenario, "overrides": list(task.overrides),
                      "replica": task.replica, "seed": task.seed, "infersim_version": __version__,
                      "summary": dict(result)}
            if store:
                store.put(run_hash, record)
            for index in by_hash[run_hash]:
                records[index] = record
        done += len(by_hash[run_hash])
        if on_progress:
            on_progress(done, total)
    if failures:
        task, message = min(failures, key=lambda f: (f[0].position, f[0].replica))
        raise InfersimError(f"{len(failures)} of {total} sweep runs failed; first, with "
                            f"{', '.join(task.overrides) or 'no overrides'}: {message}")
    table = build_table(spec, tasks, [records[i] for i in range(total)], hashes)
    paths: tuple[Path, ...] = ()
    if out_dir is not None:
        paths = write_table(table, out_dir)
        if spec.replicas > 1:
            spread = out_dir / "sweep_spread.csv"
            replica_spread(table, [key for key, _ in spec.grid]).to_csv(spread, index=False)
            paths = (*paths, spread)
    return SweepOutcome(table=table, ran=len(dispatch), reused=total - len(todo), paths=paths)


def replica_spread(table: pd.DataFrame, grid_keys: Sequence[str]) -> pd.DataFrame:
    """Run-to-run spread per grid point: mean, standard deviation, min and max of every numeric
    metric over the replicas (``p99_ttft_ms_mean``, ``p99_ttft_ms_std`` ...), in grid order.

    Tail percentiles of a finite run are random variables; the spread over seeds says how many
    requests a run needs before a p99 can be compared with an SLO.
    """
    skip = {*grid_keys, "replica", "seed", "run_hash"}
    metrics = [c for c in table.columns if c not in skip
               and pd.api.types.is_numeric_dtype(table[c]) and not pd.api.types.is_bool_dtype(table[c])]
    point = table[list(grid_keys)].astype(str).agg("\x1f".join, axis=1)
    order = list(dict.fromkeys(point))     # grid order, as the table has it
    rows = []
    for key in order:
        group = table[point == key]
        row = {k: group.iloc[0][k] for k in grid_keys}
        row["replicas"] = len(group)
        for metric in metrics:
            values = group[metric].astype(float)
            row[f"{metric}_mean"] = values.mean()
            row[f"{metric}_std"] = values.std(ddof=1) if len(values) > 1 else float("nan")
            row[f"{metric}_min"] = values.min()
            row[f"{metric}_max"] = values.max()
        rows.append(row)
    return pd.DataFrame(rows)


def _as_grid_error(err: InfersimError, spec: SweepSpec) -> InfersimError:
    """An override error names ``--set <path>``; when the path is a grid key's, say ``--grid``
    (or ``grid.`` in a sweep file) so the user looks where they wrote it."""
    field = err.field or ""
    if field.startswith("--set "):
        path = field.removeprefix("--set ")
        if any(key == path or key.startswith(path + ".") for key, _ in spec.grid):
            err.field = f"grid.{path}" if spec.source else f"--grid {path}"
            err.args = (err._render(),)
    return err


def build_table(spec: SweepSpec, tasks: Sequence[RunTask], records: Sequence[Mapping[str, Any]],
                hashes: Sequence[str]) -> pd.DataFrame:
    """One row per run in grid order: swept values, replica, seed, metrics, run hash."""
    rows = []
    metric_columns: dict[str, None] = {}
    for task, record in zip(tasks, records, strict=True):
        summary = {k: v for k, v in record.get("summary", {}).items() if k not in PROVENANCE_KEYS}
        flat = {k: v for k, v in flatten_summary(summary).items() if k not in PROVENANCE_KEYS}
        for name in flat:
            metric_columns.setdefault(name, None)
        rows.append((task, flat))
    grid_keys = [key for key, _ in spec.grid]
    clash = [name for name in metric_columns if name in (*grid_keys, "replica", "seed", "run_hash")]
    columns = [*grid_keys, "replica", "seed", *(m for m in metric_columns if m not in clash),
               "run_hash"]
    data = []
    for (task, flat), run_hash in zip(rows, hashes, strict=True):
        row = {key: typed_value(value) for key, value in task.point}
        row.update(replica=task.replica, seed=task.seed, run_hash=run_hash)
        for name in metric_columns:
            if name not in clash:
                row[name] = flat.get(name)
        data.append(row)
    return pd.DataFrame(data, columns=columns)


def write_table(table: pd.DataFrame, out_dir: Path) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet = out_dir / "sweep.parquet"
    csv = out_dir / "sweep.csv"
    # Mixed-type columns (a grid key whose values are numbers and names) go to parquet as text.
    frame = table.copy()
    for column in frame.columns:
        kinds = {type(v) for v in frame[column] if v is not None}
        if len(kinds) > 1 and not kinds <= {int, float}:
            frame[column] = frame[column].map(lambda v: None if v is None else str(v))
    frame.to_parquet(parquet, index=False)
    table.to_csv(csv, index=False)
    return parquet, csv
