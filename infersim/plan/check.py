"""Capacity plans as regression tests: a scenario, a load, and the numbers it must hold.

A capacity plan is a promise — "eight H100s split 2 prefill / 6 decode serve 40 req/s of our
chat traffic at p99 TTFT under 800 ms for under $0.90 per million output tokens". A plan file
keeps that promise next to the code and the scenario, and ``infersim check`` re-simulates it on
every change (to the scenario, the hardware profiles, the traffic mix, or infersim itself) so a
plan that no longer holds fails CI like a broken unit test::

    scenario: ../scenarios/h100-disaggregated.yaml   # relative to the plan file
    load: {rate: 40}                 # sets workload.arrival.rate
    set: {workload.requests: 500}    # any other scenario override
    assert:
      p99_ttft_ms: {max: 800}
      output_throughput: {min: 8000, tolerance: 5%}
    baseline: h100-disaggregated.baseline.json        # optional recorded run

An assertion bounds one summary metric (``min`` and/or ``max``; ``tolerance`` widens the bound
by that fraction of it). A baseline compares metrics with a recorded run, each within a relative
tolerance in either direction: a plan that got much better is also a plan whose numbers moved,
and its baseline should be re-recorded deliberately (``--update-baseline``).

Metric names are the summary's keys (``p99_ttft_ms``, ``output_throughput``,
``request_goodput``, ``cost_per_million_output_tokens`` ...); a key inside a nested block may be
named by its dotted path or, when unambiguous, by its last part.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infersim.errors import InfersimError
from infersim.paths import find_data_file
from infersim.plan.junit import TestCase, TestSuite
from infersim.plan.sweep import flatten_summary, override_text
from infersim.yamlfile import read_yaml

PLAN_KEYS = ("name", "scenario", "load", "set", "seed", "assert", "baseline")
LOAD_KEYS = {"rate": "workload.arrival.rate"}
BOUND_KEYS = ("min", "max", "tolerance")
BASELINE_KEYS = ("file", "tolerance", "metrics")
DEFAULT_BASELINE_TOLERANCE = 0.05
# Recorded in a baseline besides the asserted metrics (where the summary has them): the figures
# a capacity planner reads first.
BASELINE_METRICS = (
    "completed", "failed", "request_throughput", "output_throughput", "request_goodput",
    "mean_ttft_ms", "p99_ttft_ms", "mean_itl_ms", "p99_itl_ms", "mean_tpot_ms", "p99_tpot_ms",
    "p99_e2el_ms", "cost_per_million_output_tokens", "cost_per_hour",
)


@dataclass(frozen=True)
class Bound:
    """``measured >= value`` (min) or ``measured <= value`` (max), widened by ``tolerance``."""

    metric: str
    kind: str                   # "min" | "max"
    value: float
    tolerance: float = 0.0      # fraction of |value|

    @property
    def limit(self) -> float:
        slack = self.tolerance * abs(self.value)
        return self.value + slack if self.kind == "max" else self.value - slack

    def holds(self, measured: float) -> bool:
        if measured is None or math.isnan(measured):
            return False
        return measured <= self.limit if self.kind == "max" else measured >= self.limit

    def describe(self) -> str:
        op = "<=" if self.kind == "max" else ">="
        text = f"{self.metric} {op} {_fmt(self.value)}"
        return text + (f" (tolerance {_fmt(self.tolerance * 100)}%)" if self.tolerance else "")


@dataclass(frozen=True)
class BaselineSpec:
    path: Path
    tolerance: float = DEFAULT_BASELINE_TOLERANCE
    metrics: Mapping[str, float] | None = None   # metric -> tolerance; None: all recorded


@dataclass(frozen=True)
class PlanFile:
    path: Path
    name: str
    scenario: Path
    overrides: tuple[str, ...]
    seed: int | None
    bounds: tuple[Bound, ...]
    baseline: BaselineSpec | None


@dataclass(frozen=True)
class Measured:
    """What running a plan's scenario gave: its flat summary, hash and seed."""

    summary: Mapping[str, Any]
    scenario_hash: str
    seed: int
    wall_s: float = 0.0


@dataclass(frozen=True)
class CaseResult:
    name: str
    kind: str                    # "assert" | "baseline"
    metric: str
    measured: float
    expected: str                # the bound, in words
    passed: bool
    message: str


