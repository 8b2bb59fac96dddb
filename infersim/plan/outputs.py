"""What a planner run leaves behind: the best plan as a runnable scenario, the ranked table of
every candidate, and a Pareto plot of cost against latency and goodput per dollar.

* ``best.yaml`` — the base scenario with the winning pools, links and the planned rate, named and
  described as the plan it is (pools, chips, rate, $/h, the SLOs simulation confirmed, the base
  it was planned from); ``infersim run best.yaml`` reproduces the confirming simulation.
* ``plans.csv`` — one row per candidate the cost model admitted, ranked: confirmed plans first
  (cheapest first, or most goodput per $ under a budget), then those that missed an SLO in
  simulation (with the reason), then those never simulated (costlier than needed).
* ``pareto.png`` — left, $/h against the tail TTFT at the planned rate, colocated and
  disaggregated marked apart, the cost–latency Pareto front drawn; right, $/h against requests
  served within SLO per dollar at each plan's maximum sustainable rate.
* ``plan.json`` — the search itself: load shape, SLO, pruned shapes and why, the winner.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from infersim.plan.candidate import LAYOUTS, Evaluation, FamilyVerdict, PlanOutcome


def _metric(summary, key: str) -> float:
    if not summary:
        return math.nan
    value = summary.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return math.nan


def _cost_metric(summary, key: str) -> float:
    if not summary:
        return math.nan
    return _metric(summary.get("cost") or {}, key)


def plans_table(outcome: PlanOutcome) -> pd.DataFrame:
    """The ranked candidates as one flat row each."""
    ttft_key = outcome.slo.summary_key("ttft")
    itl_key = outcome.slo.summary_key("itl")
    rows = []
    for rank, ev in enumerate(outcome.evaluations, start=1):
        c = ev.candidate
        pools = {p.role: p for p in c.pools}
        row: dict[str, Any] = {
            "rank": rank,
            "family": c.family,
            "layout": c.layout,
            "plan": c.label,
            "chips": c.chips,
            "cost_per_hour": round(c.cost_per_hour, 6),
            "units": c.units,
            "sized_for_utilisation": c.utilisation_target,
            "model_capacity_rps": round(c.capacity_rps, 6),
            "simulated": ev.slo_met is not None,
            "slo_met": ev.slo_met,
            "reason": ev.reason,
            ttft_key: _metric(ev.summary, ttft_key),
            itl_key: _metric(ev.summary, itl_key),
            "seeds": len(ev.seeds),
            f"{ttft_key}_mean": ev.intervals.get(ttft_key, (math.nan,) * 3)[0],
            f"{ttft_key}_low": ev.intervals.get(ttft_key, (math.nan,) * 3)[1],
            f"{ttft_key}_high": ev.intervals.get(ttft_key, (math.nan,) * 3)[2],
            f"{itl_key}_mean": ev.intervals.get(itl_key, (math.nan,) * 3)[0],
            f"{itl_key}_low": ev.intervals.get(itl_key, (math.nan,) * 3)[1],
            f"{itl_key}_high": ev.intervals.get(itl_key, (math.nan,) * 3)[2],
            "output_throughput": _metric(ev.summary, "output_throughput"),
            "request_goodput": _metric(ev.summary, "request_goodput"),
            "usd_per_million_output_tokens": _cost_metric(ev.summary,
                                                          "usd_per_million_output_tokens"),
            "max_rate": ev.max_rate if ev.max_rate is not None else math.nan,
            "requests_per_dollar": ev.goodput_per_dollar if ev.goodput_per_dollar is not None
            else math.nan,
        }
        for role in ("prefill", "decode", "mixed"):
            pool = pools.get(role)
            row[f"{role}_hardware"] = pool.hardware if pool else ""
            row[f"{role}_tp"] = pool.tp if pool else 0
            row[f"{role}_pp"] = pool.pp if pool else 0
            row[f"{role}_precision"] = (pool.precision or "") if pool else ""
            row[f"{role}_instances"] = pool.instances if pool else 0
            row[f"{role}_max_batch_size"] = pool.max_batch_size if pool else 0
            row[f"{role}_max_batch_tokens"] = pool.max_batch_tokens if pool else 0
        rows.append(row)
    return pd.DataFrame(rows)


def interval_text(ev: Evaluation, key: str) -> str:
    """``640 [590, 700]``: a metric's mean over the seeds and its confidence interval (one
    seed: the value alone)."""
    if key not in ev.intervals:
        value = _metric(ev.summary, key)
        return "-" if math.isnan(value) else f"{value:.4g}"
    mean, low, high = ev.intervals[key]
    if len(ev.seeds) < 2:
        return f"{mean:.4g}"
    return f"{mean:.4g} [{low:.4g}, {high:.4g}]"


def family_row(outcome: PlanOutcome, family: FamilyVerdict) -> dict[str, Any]:
    """One chip family's answer as plain data: its best plan with intervals, or why none."""
    ev = family.best
    row: dict[str, Any] = {"family": family.family, "plan": None, "reason": family.reason,
                           "candidates": family.candidates, "simulated": family.simulated,
                           "pruned": family.pruned}
    if ev is not None:
        c = ev.candidate
        row.update({"plan": c.label, "layout": c.layout, "chips": c.chips, "units": c.units,
                    "cost_per_hour": c.cost_per_hour, "max_rate": ev.max_rate,
                    "seeds": list(ev.seeds),
                    "intervals": {k: {"mean": v[0], "low": v[1], "high": v[2]}
                                  for k, v in ev.intervals.items()}})
    return row


