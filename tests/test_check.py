"""Plan files: validation at the edge, bounds with tolerance, baselines, and the JUnit report.

The simulator is replaced here by fixed summaries, so each judgement is tested exactly;
``test_check_cli.py`` runs the shipped plans through the real simulator.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import pytest

from infersim.errors import InfersimError
from infersim.plan.check import (
    Bound,
    Measured,
    evaluate,
    load_plan,
    parse_tolerance,
    resolve_metric_name,
    run_plans,
    to_junit,
)
from infersim.plan.junit import write_junit

SUMMARY = {"completed": 500, "p99_ttft_ms": 700.0, "p99_itl_ms": 45.0, "output_throughput": 7800.0,
           "cost": {"cost_per_million_output_tokens": 0.8}}


@pytest.fixture
def plan_dir(tmp_path):
    (tmp_path / "scenarios").mkdir()
    (tmp_path / "scenarios" / "s.yaml").write_text("name: s\n")
    (tmp_path / "plans").mkdir()
    return tmp_path / "plans"


def write_plan(folder, text, name="p.yaml"):
    path = folder / name
    path.write_text(text)
    return path


GOOD = """\
scenario: ../scenarios/s.yaml
load: {rate: 40}
set: {workload.requests: 500}
assert:
  p99_ttft_ms: {max: 800}
  p99_itl_ms: {max: 40}
  cost_per_million_output_tokens: {max: 0.90}
  output_throughput: {min: 8000, tolerance: 5%}
