"""The capacity planner: cost-model sizing obeys the SLO physics, the recommended plan meets its
SLOs when re-run, and it is no dearer than the obvious hand-sized alternative.

The base scenario is a small Llama-3.1-8B workload
(``tests/fixtures/plans/scenarios/tiny-disaggregated.yaml``: 200 requests, ~650-token prompts,
~90-token answers, p99 TTFT 500 ms and ITL 40 ms), so a whole plan — sizing, confirmation and
max-rate search — runs in about a second in-process.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import plan_targets

from infersim.api import simulate
from infersim.cli import main
from infersim.cost import Deployment, decode_time, placement
from infersim.errors import InfersimError
from infersim.hardware import load_hardware
from infersim.model import load_model
from infersim.plan.candidate import Candidate, PoolPlan
from infersim.plan.executors import SerialExecutor
from infersim.plan.outputs import plans_table, verdict, write_outputs
from infersim.plan.planned import base_document, candidate_data
from infersim.plan.planner import plan_capacity
from infersim.plan.sizing import ITL_STEP_SHARE, _shape, size_candidates
from infersim.plan.target import load_shape
from infersim.scenario import build_cluster, load_scenario
from infersim.slo import SLO, slo_of, slo_verdict

TINY = Path(__file__).resolve().parent / "fixtures" / "plans" / "scenarios" / "tiny-disaggregated.yaml"
RATE = 40.0
CHIPS = ["h100", "a100", "b200"]
# Each planner run spans at least this much of arrivals: short, for speed (200 requests at 40
# req/s, as the fixture asks); the default of 60 s is tested on its own.
SPAN = 5.0


@pytest.fixture(scope="module")
def base():
    return load_scenario(TINY)


@pytest.fixture(scope="module")
def outcome():
    return plan_capacity(TINY, rate=RATE, hardware=CHIPS,
                         executor=SerialExecutor(), min_span_s=SPAN)


# --- stage 1: the cost model ---------------------------------------------------------------


def test_load_shape_is_the_workload_means(base):
    load = load_shape(base)
    # uniform prompts 256..1024 and outputs 32..160: means near the middles
    assert 600 < load.mean_prompt < 690 and 85 < load.mean_output < 100
    assert load.requests == 200


def test_every_candidate_carries_the_rate_at_its_sizing_target(base):
    load, slo = load_shape(base), slo_of(base)
    candidates, _ = size_candidates(base, load, slo, RATE, CHIPS)
    assert candidates
    assert [c.cost_per_hour for c in candidates] == sorted(c.cost_per_hour for c in candidates)
    for c in candidates:
        assert c.capacity_rps * c.utilisation_target >= RATE * (1 - 1e-9), c.label
        assert {p.role for p in c.pools} == ({"mixed"} if c.layout == "colocated"
                                             else {"prefill", "decode"})


def test_decode_batches_keep_steps_inside_the_itl_target(base):
    load, slo = load_shape(base), slo_of(base)
    model = load_model(base.model)
    candidates, _ = size_candidates(base, load, slo, RATE, CHIPS)
    context = round(load.mean_context)
    for c in candidates:
        for pool in c.pools:
            if pool.role != "decode":
                continue
            dep = Deployment(model=model, hardware=load_hardware(pool.hardware), tp=pool.tp)
            step = decode_time(dep, pool.max_batch_size, context)
            assert step <= ITL_STEP_SHARE * slo.itl_ms / 1000 + 1e-12, c.label
            # and the batch is as large as the target allows (or the base's cap of 128)
            if pool.max_batch_size < 128:
                assert decode_time(dep, pool.max_batch_size + 1, context) > (
                    ITL_STEP_SHARE * slo.itl_ms / 1000), c.label


@given(plan_targets())
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_sizing_invariants_hold_for_any_target(base, targets):
    rate, ttft_ms, itl_ms = targets
    load, slo = load_shape(base), SLO(ttft_ms=ttft_ms, itl_ms=itl_ms)
    candidates, pruned = size_candidates(base, load, slo, rate, ["h100", "b200"])
    model = load_model(base.model)
    costs = [c.cost_per_hour for c in candidates]
    assert costs == sorted(costs)
    for c in candidates:
        # sized to carry the rate at its utilisation target, never beyond the ITL step budget
        assert c.capacity_rps * c.utilisation_target >= rate * (1 - 1e-9)
        for pool in c.pools:
            assert pool.instances >= 1 and pool.max_batch_size >= 1
            if pool.role == "decode":
                dep = Deployment(model=model, hardware=load_hardware(pool.hardware), tp=pool.tp)
                assert decode_time(dep, pool.max_batch_size, round(load.mean_context)) <= (
                    ITL_STEP_SHARE * itl_ms / 1000 + 1e-12)
    # every shape is either admitted in some candidate or pruned with a reason
    assert candidates or pruned


def test_tighter_itl_never_admits_a_larger_decode_batch(base):
    load = load_shape(base)
    model, chip = load_model("llama-3.1-8b"), load_hardware("h100")

    def batch(itl_ms, tp):
        shape = _shape(chip, model, "bf16", None, False, 0.9, tp, 1, load,
                       SLO(ttft_ms=500, itl_ms=itl_ms), 256, 8192, 3.0, None)
        return shape.decode_batch

    for tp in (1, 2, 4):
        assert 1 <= batch(12, tp) <= batch(40, tp)
    assert batch(12, 1) < batch(40, 1)


def test_impossible_slos_are_pruned_with_reasons(base):
    load = load_shape(base)
    candidates, pruned = size_candidates(base, load, SLO(ttft_ms=500, itl_ms=1), RATE, ["h100"])
    assert candidates == []
    assert pruned and all("ITL target" in p.why for p in pruned)
    assert {p.family for p in pruned} == {"h100"}
    outcome = plan_capacity(TINY, rate=RATE, hardware=["h100"],
                            executor=SerialExecutor(), min_span_s=SPAN,
                            slo=SLO(ttft_ms=500, itl_ms=1))
    assert outcome.best is None and outcome.simulations == 0


# --- stages 2 and 3: simulation --------------------------------------------------------------


def test_best_plan_rerun_meets_its_slos(outcome, tmp_path, base):
    assert outcome.best is not None and outcome.best.slo_met
    write_outputs(outcome, tmp_path, str(TINY))
    rerun = simulate(tmp_path / "best.yaml").summary
    ok, reason = slo_verdict(rerun, slo_of(base), 200)
    assert ok, reason
    assert rerun["scenario_name"] == outcome.best_scenario["name"]
    assert rerun["scenario_name"].startswith(f"tiny-disaggregated-plan-{outcome.best.candidate.layout}-")
    planned = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert planned["workload"]["arrival"]["rate"] == RATE


def test_best_plan_is_cheaper_than_hand_sized_all_h100_colocated(outcome):
    # The obvious plan: colocated H100s with the base's batching limits, instance count raised
    # by hand until the simulated SLOs hold.
    naive_cost = None
    for instances in range(1, 9):
        pools = {"serve": {"role": "mixed", "hardware": "h100", "instances": instances,
                           "max_batch_size": 128}}
        summary = simulate(TINY, overrides=[f"pools={json.dumps(pools)}", "links=[]",
                                            f"workload.arrival.rate={RATE}"]).summary
        if slo_verdict(summary, SLO(ttft_ms=500, itl_ms=40), 200)[0]:
            naive_cost = instances * load_hardware("h100").price_per_chip_hour
            break
    assert naive_cost is not None
    assert outcome.best.candidate.cost_per_hour < naive_cost
    # and no confirmed plan is cheaper than the one recommended
    confirmed = [ev for ev in outcome.evaluations if ev.slo_met]
    assert outcome.best.candidate.cost_per_hour == min(ev.candidate.cost_per_hour for ev in confirmed)


def test_max_rate_holds_and_its_double_does_not(outcome, base):
    best = outcome.best
    assert best.max_rate >= RATE
    assert slo_verdict(best.max_rate_summary, slo_of(base), 200)[0]
    overloaded = dict(outcome.best_scenario)
    overloaded["workload"] = {**overloaded["workload"],
                              "arrival": {"process": "poisson", "rate": 2 * best.max_rate}}
    assert not slo_verdict(simulate(overloaded).summary, slo_of(base), 200)[0]
    row = plans_table(outcome).iloc[0]
    assert row["max_rate"] == pytest.approx(best.max_rate)
    assert row["requests_per_dollar"] == pytest.approx(best.goodput_per_dollar)


def test_both_layouts_are_confirmed_and_the_verdict_names_the_winner(outcome):
    colocated, disaggregated = outcome.best_of("colocated"), outcome.best_of("disaggregated")
    assert colocated is not None and disaggregated is not None
    winner = "disaggregated" if disaggregated.candidate.cost_per_hour < \
        colocated.candidate.cost_per_hour else "colocated"
    assert verdict(outcome).startswith(f"{winner} wins at 40 req/s")


def test_planning_is_deterministic(tmp_path, outcome):
    again = plan_capacity(TINY, rate=RATE, hardware=CHIPS,
                          executor=SerialExecutor(), min_span_s=SPAN)
    write_outputs(outcome, tmp_path / "a", str(TINY))
    write_outputs(again, tmp_path / "b", str(TINY))
    for name in ("plans.csv", "best.yaml", "plan.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_budget_mode_maximises_goodput_per_dollar_within_budget():
    outcome = plan_capacity(TINY, rate=None, budget=12.0, hardware=["h100", "a100"],
                            executor=SerialExecutor(), min_span_s=SPAN)
    assert outcome.best is not None
    assert outcome.best.candidate.cost_per_hour <= 12.0
    searched = [ev for ev in outcome.evaluations if ev.goodput_per_dollar is not None]
    assert outcome.best.goodput_per_dollar == max(ev.goodput_per_dollar for ev in searched)
    assert outcome.best.max_rate > 0 and math.isfinite(outcome.best.max_rate)


# --- edges -------------------------------------------------------------------------------------


def test_closed_loop_workload_cannot_be_planned_for_a_rate(tmp_path):
    data = yaml.safe_load(TINY.read_text())
    data["workload"].pop("arrival")
    data["workload"]["concurrency"] = 8
    path = tmp_path / "closed.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InfersimError) as err:
        plan_capacity(path, rate=RATE, executor=SerialExecutor(), min_span_s=SPAN)
    assert str(err.value) == (f"{path}: workload.arrival: expected an open-loop arrival with a "
                              "rate (poisson or gamma) to plan for, got None")


def test_plan_without_any_slo_is_refused(tmp_path):
    data = yaml.safe_load(TINY.read_text())
    data.pop("slo")
    path = tmp_path / "no-slo.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(InfersimError, match=r"slo: expected at least one target"):
        plan_capacity(path, rate=RATE, executor=SerialExecutor(), min_span_s=SPAN)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rate": 0.0}, "--rate: expected a rate > 0 (requests/s), got 0.0"),
    ({"rate": None}, "--rate: expected a target rate (or a --budget), got None"),
])
def test_bad_targets_are_one_line(kwargs, message):
    with pytest.raises(InfersimError) as err:
        plan_capacity(TINY, executor=SerialExecutor(), min_span_s=SPAN, **kwargs)
    assert str(err.value) == message


def test_plan_command_writes_a_runnable_plan(tmp_path, capsys):
    out = tmp_path / "plan"
    try:
        main(["plan", str(TINY), "--rate", "30", "--hardware", "h100,a100", "--workers", "1",
              "--out", str(out), "--min-span", "5", "--max-requests", "1000"])
        code = 0
    except SystemExit as exit_info:
        code = exit_info.code or 0
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert {p.name for p in out.iterdir()} == {"best.yaml", "plans.csv", "plan.json", "pareto.png",
                                               "report.html"}
    assert "best plan per chip at 30 req/s" in captured.out
    assert not set(captured.out) & set("┃━│┏┓┗┛┡┩└┘─\x1b")     # piped: plain columns
    assert "wins at 30 req/s" in captured.err
    # 200 requests would be under 7 s at 30 req/s: the run says how long its runs were
    assert ("each simulation spans at least 5 s of arrivals (200 requests at 30 req/s, 200 or "
            "more, scaled with the rate up to 1000)") in " ".join(captured.err.split())
    summary = json.loads((out / "plan.json").read_text())
    table = pd.read_csv(out / "plans.csv")
    assert summary["best"] == table.loc[0, "plan"] and bool(table.loc[0, "slo_met"])
    assert load_scenario(out / "best.yaml").name.startswith("tiny-disaggregated-plan-")


def test_a_budget_below_every_sized_cluster_says_so(base):
    load, slo = load_shape(base), slo_of(base)
    candidates, pruned = size_candidates(base, load, slo, RATE, ["h100"], budget=1.0)
    assert candidates == []
    assert pruned[-1].why.startswith("cost more than the budget of 1 $/h (cheapest 5.98 $/h)")


def test_an_unknown_chip_names_the_option():
    with pytest.raises(InfersimError) as err:
        plan_capacity(TINY, rate=1.0, hardware=["h100", "h1000"],
                      executor=SerialExecutor(), min_span_s=SPAN)
    text = str(err.value)
    assert text.startswith("--hardware: expected a known chip (") and "h100" in text
    assert text.endswith(", got 'h1000'")


def test_best_yaml_describes_the_chosen_plan_not_the_base(tmp_path, outcome):
    # The base scenario's own words describe its placeholder pools; the planned scenario must
    # say what was chosen, at what rate and price, against which SLOs, and where it came from.
    data = yaml.safe_load(TINY.read_text())
    data["description"] = "one prefill GPU, two decode GPUs at 8 req/s"
    base_path = tmp_path / "described.yaml"
    base_path.write_text(yaml.safe_dump(data))
    planned = plan_capacity(base_path, rate=RATE, seeds=1, hardware=CHIPS,
                            executor=SerialExecutor(), min_span_s=SPAN)
    write_outputs(planned, tmp_path / "out", str(base_path))
    text = (tmp_path / "out" / "best.yaml").read_text()
    best = load_scenario(tmp_path / "out" / "best.yaml")
    assert "two decode GPUs" not in text and "8 req/s" not in text
    c = planned.best.candidate
    for pool in c.pools:
        assert f"{pool.instances}x {pool.hardware} tp{pool.tp}" in best.description
        assert f"{pool.instances}x{pool.hardware}" in best.name
    assert c.layout in best.description
    assert f"{RATE:g} req/s" in best.description
    assert f"{c.cost_per_hour:.2f} $/h" in best.description
    assert "p99 TTFT <= 500 ms" in best.description and "p99 ITL <= 40 ms" in best.description
    assert "90% of requests" in best.description
    assert f"planned by infersim plan from {base_path}" in best.description
    assert best.name.startswith(f"tiny-disaggregated-plan-{c.layout}-")
    # the comment header agrees with the description and carries no date
    header = " ".join(line[2:] for line in text.splitlines() if line.startswith("# "))
    assert " ".join(header.split()) == " ".join(best.description.split())
    assert re.search(r"\d{4}-\d{2}-\d{2}", text) is None
    # the in-memory plan (what notebooks use) says the same
    assert planned.best_scenario["description"] == best.description


def test_pareto_plot_speaks_in_words_and_marks_the_plan_and_the_slo(outcome):
    from matplotlib.lines import Line2D

    from infersim.plan.outputs import pareto_figure

    fig = pareto_figure(outcome)
    fig.canvas.draw()
    left, right = fig.axes[:2]
    assert left.get_ylabel().startswith("p99 time to first token (ms)")
    assert right.get_ylabel().startswith("requests per dollar within the SLOs")
    assert all(ax.get_xlabel() == r"cluster cost (\$/h)" for ax in (left, right))
    assert "_" not in left.get_ylabel() and "_" not in right.get_ylabel()
    for ax in (left, right):
        labels = [t.get_text() for t in ax.get_yticklabels() + ax.get_xticklabels()]
        assert labels and not any("times" in t or "^" in t or "$" in t for t in labels), labels
    # colocated and disaggregated plans are told apart by marker and by name
    legend = [t.get_text() for t in left.get_legend().get_texts()]
    assert any(t.startswith("colocated") for t in legend)
    assert any(t.startswith("disaggregated") for t in legend)
    markers = {c.get_label().split(",")[0]: c.get_paths()[0].vertices.shape
               for c in left.collections if c.get_label().startswith(("colocated", "disagg"))}
    assert markers["colocated"] != markers["disaggregated"]
    # the chosen plan is named on the plot, and the TTFT target is a line at its value
    texts = [t.get_text() for t in left.texts]
    assert "chosen" in texts
    assert any(outcome.best.candidate.label in t and "chosen" in t for t in legend), legend
    slo_lines = [ln for ln in left.lines if isinstance(ln, Line2D)
                 and list(ln.get_ydata()) == [outcome.slo.ttft_ms] * 2]
    assert slo_lines
    assert any("500 ms" in t for t in texts + legend)
    import matplotlib.pyplot as plt
    plt.close(fig)


def test_plan_from_a_scenario_object_or_a_dict_equals_the_plan_from_its_file(outcome, base):
    # Notebooks build their base scenario in code: no temporary YAML should be needed.
    as_dict = yaml.safe_load(TINY.read_text())
    for source in (base, as_dict):
        planned = plan_capacity(source, rate=RATE, hardware=CHIPS,
                                executor=SerialExecutor(), min_span_s=SPAN)
        assert plans_table(planned).equals(plans_table(outcome))
        assert planned.simulations == outcome.simulations
        mine, theirs = dict(planned.best_scenario), dict(outcome.best_scenario)
        assert mine.pop("description").split("; planned by")[0] == \
            theirs.pop("description").split("; planned by")[0]
        assert mine == theirs
        # and the plan it writes runs
        assert slo_verdict(simulate(planned.best_scenario).summary, slo_of(base), 200)[0]
    from_dict = plan_capacity(as_dict, rate=RATE, seeds=1, hardware=CHIPS,
                              executor=SerialExecutor(), min_span_s=SPAN)
    assert "planned by infersim plan from scenario 'tiny-disaggregated'" in \
        from_dict.best_scenario["description"]


def test_a_scenario_of_the_wrong_type_is_one_line():
    with pytest.raises(InfersimError) as err:
        plan_capacity(42, rate=RATE, executor=SerialExecutor(), min_span_s=SPAN)
    assert str(err.value) == ("scenario: expected a scenario file, a Scenario or a mapping of "
                              "scenario fields, got 42")


# --- the search space does not shrink as the load falls -----------------------------------------


@given(st.floats(min_value=2.0, max_value=120.0))
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_lower_rate_searches_every_cluster_a_higher_rate_would_at_its_prices(base, rate):
    # A cluster sized for 2R carries R too. Every one the 2R search would try at a price the R
    # search reaches must be tried by the R search as well — or the R plan can cost more than
    # the 2R plan, as it did (2x: all-MI300X at 11.94 $/h; 1x: 14.48 $/h).
    load, slo = load_shape(base), slo_of(base)
    low, _ = size_candidates(base, load, slo, rate, ["h100", "a100", "mi300x"])
    high, _ = size_candidates(base, load, slo, 2 * rate, ["h100", "a100", "mi300x"])
    # Each chip family is banded on its own prices: within a family, the R search reaches
    # every cluster the 2R search tries up to the dearest the R search tries.
    reach: dict[str, float] = {}
    for c in low:
        reach[c.family] = max(reach.get(c.family, 0.0), c.cost_per_hour)
    keys = {c.key for c in low}
    missed = [c.label for c in high if c.cost_per_hour <= reach.get(c.family, -1.0) + 1e-9
              and _same_clusters(c) not in {_same_clusters(x) for x in low}]
    assert not missed, missed
    assert keys


def _same_clusters(c):
    # The decode batch limit and chunk size depend on the SLOs, not the rate: pools match on
    # chip, parallelism and count.
    return (c.layout, tuple((p.role, p.hardware, p.tp, p.pp, p.instances) for p in c.pools))


BIG = {"name": "big", "seed": 1, "model": "llama-3.1-70b", "precision": "bf16",
       "pools": {"placeholder": {"role": "mixed", "hardware": "h100", "tp": 8}},
       "workload": {"arrival": {"process": "poisson", "rate": 5.0}, "requests": 200,
                    "mix": "chat"},
       "slo": {"ttft_ms": 1000, "itl_ms": 50, "percentile": 99}}


def test_the_cheapest_plan_never_gets_cheaper_as_the_load_rises():
    # Llama-3.1-70B chat on MI300X and B200: at 7 req/s the planner recommended two B200 pairs
    # (21.00 $/h) while at 8 req/s it found four MI300X pairs (15.92 $/h), which serve 7 too.
    costs = {}
    for rate in (7.0, 8.0, 14.0):
        planned = plan_capacity(BIG, rate=rate, seeds=1, hardware=["mi300x", "b200"],
                                executor=SerialExecutor(), min_span_s=SPAN)
        assert planned.best is not None, rate
        costs[rate] = planned.best.candidate.cost_per_hour
    assert costs[7.0] <= costs[8.0] + 1e-9 and costs[8.0] <= costs[14.0] + 1e-9, costs


# --- how long each planner simulation runs -----------------------------------------------------


@given(st.integers(1, 5000), st.floats(0.0, 600.0), st.integers(1, 20000),
       st.floats(0.01, 1000.0), st.floats(0.01, 1000.0))
def test_run_length_covers_the_span_up_to_the_cap(base_requests, span_s, cap, rate, other):
    from infersim.plan.target import RunLength

    rule = RunLength(requests=base_requests, min_span_s=span_s, max_requests=cap)
    n = rule.requests_at(rate)
    assert n >= base_requests                      # never fewer than asked for
    assert n <= max(cap, base_requests)            # the cap bounds the scaling
    if n < max(cap, base_requests):
        assert n / rate >= span_s * (1 - 1e-12)    # uncapped: the arrivals span the minimum
    if other > rate:
        assert rule.requests_at(other) >= n        # more load, never a shorter run


def test_max_rate_runs_span_the_stated_minimum_of_arrivals(tmp_path):
    planned = plan_capacity(TINY, rate=RATE, seeds=1, hardware=["b200"], executor=SerialExecutor(),
                            min_span_s=8.0, max_requests=5000)
    best = planned.best
    assert best.max_rate > RATE
    # at the maximum rate, the run had rate x 8 s of requests (200 at 25 req/s and below)
    expected = max(200, math.ceil(best.max_rate * 8.0))
    assert best.max_rate_summary["completed"] == expected > 200
    assert planned.run_length.requests_at(best.max_rate) == expected
    assert planned.best_scenario["workload"]["requests"] == max(200, math.ceil(RATE * 8.0))
    write_outputs(planned, tmp_path, str(TINY))
    run_length = json.loads((tmp_path / "plan.json").read_text())["run_length"]
    assert run_length == {"min_span_s": 8.0, "max_requests": 5000, "base_requests": 200,
                          "requests_at_rate": 320}
    capped = plan_capacity(TINY, rate=RATE, seeds=1, hardware=["b200"], executor=SerialExecutor(),
                           min_span_s=8.0, max_requests=250)
    assert capped.best.max_rate_summary["completed"] == 250
    assert any("capped at 250 requests" in note for note in capped.notes), capped.notes


def test_plans_at_one_point_of_the_pareto_plot_stay_readable():
    # Two H100s colocated and one H100 prefilling for one decoding cost the same and, at the
    # same maximum rate, buy the same requests per dollar: both marks and both labels must show.
    import matplotlib.pyplot as plt

    from infersim.plan.candidate import Candidate, Evaluation, PlanOutcome, PoolPlan
    from infersim.plan.outputs import pareto_figure
    from infersim.plan.target import LoadShape

    def plan(layout, roles):
        pools = tuple(PoolPlan(role, role, "h100", 1, 1, n, 64, 512) for role, n in roles)
        summary = {"p99_ttft_ms": 300.0, "completed": 10, "request_throughput": 1.0,
                   "request_goodput": 1.0}
        return Evaluation(Candidate(layout, pools, 5.98, 40.0, 0.5), summary=summary,
                          slo_met=True, max_rate=33.75, max_rate_summary=summary)

    colocated = plan("colocated", [("mixed", 2)])
    disaggregated = plan("disaggregated", [("prefill", 1), ("decode", 1)])
    outcome = PlanOutcome(rate=30.0, budget=None, slo=SLO(ttft_ms=1000, itl_ms=50),
                          load=LoadShape(1000, 256, 10), evaluations=(colocated, disaggregated),
                          best=colocated, pruned=(), simulations=2)
    fig = pareto_figure(outcome)
    fig.canvas.draw()
    right = fig.axes[1]
    labels = [t for t in right.texts if t.get_text().endswith("req/s")]
    assert len(labels) == 2
    boxes = [t.get_window_extent() for t in labels]
    assert not boxes[0].overlaps(boxes[1])
    # a filled mark drawn over another lets it show through
    marks = [c for c in right.collections if c.get_label() in ("colocated", "disaggregated")]
    assert all(c.get_alpha() is not None and c.get_alpha() < 1 for c in marks)
    plt.close(fig)


def test_a_scaleout_plan_gives_each_prefill_instance_its_own_nics(base):
    """Across chips (or beyond one scale-up domain) KV goes NIC to NIC: each prefill instance
    sends over its own chips' NICs (``per: instance``), capped at one receiver's, not one
    instance's NICs for the whole pool."""
    pools = (PoolPlan("prefill", "prefill", "h100", 2, 1, 3, 64, 8192),
             PoolPlan("decode", "decode", "a100", 1, 1, 4, 64, 8192))
    _, data = base_document(TINY)
    planned = candidate_data(data, base, Candidate("disaggregated", pools, 1.0, 1.0, 0.5), None)
    h100, a100 = load_hardware("h100"), load_hardware("a100")
    (link,) = planned["links"]
    assert link["per"] == "instance"
    assert link["bandwidth"] == min(2 * h100.scaleout_bandwidth, a100.scaleout_bandwidth)
    cluster_link = build_cluster(load_scenario(planned)).links[0]
    assert cluster_link.per_sender_instance