def verdict(outcome: PlanOutcome) -> str:
    """One sentence: which layout won at this load, and by how much."""
    colocated, disaggregated = (outcome.best_of(layout) for layout in LAYOUTS)
    if colocated is None and disaggregated is None:
        return "no plan met the SLOs"
    if colocated is None or disaggregated is None:
        winner = colocated or disaggregated
        return (f"only {winner.candidate.layout} plans were confirmed "
                f"(cheapest {winner.candidate.cost_per_hour:.2f} $/h)")
    if outcome.rate is None:
        a, b = colocated.goodput_per_dollar or 0.0, disaggregated.goodput_per_dollar or 0.0
        won = "disaggregated" if b > a else "colocated"
        return (f"{won} wins under the budget: {max(a, b):.0f} vs {min(a, b):.0f} requests "
                "per $ within SLO")
    a, b = colocated.candidate.cost_per_hour, disaggregated.candidate.cost_per_hour
    if abs(a - b) < 1e-9:
        return f"colocated and disaggregated tie at {a:.2f} $/h at {outcome.rate:g} req/s"
    won, lost = ("disaggregated", "colocated") if b < a else ("colocated", "disaggregated")
    cheap, dear = min(a, b), max(a, b)
    return (f"{won} wins at {outcome.rate:g} req/s: {cheap:.2f} $/h vs {dear:.2f} $/h for the "
            f"cheapest {lost} plan that meets the SLOs ({(1 - cheap / dear):.0%} cheaper)")


def write_outputs(outcome: PlanOutcome, out_dir: Path, base_source: str) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    table = plans_table(outcome)
    csv = out_dir / "plans.csv"
    table.to_csv(csv, index=False)
    paths.append(csv)
    if outcome.best is not None and outcome.best_scenario is not None:
        best = out_dir / "best.yaml"
        # The description, as a comment too: what a reader of the file sees first.
        description = str(outcome.best_scenario.get("description", ""))
        header = "".join(f"# {line}\n" for line in textwrap.wrap(
            description, 98, break_long_words=False, break_on_hyphens=False))
        best.write_text(header + yaml.safe_dump(outcome.best_scenario, sort_keys=False,
                                                allow_unicode=True, width=100))
        paths.append(best)
    summary = {
        "rate": outcome.rate, "budget": outcome.budget,
        "slo": {**{f"{m}_ms": v for m, v in outcome.slo.targets().items()},
                "percentile": outcome.slo.percentile, "attainment": outcome.slo.attainment},
        "load": {"mean_prompt_tokens": outcome.load.mean_prompt,
                 "mean_output_tokens": outcome.load.mean_output,
                 "requests_per_simulation": outcome.load.requests},
        # Each run draws enough requests to span min_span_s of arrivals at its rate.
        "run_length": None if outcome.run_length is None else {
            "min_span_s": outcome.run_length.min_span_s,
            "max_requests": outcome.run_length.max_requests,
            "base_requests": outcome.run_length.requests,
            "requests_at_rate": outcome.run_length.requests_at(outcome.rate)
            if outcome.rate is not None else None},
        "candidates": len(outcome.evaluations), "simulations": outcome.simulations,
        "best": outcome.best.candidate.label if outcome.best else None,
        "best_cost_per_hour": outcome.best.candidate.cost_per_hour if outcome.best else None,
        "best_max_rate": outcome.best.max_rate if outcome.best else None,
        "verdict": verdict(outcome),
        "seeds": outcome.seeds, "headroom": outcome.headroom,
        "families": [family_row(outcome, f) for f in outcome.families],
        "pruned": [{"family": p.family, "shape": p.what, "why": p.why} for p in outcome.pruned],
        "notes": list(outcome.notes),
    }
    plan_json = out_dir / "plan.json"
    plan_json.write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n")
    paths.append(plan_json)
    if any(ev.slo_met is not None for ev in outcome.evaluations):
        paths.append(pareto_plot(outcome, out_dir / "pareto.png"))
    return paths