"""


def fixed(summary):
    return lambda plan: Measured(summary=summary, scenario_hash="abc", seed=3, wall_s=0.5)


def test_plan_file_becomes_overrides_and_bounds(plan_dir):
    plan = load_plan(write_plan(plan_dir, GOOD))
    assert plan.name == "p"
    assert plan.scenario == plan_dir.parent / "scenarios" / "s.yaml"
    assert plan.overrides == ("workload.arrival.rate=40", "workload.requests=500")
    assert plan.bounds == (Bound("p99_ttft_ms", "max", 800.0), Bound("p99_itl_ms", "max", 40.0),
                           Bound("cost_per_million_output_tokens", "max", 0.9),
                           Bound("output_throughput", "min", 8000.0, 0.05))


def test_each_assertion_is_judged_with_its_tolerance(plan_dir):
    [result] = run_plans([write_plan(plan_dir, GOOD)], fixed(SUMMARY))
    verdicts = {case.metric: case.passed for case in result.cases}
    # ITL 45 > 40 fails; throughput 7800 >= 8000 x 0.95 = 7600 passes thanks to the tolerance;
    # the nested cost key is found by its last part.
    assert verdicts == {"p99_ttft_ms": True, "p99_itl_ms": False,
                        "cost_per_million_output_tokens": True, "output_throughput": True}
    assert not result.passed
    failed = next(case for case in result.cases if not case.passed)
    assert failed.message == "p99_itl_ms = 45, bound max 40"


@pytest.mark.parametrize(("kind", "value", "tolerance", "measured", "holds"), [
    ("max", 100.0, 0.0, 100.0, True),      # bounds are inclusive, as SLOs are (<=)
    ("max", 100.0, 0.0, 100.0001, False),
    ("max", 100.0, 0.1, 110.0, True),
    ("min", 100.0, 0.1, 90.0, True),
    ("min", 100.0, 0.1, 89.9, False),
    ("min", 0.0, 0.5, math.nan, False),    # no measurement never passes
])
def test_bound_physics(kind, value, tolerance, measured, holds):
    assert Bound("m", kind, value, tolerance).holds(measured) is holds


@pytest.mark.parametrize(("text", "fraction"), [("5%", 0.05), ("0.5 %", 0.005), (0.05, 0.05), (0, 0.0)])
def test_tolerance_forms(text, fraction, tmp_path):
    assert parse_tolerance(text, file=tmp_path, field_path="t") == pytest.approx(fraction)


@pytest.mark.parametrize(("body", "message"), [
    ("scenario: ../scenarios/missing.yaml\nassert: {p99_ttft_ms: {max: 1}}\n",
     "{plan}: scenario: expected an existing scenario file (relative to the plan file) or a "
     "scenario name, got '../scenarios/missing.yaml'"),
    ("scenario: ../scenarios/s.yaml\nassert: {p99_ttft_ms: {max: fast}}\n",
     "{plan}: assert.p99_ttft_ms.max: expected a finite number, got 'fast'"),
    ("scenario: ../scenarios/s.yaml\nassert: {p99_ttft_ms: {below: 3}}\n",
     "{plan}: assert.p99_ttft_ms.below: expected one of min, max, tolerance, got 'below'"),
    ("scenario: ../scenarios/s.yaml\nassert: {p99_ttft_ms: {max: 3, tolerance: lots}}\n",
     "{plan}: assert.p99_ttft_ms.tolerance: expected a tolerance such as 5% or 0.05 "
     "(non-negative), got 'lots'"),
    ("scenario: ../scenarios/s.yaml\nload: {qps: 3}\nassert: {p99_ttft_ms: {max: 3}}\n",
     "{plan}: load.qps: expected one of rate, got 'qps'"),
    ("scenario: ../scenarios/s.yaml\nassert: {p99_tft_ms: {max: 3}}\n",
     "{plan}: assert.p99_tft_ms: expected a summary metric name such as p99_ttft_ms or "
     "output_throughput, got 'p99_tft_ms'"),
    ("scenario: ../scenarios/s.yaml\nasserts: {}\n",
     "{plan}: asserts: expected one of name, scenario, load, set, seed, assert, baseline, "
     "got 'asserts'"),
])
def test_bad_plan_is_one_line_naming_file_and_field(plan_dir, body, message):
    path = write_plan(plan_dir, body)
    with pytest.raises(InfersimError) as err:
        load_plan(path, known_metrics=[*SUMMARY, "cost.cost_per_million_output_tokens"])
    assert str(err.value) == message.format(plan=path)


def test_metric_names_are_checked_before_any_run(plan_dir):
    path = write_plan(plan_dir, "scenario: ../scenarios/s.yaml\nassert: {p99_tft_ms: {max: 3}}\n")
    ran = []
    with pytest.raises(InfersimError, match=r"assert\.p99_tft_ms: expected a summary metric"):
        run_plans([path], lambda plan: ran.append(plan))
    assert ran == []


def test_a_block_path_missing_from_the_summary_is_still_a_user_error(plan_dir):
    path = write_plan(plan_dir, "scenario: ../scenarios/s.yaml\n"
                                "assert: {infersim.kv_peak: {max: 3}}\n")
    with pytest.raises(InfersimError) as err:
        run_plans([path], fixed(SUMMARY))
    assert str(err.value).startswith(f"{path}: assert.infersim.kv_peak: expected a summary "
                                     "metric (completed, output_throughput, p99_itl_ms")


def test_metric_names_resolve_by_unique_last_part():
    keys = ["p99_ttft_ms", "cost.cost_per_hour", "energy.cost_per_hour", "cost.usd"]
    assert resolve_metric_name("p99_ttft_ms", keys) == "p99_ttft_ms"
    assert resolve_metric_name("usd", keys) == "cost.usd"
    assert resolve_metric_name("cost_per_hour", keys) is None  # ambiguous: name the block
    assert resolve_metric_name("cost.cost_per_hour", keys) == "cost.cost_per_hour"


def test_baseline_is_recorded_then_compared_both_ways(plan_dir):
    plan_path = write_plan(plan_dir, GOOD.replace("p99_itl_ms: {max: 40}", "p99_itl_ms: {max: 50}")
                           + "baseline: {file: p.baseline.json, tolerance: 2%}\n")
    with pytest.raises(InfersimError, match="record it with infersim check --update-baseline"):
        run_plans([plan_path], fixed(SUMMARY))
    [recorded] = run_plans([plan_path], fixed(SUMMARY), update_baseline=True)
    assert recorded.passed and all(case.kind == "assert" for case in recorded.cases)
    stored = json.loads((plan_dir / "p.baseline.json").read_text())
    assert stored["metrics"] == {"p99_ttft_ms": 700.0, "p99_itl_ms": 45.0,
                                 "cost_per_million_output_tokens": 0.8, "output_throughput": 7800.0,
                                 "completed": 500.0}
    [same] = run_plans([plan_path], fixed(SUMMARY))
    assert same.passed and sum(case.kind == "baseline" for case in same.cases) == 5
    # Throughput 2.5% lower: within the 5% assertion tolerance, outside the 2% baseline band.
    drifted = {**SUMMARY, "output_throughput": 7800.0 * 0.975}
    [moved] = run_plans([plan_path], fixed(drifted))
    [failure] = [case for case in moved.cases if not case.passed]
    assert failure.kind == "baseline"
    assert failure.message == "output_throughput = 7605, baseline 7800 (-2.50%, allowed ±2%)"
    # Better by as much also fails: the recorded numbers no longer describe the plan.
    faster = {**SUMMARY, "p99_ttft_ms": 600.0}
    assert not run_plans([plan_path], fixed(faster))[0].passed


def test_junit_has_the_shape_ci_systems_read(plan_dir, tmp_path):
    good = write_plan(plan_dir, GOOD.replace("p99_itl_ms: {max: 40}", "p99_itl_ms: {max: 50}"),
                      "good.yaml")
    bad = write_plan(plan_dir, GOOD, "bad.yaml")
    results = run_plans([good, bad], fixed(SUMMARY))
    path = write_junit(to_junit(results), tmp_path / "out" / "junit.xml")
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("8", "1", "0")
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["good", "bad"]
    assert [(s.get("tests"), s.get("failures")) for s in suites] == [("4", "0"), ("4", "1")]
    cases = suites[1].findall("testcase")
    assert [c.get("name") for c in cases] == [
        "p99_ttft_ms <= 800", "p99_itl_ms <= 40", "cost_per_million_output_tokens <= 0.9",
        "output_throughput >= 8000 (tolerance 5%)"]
    assert {c.get("classname") for c in cases} == {"infersim.plans.bad"}
    [failure] = suites[1].iter("failure")
    assert failure.get("message") == "p99_itl_ms = 45, bound max 40"
    assert failure.get("type") == "AssertionError"
    props = {p.get("name"): p.get("value") for p in suites[0].iter("property")}
    assert props["scenario_hash"] == "abc" and props["seed"] == "3"


def test_duplicate_plan_names_are_rejected(plan_dir):
    a = write_plan(plan_dir, "name: same\n" + GOOD, "a.yaml")
    b = write_plan(plan_dir, "name: same\n" + GOOD, "b.yaml")
    with pytest.raises(InfersimError, match="name: expected a name no other plan"):
        run_plans([a, b], fixed(SUMMARY))


def test_result_of_evaluate_is_independent_of_junit(plan_dir):
    plan = load_plan(write_plan(plan_dir, GOOD))
    result = evaluate(plan, Measured(summary={"p99_ttft_ms": 1.0, "p99_itl_ms": 1.0,
                                              "cost_per_million_output_tokens": 0.1,
                                              "output_throughput": 9000.0},
                                     scenario_hash="h", seed=0))
    assert result.passed


def test_cost_aliases_name_the_cost_block():
    keys = ["cost.usd_per_million_output_tokens", "cost.dollars_per_hour", "p99_ttft_ms"]
    assert resolve_metric_name("cost_per_million_output_tokens", keys) == (
        "cost.usd_per_million_output_tokens")
    assert resolve_metric_name("cost_per_hour", keys) == "cost.dollars_per_hour"


def test_scenario_may_be_a_shipped_name(plan_dir):
    plan = load_plan(write_plan(plan_dir, "scenario: default\nassert: {p99_ttft_ms: {max: 1}}\n"))
    assert plan.scenario.name == "default.yaml" and plan.scenario.is_file()


def test_update_baseline_without_a_baseline_file_says_so(plan_dir):
    [result] = run_plans([write_plan(plan_dir, GOOD)], fixed(SUMMARY), update_baseline=True)
    assert result.notes == ("no baseline recorded: the plan names no baseline file (add "
                            "baseline: p.baseline.json)",)