# --- issue #13: the search space, the tail, prices, units and the per-chip answer --------------


def _big_load():
    big = load_scenario(BIG)
    return big, load_shape(big), slo_of(big)


def test_no_layout_has_more_stages_than_layers_and_every_instance_holds_the_longest_request():
    # 70B on LPUs used to get pp 103 > 80 layers; H100 prefill instances held 8,827 tokens of KV
    # while the chat mix reaches 14,050.
    big, load, slo = _big_load()
    assert load.max_length >= 10_000 > load.mean_prompt + load.mean_output
    model = load_model("llama-3.1-70b")
    found, _ = size_candidates(big, load, slo, 20.0, ["lpu", "h100", "wse3"])
    assert {c.family for c in found} >= {"lpu", "h100"}
    for c in found:
        for p in c.pools:
            assert p.pp <= model.num_layers
            dep = Deployment(model=model, hardware=load_hardware(p.hardware), precision="bf16",
                             tp=p.tp, pp=p.pp)
            assert placement(dep, 0.9).kv_capacity_tokens >= load.max_length, c.label


def test_every_tp_that_fits_is_searched_and_gpus_get_pipelines_too():
    big, load, slo = _big_load()
    found, pruned = size_candidates(big, load, slo, 20.0, ["h100"], kv_transfer="same_chip")
    shapes = {(p.tp, p.pp) for c in found for p in c.pools}
    # tp 8 is searched (it used to stop at the two smallest fitting TPs); shapes not in any
    # candidate were pruned with a reason naming them
    tried = shapes | {(int(m.group(1)), int(m.group(2) or 1)) for p in pruned
                      if (m := re.search(r"tp(\d+)(?:pp(\d+))?", p.what))}
    assert {(2, 1), (4, 1), (8, 1), (4, 2), (8, 2)} <= tried
    assert all(p.family == "h100" and p.why for p in pruned)