def _pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not beaten on both cost and latency, in order of cost."""
    front: list[tuple[float, float]] = []
    for cost, latency in sorted(points):
        if not front or latency < front[-1][1]:
            front.append((cost, latency))
    return front


METRIC_WORDS = {"ttft": "time to first token", "itl": "inter-token latency",
                "tpot": "time per output token", "e2el": "end-to-end latency"}


def _human(key: str) -> str:
    """``p99_ttft_ms`` -> ``p99 time to first token (ms)``."""
    percentile, metric = key.removesuffix("_ms").split("_", 1)
    return f"{percentile} {METRIC_WORDS.get(metric, metric)} (ms)"


def _plain_ticks(axis, values) -> None:
    """Log scale only where the values span more than a decade; tick labels are plain numbers
    (200, 500, 1000), never 2×10² — a reader compares them with SLOs written that way."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    finite = [v for v in values if math.isfinite(v) and v > 0]
    formatter = FuncFormatter(lambda value, _: f"{value:,.10g}")
    if finite and max(finite) / min(finite) > 10:
        axis.axes.set_yscale("log") if axis.axis_name == "y" else axis.axes.set_xscale("log")
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_minor_formatter(NullFormatter())
    axis.set_major_formatter(formatter)


# One colour per chip family, in the order families first appear among the simulated plans.
PALETTE = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown",
           "tab:pink", "tab:olive", "tab:cyan", "tab:grey")