@dataclass(frozen=True)
class PlanResult:
    plan: PlanFile
    measured: Measured
    cases: tuple[CaseResult, ...]
    notes: tuple[str, ...] = field(default=())

    @property
    def passed(self) -> bool:
        return all(case.passed for case in self.cases)


def _fmt(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "nan"
    return f"{value:.6g}"


_PERCENT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?\d+)?)\s*%\s*$")


def parse_tolerance(value: Any, *, file: Path, field_path: str) -> float:
    """``5%`` or ``0.05`` -> 0.05; a non-negative fraction."""
    if isinstance(value, bool):
        fraction = None
    elif isinstance(value, (int, float)):
        fraction = float(value)
    elif isinstance(value, str) and (match := _PERCENT.match(value)):
        fraction = float(match.group(1)) / 100.0
    else:
        fraction = None
    if fraction is None or not math.isfinite(fraction) or fraction < 0:
        raise InfersimError(file=file, field=field_path,
                            expected="a tolerance such as 5% or 0.05 (non-negative)", given=value)
    return fraction


def _number(value: Any, *, file: Path, field_path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InfersimError(file=file, field=field_path, expected="a finite number", given=value)
    return float(value)


def load_plan(path: str | Path, known_metrics: Sequence[str] | None = None) -> PlanFile:
    """Read and validate a plan file; every mistake is one line naming the file and the field."""
    path = Path(path)
    data = read_yaml(path, what="plan file")
    if not isinstance(data, dict):
        raise InfersimError(file=path, expected="a mapping with scenario: and assert:", given=data)
    for key in data:
        if key not in PLAN_KEYS:
            raise InfersimError(file=path, field=str(key), expected="one of " + ", ".join(PLAN_KEYS),
                                given=key)
    name = data.get("name", path.stem.removesuffix(".plan"))
    if not isinstance(name, str) or not name:
        raise InfersimError(file=path, field="name", expected="a non-empty string", given=name)

    scenario_text = data.get("scenario")
    if not isinstance(scenario_text, str) or not scenario_text:
        raise InfersimError(file=path, field="scenario", expected="a scenario file path", given=scenario_text)
    scenario = Path(os.path.normpath(path.parent / scenario_text))
    if not scenario.is_file():
        # Not beside the plan: a shipped or user scenario name such as "default" will do.
        shipped = find_data_file("scenarios", scenario_text) if "/" not in scenario_text else None
        if shipped is None:
            raise InfersimError(file=path, field="scenario",
                                expected="an existing scenario file (relative to the plan file) "
                                         "or a scenario name", given=scenario_text)
        scenario = shipped

    overrides: list[str] = []
    load = data.get("load") or {}
    if not isinstance(load, dict):
        raise InfersimError(file=path, field="load", expected="a mapping such as {rate: 40}", given=load)
    for key, value in load.items():
        if key not in LOAD_KEYS:
            raise InfersimError(file=path, field=f"load.{key}", expected="one of " + ", ".join(LOAD_KEYS),
                                given=key)
        if _number(value, file=path, field_path=f"load.{key}") <= 0:
            raise InfersimError(file=path, field=f"load.{key}", expected="a positive number", given=value)
        overrides.append(f"{LOAD_KEYS[key]}={override_text(value)}")
    fixed = data.get("set") or {}
    if not isinstance(fixed, dict):
        raise InfersimError(file=path, field="set", expected="a mapping of field path -> value",
                            given=fixed)
    overrides.extend(f"{key}={override_text(value)}" for key, value in fixed.items())

    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise InfersimError(file=path, field="seed", expected="a non-negative integer", given=seed)

    asserts = data.get("assert")
    if not isinstance(asserts, dict) or not asserts:
        raise InfersimError(file=path, field="assert",
                            expected="a mapping of metric -> {min:/max:} bounds", given=asserts)
    bounds: list[Bound] = []
    for metric, spec in asserts.items():
        where = f"assert.{metric}"
        known = (resolve_metric_name(str(metric), known_metrics) is not None
                 if known_metrics is not None else is_metric_name(str(metric)))
        if not known:
            raise InfersimError(file=path, field=where, expected="a summary metric name such as "
                                "p99_ttft_ms or output_throughput", given=metric)
        if not isinstance(spec, dict) or not spec:
            raise InfersimError(file=path, field=where, expected="a mapping with min: and/or max:",
                                given=spec)
        for key in spec:
            if key not in BOUND_KEYS:
                raise InfersimError(file=path, field=f"{where}.{key}",
                                    expected="one of " + ", ".join(BOUND_KEYS), given=key)
        if "min" not in spec and "max" not in spec:
            raise InfersimError(file=path, field=where, expected="a min: or max: bound", given=spec)
        tolerance = parse_tolerance(spec.get("tolerance", 0), file=path, field_path=f"{where}.tolerance")
        for kind in ("min", "max"):
            if kind in spec:
                value = _number(spec[kind], file=path, field_path=f"{where}.{kind}")
                bounds.append(Bound(str(metric), kind, value, tolerance))
        if "min" in spec and "max" in spec and spec["min"] > spec["max"]:
            raise InfersimError(file=path, field=where, expected="min <= max", given=spec)

    baseline = _load_baseline_spec(data.get("baseline"), path)
    return PlanFile(path=path, name=name, scenario=scenario, overrides=tuple(overrides), seed=seed,
                    bounds=tuple(bounds), baseline=baseline)


def _load_baseline_spec(value: Any, path: Path) -> BaselineSpec | None:
    if value is None:
        return None
    if isinstance(value, str) and value:
        return BaselineSpec(path=path.parent / value)
    if not isinstance(value, dict):
        raise InfersimError(file=path, field="baseline",
                            expected="a file name or {file:, tolerance:, metrics:}", given=value)
    for key in value:
        if key not in BASELINE_KEYS:
            raise InfersimError(file=path, field=f"baseline.{key}",
                                expected="one of " + ", ".join(BASELINE_KEYS), given=key)
    file_name = value.get("file")
    if not isinstance(file_name, str) or not file_name:
        raise InfersimError(file=path, field="baseline.file", expected="a file name", given=file_name)
    tolerance = parse_tolerance(value.get("tolerance", DEFAULT_BASELINE_TOLERANCE), file=path,
                                field_path="baseline.tolerance")
    metrics_spec = value.get("metrics")
    metrics: dict[str, float] | None = None
    if metrics_spec is not None:
        if isinstance(metrics_spec, list) and all(isinstance(m, str) for m in metrics_spec):
            metrics = dict.fromkeys(metrics_spec, tolerance)
        elif isinstance(metrics_spec, dict):
            metrics = {str(m): (tolerance if tol is None else parse_tolerance(
                tol, file=path, field_path=f"baseline.metrics.{m}")) for m, tol in metrics_spec.items()}
        else:
            raise InfersimError(file=path, field="baseline.metrics",
                                expected="a list of metrics or a mapping metric -> tolerance",
                                given=metrics_spec)
    return BaselineSpec(path=path.parent / file_name, tolerance=tolerance, metrics=metrics)


# Names capacity planners use for figures the summary files under its cost block.
METRIC_ALIASES = {
    "cost_per_million_output_tokens": "cost.usd_per_million_output_tokens",
    "cost_per_million_input_tokens": "cost.usd_per_million_input_tokens",
    "cost_per_million_tokens": "cost.usd_per_million_tokens",
    "cost_per_request": "cost.usd_per_request",
    "cost_per_hour": "cost.dollars_per_hour",
    "joules_per_output_token": "cost.joules_per_output_token",
}


_LATENCY_STAT = re.compile(r"^(mean|median|std|p50|p90|p99)_(ttft|tpot|itl|e2el)_ms$")
_SCALAR_METRICS = ("completed", "failed", "duration", "total_input_tokens", "total_output_tokens",
                   "request_throughput", "request_goodput", "output_throughput",
                   "total_token_throughput")
_BLOCKS = ("cost.", "infersim.", "slo_attainment.")


def is_metric_name(name: str) -> bool:
    """Whether ``name`` can name a summary metric, judged before any run: a vLLM-bench key, a
    latency statistic, a cost alias, or a dotted path into the cost/infersim/slo_attainment
    blocks (whose keys are checked against the run's summary)."""
    return (name in _SCALAR_METRICS or bool(_LATENCY_STAT.match(name)) or name in METRIC_ALIASES
            or name.startswith(_BLOCKS))


def resolve_metric_name(name: str, available: Sequence[str]) -> str | None:
    """The summary column ``name`` refers to: an exact dotted key, an alias of a cost figure
    (``cost_per_million_output_tokens``), or a unique last part."""
    if name in available:
        return name
    alias = METRIC_ALIASES.get(name)
    if alias is not None and alias in available:
        return alias
    matches = [key for key in available if key.rsplit(".", 1)[-1] == name]
    return matches[0] if len(matches) == 1 else None


def metric_value(summary: Mapping[str, Any], name: str, *, file: Path, field_path: str) -> float:
    key = resolve_metric_name(name, list(summary))
    if key is None:
        numeric = sorted(k for k, v in summary.items() if isinstance(v, (int, float)) and "." not in k)
        raise InfersimError(file=file, field=field_path,
                            expected="a summary metric (" + ", ".join(numeric[:12]) + ", ...)",
                            given=name)
    value = summary[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InfersimError(file=file, field=field_path, expected="a numeric metric", given=name)
    return float(value)


def read_baseline(spec: BaselineSpec, plan: PlanFile) -> dict[str, Any]:
    try:
        data = json.loads(spec.path.read_text())
    except FileNotFoundError:
        raise InfersimError(file=plan.path, field="baseline", expected="an existing baseline file "
                            "(record it with infersim check --update-baseline)",
                            given=str(spec.path.name)) from None
    except json.JSONDecodeError as err:
        raise InfersimError(file=spec.path, line=err.lineno, expected="baseline JSON",
                            given=err.msg) from None
    if not isinstance(data, dict) or not isinstance(data.get("metrics"), dict):
        raise InfersimError(file=spec.path, field="metrics", expected="a mapping metric -> value",
                            given=data.get("metrics") if isinstance(data, dict) else data)
    return data


def baseline_record(plan: PlanFile, measured: Measured) -> dict[str, Any]:
    """What ``--update-baseline`` writes: the asserted metrics plus the planner's usual figures."""
    names: dict[str, None] = {}
    for bound in plan.bounds:
        names.setdefault(bound.metric, None)
    if plan.baseline is not None and plan.baseline.metrics:
        for metric in plan.baseline.metrics:
            names.setdefault(metric, None)
    for metric in BASELINE_METRICS:
        if resolve_metric_name(metric, list(measured.summary)) is not None:
            names.setdefault(metric, None)
    values = {name: metric_value(measured.summary, name, file=plan.path, field_path=f"assert.{name}")
              for name in names}
    # A figure the run could not produce (a NaN percentile of an empty set) is no reference.
    metrics = {name: value for name, value in values.items() if math.isfinite(value)}
    return {"plan": plan.name, "scenario_hash": measured.scenario_hash, "seed": measured.seed,
            "overrides": list(plan.overrides), "metrics": metrics}


def write_baseline(plan: PlanFile, measured: Measured) -> Path:
    assert plan.baseline is not None
    record = baseline_record(plan, measured)
    plan.baseline.path.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return plan.baseline.path


def evaluate(plan: PlanFile, measured: Measured, *, update_baseline: bool = False) -> PlanResult:
    """Judge a measured run against the plan's bounds and (unless re-recording) its baseline."""
    cases: list[CaseResult] = []
    notes: list[str] = []
    for bound in plan.bounds:
        value = metric_value(measured.summary, bound.metric, file=plan.path,
                             field_path=f"assert.{bound.metric}")
        passed = bound.holds(value)
        message = (f"{bound.metric} = {_fmt(value)}, bound {bound.kind} {_fmt(bound.value)}"
                   + (f" (limit {_fmt(bound.limit)} with tolerance)" if bound.tolerance else ""))
        op = "<=" if bound.kind == "max" else ">="
        expected = f"{op} {_fmt(bound.value)}" + (
            f" ({'+' if bound.kind == 'max' else '-'}{_fmt(bound.tolerance * 100)}%)"
            if bound.tolerance else "")
        cases.append(CaseResult(name=bound.describe(), kind="assert", metric=bound.metric,
                                measured=value, expected=expected, passed=passed,
                                message=message))
    if plan.baseline is not None and update_baseline:
        path = write_baseline(plan, measured)
        notes.append(f"baseline recorded: {path}")
    elif update_baseline:
        notes.append("no baseline recorded: the plan names no baseline file (add "
                     f"baseline: {plan.path.stem}.baseline.json)")
    elif plan.baseline is not None:
        recorded = read_baseline(plan.baseline, plan)
        selection = plan.baseline.metrics or dict.fromkeys(recorded["metrics"], plan.baseline.tolerance)
        if recorded.get("scenario_hash") not in (None, measured.scenario_hash):
            notes.append("scenario changed since the baseline was recorded "
                         f"({recorded.get('scenario_hash')} -> {measured.scenario_hash})")
        for metric, tolerance in selection.items():
            where = f"baseline.metrics.{metric}"
            if metric not in recorded["metrics"]:
                raise InfersimError(file=plan.baseline.path, field=f"metrics.{metric}",
                                    expected="a recorded value (re-record with --update-baseline)",
                                    given="missing")
            reference = _number(recorded["metrics"][metric], file=plan.baseline.path,
                                field_path=f"metrics.{metric}")
            value = metric_value(measured.summary, metric, file=plan.path, field_path=where)
            drift = abs(value - reference)
            allowed = tolerance * abs(reference)
            passed = math.isfinite(value) and drift <= allowed + 1e-12
            if reference:
                change = f"{(value - reference) / abs(reference) * 100:+.2f}%"
            else:
                change = "from zero" if drift else "+0.00%"
            cases.append(CaseResult(
                name=f"baseline {metric} within {_fmt(tolerance * 100)}%", kind="baseline",
                metric=metric, measured=value,
                expected=f"{_fmt(reference)} ± {_fmt(tolerance * 100)}%", passed=passed,
                message=f"{metric} = {_fmt(value)}, baseline {_fmt(reference)} "
                        f"({change}, allowed ±{_fmt(tolerance * 100)}%)"))
    return PlanResult(plan=plan, measured=measured, cases=tuple(cases), notes=tuple(notes))


def run_plans(paths: Sequence[str | Path], measure: Callable[[PlanFile], Measured], *,
              update_baseline: bool = False, known_metrics: Sequence[str] | None = None,
              on_plan: Callable[[PlanResult], None] | None = None,
              on_unreadable: Callable[[Path, InfersimError], None] | None = None,
              ) -> list[PlanResult]:
    """Validate every plan first, then run each. A plan that cannot be read (or whose baseline
    cannot) stops everything before any simulation — unless ``on_unreadable`` is given: then it
    is handed that plan's path and error, and the readable plans still run."""
    plans = []
    for path in paths:
        try:
            plan = load_plan(path, known_metrics)
            if not update_baseline and plan.baseline is not None:
                read_baseline(plan.baseline, plan)
        except InfersimError as err:
            if on_unreadable is None:
                raise
            on_unreadable(Path(path), err)
            continue
        plans.append(plan)
    names = [plan.name for plan in plans]
    for plan in plans:
        if names.count(plan.name) > 1:
            raise InfersimError(file=plan.path, field="name", expected="a name no other plan in "
                                "this check uses (it names the JUnit testsuite)", given=plan.name)
    results = []
    for plan in plans:
        started = time.perf_counter()
        measured = measure(plan)
        if not measured.wall_s:
            measured = Measured(summary=measured.summary, scenario_hash=measured.scenario_hash,
                                seed=measured.seed, wall_s=time.perf_counter() - started)
        flat = Measured(summary=flatten_summary(measured.summary),
                        scenario_hash=measured.scenario_hash, seed=measured.seed,
                        wall_s=measured.wall_s)
        result = evaluate(plan, flat, update_baseline=update_baseline)
        results.append(result)
        if on_plan:
            on_plan(result)
    return results


def unreadable_suite(path: Path, error: InfersimError) -> TestSuite:
    """A plan file that could not be read, as a JUnit testsuite with one erroring case."""
    name = Path(path).stem
    return TestSuite(name=name, cases=(TestCase(name="read plan",
                                                classname=f"infersim.plans.{name}",
                                                error=str(error)),),
                     properties={"plan": str(path)})


def to_junit(results: Sequence[PlanResult]) -> list[TestSuite]:
    suites = []
    for result in results:
        classname = f"infersim.plans.{result.plan.name}"
        cases = tuple(
            TestCase(name=case.name, classname=classname,
                     failure=None if case.passed else case.message,
                     failure_detail="" if case.passed else
                     f"{case.message}\nplan: {result.plan.path}\nscenario: {result.plan.scenario}")
            for case in result.cases)
        properties = {"plan": str(result.plan.path), "scenario": str(result.plan.scenario),
                      "scenario_hash": result.measured.scenario_hash,
                      "seed": str(result.measured.seed),
                      "overrides": " ".join(result.plan.overrides)}
        for index, note in enumerate(result.notes):
            properties[f"note.{index}"] = note
        suites.append(TestSuite(name=result.plan.name, cases=cases, time_s=result.measured.wall_s,
                                properties=properties))
    return suites