def test_purchase_units_bill_whole_racks():
    big, load, slo = _big_load()
    found, _ = size_candidates(big, load, slo, 20.0, ["gb200-nvl72"])
    rack = 72 * load_hardware("gb200-nvl72").price_per_chip_hour
    assert found and all(abs(c.cost_per_hour / rack - round(c.cost_per_hour / rack)) < 1e-9
                         for c in found)
    assert all(c.units.endswith("NVL72 rack") for c in found if c.chips <= 72)


def test_kv_transfer_bounds_which_chips_prefill_for_which(base):
    load, slo = load_shape(base), slo_of(base)
    chips = ["h100", "mi300x"]
    same, pruned = size_candidates(base, load, slo, RATE, chips)          # default: same_vendor
    assert {c.family for c in same} == {"h100", "mi300x"}
    refused = [p for p in pruned if "kv_transfer" in p.why]
    assert {p.family for p in refused} == {"h100 -> mi300x", "mi300x -> h100"}
    anything, _ = size_candidates(base, load, slo, RATE, chips, kv_transfer="any")
    assert "h100 -> mi300x" in {c.family for c in anything}
    with pytest.raises(InfersimError, match="kv_transfer"):
        size_candidates(base, load, slo, RATE, chips, kv_transfer="nearby")


def test_price_overrides_reprice_every_candidate_and_the_run(base, tmp_path):
    from infersim.plan.sizing import prices_for

    load, slo = load_shape(base), slo_of(base)
    listed, _ = size_candidates(base, load, slo, RATE, ["h100"], kv_transfer="same_chip")
    cheap, _ = size_candidates(base, load, slo, RATE, ["h100"], kv_transfer="same_chip",
                               prices=prices_for(["h100"], {"h100": 1.0}))
    per_chip = {c.key: c.cost_per_hour / c.chips for c in cheap}
    assert set(per_chip.values()) == {1.0}
    assert {c.key for c in listed} == set(per_chip)
    with pytest.raises(InfersimError, match="prices"):
        prices_for(["h100"], {"b200": 1.0})