def pareto_figure(outcome: PlanOutcome):
    """The planner's two panels: $/h against tail TTFT (the cost–latency trade), and $/h against
    requests per dollar at each plan's maximum sustainable rate. Colours are chip families;
    colocated plans are circles, disaggregated ones squares; hollow marks missed an SLO; the
    chosen plan is a named star."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ttft_key = outcome.slo.summary_key("ttft")
    simulated = [ev for ev in outcome.evaluations if ev.slo_met is not None]
    markers = {"colocated": "o", "disaggregated": "s"}
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 6.4))
    best = outcome.best

    def latency_of(ev: Evaluation) -> float:
        summary = ev.summary if outcome.rate is not None else ev.max_rate_summary
        return _metric(summary, ttft_key)

    def mark_best(ax, x: float, y: float) -> None:
        # The star is tagged where it stands; its full description goes in the legend, below
        # the panel, where it cannot cover another plan's mark.
        ax.scatter([x], [y], marker="*", s=320, color="gold", edgecolors="black", zorder=5,
                   label=f"chosen plan: {best.candidate.label}, "
                         f"{best.candidate.cost_per_hour:.2f} $/h".replace("$", r"\$"))
        ax.annotate("chosen", (x, y), xytext=(9, -4), textcoords="offset points", fontsize=8,
                    fontweight="bold", ha="left", va="top", zorder=6)

    families = list(dict.fromkeys(ev.candidate.family for ev in simulated))
    colour_of = {family: PALETTE[i % len(PALETTE)] for i, family in enumerate(families)}
    missed_labelled = False
    for family in families:
        for layout in LAYOUTS:
            for met in (True, False):
                group = [ev for ev in simulated if ev.candidate.layout == layout
                         and ev.candidate.family == family and ev.slo_met is met]
                if not group:
                    continue
                if met:
                    label = f"{layout}, {family}"
                elif not missed_labelled:
                    label, missed_labelled = "hollow: misses an SLO", True
                else:
                    label = None
                left.scatter([ev.candidate.cost_per_hour for ev in group],
                             [latency_of(ev) for ev in group], marker=markers[layout],
                             facecolors=colour_of[family] if met else "none",
                             edgecolors=colour_of[family], s=52, alpha=0.8, label=label)
    front = _pareto_front([(ev.candidate.cost_per_hour, latency_of(ev)) for ev in simulated
                           if ev.slo_met and math.isfinite(latency_of(ev))])
    if len(front) > 1:
        left.step([c for c, _ in front], [lat for _, lat in front], where="post", color="grey",
                  linewidth=1, label="Pareto front (cost, TTFT)")
    latencies = [latency_of(ev) for ev in simulated]
    if outcome.slo.ttft_ms is not None:
        target = outcome.slo.ttft_ms
        left.axhline(target, color="red", linestyle="--", linewidth=1.2,
                     label=f"SLO: {_human(ttft_key).replace(' (ms)', '')} <= {target:g} ms")
        left.text(1.0, target, f"SLO {target:g} ms ", transform=left.get_yaxis_transform(),
                  color="red", fontsize=8, ha="right", va="bottom")
        latencies.append(target)
    where = f"at {outcome.rate:g} req/s" if outcome.rate is not None else "at its maximum rate"
    left.set_xlabel("cluster cost ($/h)".replace("$", r"\$"))
    left.set_ylabel(f"{_human(ttft_key)}, {where}")
    _plain_ticks(left.yaxis, latencies)
    _plain_ticks(left.xaxis, [])
    if best is not None and math.isfinite(latency_of(best)):
        mark_best(left, best.candidate.cost_per_hour, latency_of(best))
    left.set_title("Cost against tail latency")
    left.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1,
                frameon=False)
    left.grid(True, which="major", alpha=0.3)

    searched = [ev for ev in simulated if ev.goodput_per_dollar is not None]
    # Plans of one price and one maximum rate land on one point (two H100s colocated, or one
    # prefilling for one decoding): their labels name the layout and stack, not overprint.
    def spot(ev: Evaluation) -> tuple[float, float]:
        return round(ev.candidate.cost_per_hour, 6), round(ev.goodput_per_dollar, 6)

    sharing = Counter(spot(ev) for ev in searched)
    costs = [ev.candidate.cost_per_hour for ev in searched] or [0.0]
    lo_cost, hi_cost = min(costs), max(costs)
    stacked: Counter = Counter()
    for layout in LAYOUTS:
        group = [ev for ev in searched if ev.candidate.layout == layout]
        if group:
            right.scatter([ev.candidate.cost_per_hour for ev in group],
                          [ev.goodput_per_dollar for ev in group], marker=markers[layout],
                          color=[colour_of[ev.candidate.family] for ev in group], s=52,
                          alpha=0.7, label=f"{layout} (coloured by chip)")
            for ev in group:
                text = f"{ev.max_rate:.3g} req/s"
                if sharing[spot(ev)] > 1:
                    text = f"{layout}: {text}"
                # Labels of the dearest plans sit to the left of their marks, inside the panel.
                leftward = ev.candidate.cost_per_hour > (lo_cost + hi_cost) / 2
                right.annotate(text, (ev.candidate.cost_per_hour, ev.goodput_per_dollar),
                               fontsize=7, ha="right" if leftward else "left",
                               xytext=(-6 if leftward else 5, 4 + 10 * stacked[spot(ev)]),
                               textcoords="offset points")
                stacked[spot(ev)] += 1
    right.set_xlabel("cluster cost ($/h)".replace("$", r"\$"))
    right.set_ylabel("requests per dollar within the SLOs\n(at each plan's maximum rate)")
    _plain_ticks(right.yaxis, [])
    _plain_ticks(right.xaxis, [])
    if best is not None and best.goodput_per_dollar is not None:
        mark_best(right, best.candidate.cost_per_hour, best.goodput_per_dollar)
    right.set_title("Goodput per dollar at each plan's maximum sustainable rate", fontsize=11)
    if searched:
        right.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1,
                     frameon=False)
    right.grid(True, alpha=0.3)
    fig.suptitle(verdict(outcome).replace("$", r"\$"), fontsize=9)  # "$" is mathtext to matplotlib
    fig.tight_layout(rect=(0, 0, 1, 0.95))  # room for the verdict above the panels
    return fig


def pareto_plot(outcome: PlanOutcome, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig = pareto_figure(outcome)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