def test_precision_is_searched_when_asked(base):
    load, slo = load_shape(base), slo_of(base)
    found, _ = size_candidates(base, load, slo, RATE, ["h100"], precisions=["bf16", "fp8"])
    precisions = {p.precision for c in found for p in c.pools}
    assert precisions == {None, "fp8"}
    fp8 = next(c for c in found if any(p.precision == "fp8" for p in c.pools))
    data = candidate_data(base_document(TINY)[1], base, fp8, RATE)
    assert {p.get("precision") for p in data["pools"].values()} >= {"fp8"}
    assert load_scenario(data)  # the planned scenario is valid


def test_headroom_tightens_every_target():
    slo = SLO(ttft_ms=500, itl_ms=40, headroom=0.2)
    summary = {"completed": 10, "p99_ttft_ms": 450.0, "p99_itl_ms": 20.0,
               "request_throughput": 1.0, "request_goodput": 1.0}
    assert slo.limit("ttft") == pytest.approx(400.0)
    ok, reason = slo_verdict(summary, slo, 10)
    assert not ok and reason == "p99_ttft_ms 450.0 > 400"
    assert slo_verdict(summary, SLO(ttft_ms=500, itl_ms=40), 10) == (True, "")


def test_intervals_over_seeds_decide_the_verdict():
    from infersim.plan.confirm import interval, seeds_verdict

    mean, low, high = interval([500.0, 600.0, 700.0])
    assert mean == 600.0 and low < 500.0 and high > 700.0        # t(0.95, 2) = 2.92
    assert interval([5.0]) == (5.0, 5.0, 5.0)
    slo = SLO(ttft_ms=750)
    runs = [{"completed": 10, "p99_ttft_ms": v, "request_throughput": 1.0,
             "request_goodput": 1.0} for v in (500.0, 600.0, 700.0)]
    # every seed is under 750, but the interval's upper end (769) is not: not confirmed
    ok, reason, spans = seeds_verdict(runs, slo, 10)
    assert not ok and reason.startswith("p99_ttft_ms 600.0 [") and "over 3 seeds > 750" in reason
    assert seeds_verdict(runs, SLO(ttft_ms=2000), 10)[0]
    assert spans["p99_ttft_ms"][0] == 600.0


def test_every_chip_asked_for_gets_a_row_with_a_plan_or_a_reason(tmp_path):
    # Planned in fp8, which the A100 does not compute in: it has no plan, and says why.
    outcome = plan_capacity(TINY, rate=RATE, hardware=["b200", "a100"], seeds=2,
                            precisions=["fp8"], executor=SerialExecutor(), min_span_s=SPAN)
    rows = {f.family: f for f in outcome.families}
    assert list(rows)[:2] == ["b200", "a100"]
    assert rows["b200"].best is not None and len(rows["b200"].best.seeds) == 2
    assert rows["a100"].best is None
    assert rows["a100"].reason == "cannot run it: has no fp8 peak"
    assert rows["a100"].pruned > 0
    write_outputs(outcome, tmp_path, str(TINY))
    data = json.loads((tmp_path / "plan.json").read_text())
    families = {row["family"]: row for row in data["families"]}
    assert families["a100"]["plan"] is None and families["a100"]["reason"]
    assert families["b200"]["intervals"]["p99_ttft_ms"]["low"] <= \
        families["b200"]["intervals"]["p99_ttft_ms"]["high"]
    assert all(p["family"] and p["why"] for p in data["pruned"])


def test_a_scenarios_prices_block_is_what_its_run_bills(base):
    data = base_document(TINY)[1]
    priced = load_scenario({**data, "prices": {"h100": 1.25}, "workload": {**data["workload"],
                                                                           "requests": 40}})
    summary = simulate(priced).summary
    chips = sum(p.instances * p.tp * p.pp for p in priced.pools.values())
    assert summary["cost"]["dollars_per_hour"] == pytest.approx(1.25 * chips)
    assert priced.hash != load_scenario({**data, "workload": {**data["workload"],
                                                              "requests": 40}}).hash
    with pytest.raises(InfersimError, match="prices"):
        load_scenario({**data, "prices": {"h100": -1}})


@pytest.mark.parametrize(("args", "message"), [
    (["--price", "nochip=1"], "--price: expected a known chip"),
    (["--price", "h100"], "--price: expected chip=USD per chip-hour, such as h100=2.5, got 'h100'"),
    (["--price", "h100=-2"], "--price: expected chip=USD per chip-hour"),
    (["--kv-transfer", "near"], "--kv-transfer: expected same_chip or same_vendor or any"),
    (["--headroom", "1"], "--headroom: expected a share in [0, 1), got '1'"),
    (["--seeds", "0"], "--seeds: expected a positive number, got '0'"),
    (["--precision", ","], "--precision: expected names, comma-separated"),
])
def test_bad_plan_options_are_one_line_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as failed:
        main(["plan", str(TINY), "--rate", "40", *args])
    assert failed.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_under_a_budget_every_chip_gets_its_most_promising_plan_searched():
    outcome = plan_capacity(TINY, rate=None, budget=12.0, hardware=["h100", "a100"], seeds=1,
                            executor=SerialExecutor(), min_span_s=SPAN, bisection_steps=1)
    rows = {f.family: f for f in outcome.families}
    assert rows["h100"].best is not None and rows["a100"].best is not None
    assert all(f.best.candidate.cost_per_hour <= 12.0 for f in rows.values())
