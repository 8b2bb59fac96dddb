"""Rich tables of run summaries: one run (``infersim run``) or several side by side (``compare``).

Rows read the way a capacity planner asks: how many requests finished, how fast tokens came
(TTFT, TPOT, ITL, end-to-end at mean/median/p90/p99), how much the cluster did (throughput,
goodput) and what it cost ($/h, $ per million input and output tokens, $ per request, joules per
output token). Numbers come from the summary dict that ``summary.json`` holds, so a table can be
rebuilt from a saved run.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from rich.table import Table

# (label, summary key or dotted path into it, format)
ROWS: tuple[tuple[str, str, str], ...] = (
    ("completed / failed requests", "completed|failed", "{:,.0f} / {:,.0f}"),
    ("rejected requests", "infersim.rejected", "{:,.0f}"),
    ("in flight when the clock stopped", "infersim.in_flight_at_stop", "{:,.0f}"),
    ("duration (s)", "duration", "{:,.2f}"),
    ("request throughput (req/s)", "request_throughput", "{:,.2f}"),
    ("request goodput (req/s)", "request_goodput", "{:,.2f}"),
    ("output throughput (tok/s)", "output_throughput", "{:,.0f}"),
    ("total token throughput (tok/s)", "total_token_throughput", "{:,.0f}"),
    ("offered rate (req/s)", "steady_state.offered_request_rate", "{:,.2f}"),
    ("steady window (s)", "steady_state.window_s", "{:,.1f} – {:,.1f}"),
    ("steady throughput (req/s)", "steady_state.request_throughput", "{:,.2f}"),
    ("steady goodput (req/s)", "steady_state.request_goodput", "{:,.2f}"),
    ("steady TTFT median / p99 (ms)", "steady_state.median_ttft_ms|steady_state.p99_ttft_ms",
     "{:,.1f} / {:,.1f}"),
    ("steady E2EL median / p99 (ms)", "steady_state.median_e2el_ms|steady_state.p99_e2el_ms",
     "{:,.0f} / {:,.0f}"),
    *[(f"{metric} {stat} (ms)", f"{key}_{metric.lower()}_ms", "{:,.1f}")
      for metric in ("TTFT", "TPOT", "ITL", "E2EL")
      for stat, key in (("mean", "mean"), ("median", "median"), ("p90", "p90"), ("p99", "p99"))],
    ("cluster cost ($/h)", "cost.dollars_per_hour", "{:,.2f}"),
    ("$ per million input tokens", "cost.usd_per_million_input_tokens", "{:,.4f}"),
    ("$ per million output tokens", "cost.usd_per_million_output_tokens", "{:,.4f}"),
    ("$ per request", "cost.usd_per_request", "{:,.6f}"),
    ("energy per output token (J)", "cost.joules_per_output_token", "{:,.3f}"),
    ("average power (kW)", "cost.average_power_w", "{:,.1f}"),
)


def lookup(summary: Mapping[str, Any], path: str) -> Any:
    """``summary['a']['b']`` for ``'a.b'``; None where any step is missing."""
    node: Any = summary
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _fmt(summary: Mapping[str, Any], key: str, fmt: str) -> str:
    keys = key.split("|")
    values = [lookup(summary, k) for k in keys]
    if len(values) == 1 and isinstance(values[0], list):  # a [start, end] pair
        values = values[0]
    if any(v is None or (isinstance(v, float) and not math.isfinite(v)) for v in values):
        return "—"
    if key == "cost.average_power_w":
        values = [v / 1e3 for v in values]
    return fmt.format(*values)


def slo_rows(summaries: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str]]]:
    """One row per SLO target any of the runs states: its verdict and value in each run."""
    keys = list(dict.fromkeys(k for s in summaries for k in (s.get("slo_attainment") or {})))
    rows = []
    for key in keys:
        cells, label = [], ""
        for summary in summaries:
            verdict = (summary.get("slo_attainment") or {}).get(key)
            if not isinstance(verdict, Mapping):
                cells.append("—")
                continue
            p = float(verdict.get("percentile", 99))
            label = (f"SLO p{int(p) if p.is_integer() else p} {key.removesuffix('_ms').upper()}"
                     f" <= {verdict.get('target'):g} ms")
            value = verdict.get("value")
            shown = f"{value:,.1f}" if isinstance(value, (int, float)) and math.isfinite(value) \
                else "—"
            cells.append(f"{'met' if verdict.get('met') else 'MISSED'} ({shown})")
        rows.append((label or key, cells))
    return rows


def plain(table: Table) -> Table:
    """The table for a pipe or a file: no box drawing, no colour (rich adds no ANSI codes when
    the output is not a terminal), columns separated by spaces."""
    table.box = None
    table.show_edge = False
    table.pad_edge = False
    table.header_style = ""
    return table


def summary_table(summary: Mapping[str, Any], *, title: str | None = None) -> Table:
    """One run's headline numbers, then a per-pool and per-class block where there are any."""
    table = Table(title=title or f"infersim: {summary.get('scenario_name', 'run')}",
                  title_justify="left", show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for label, key, fmt in ROWS:
        table.add_row(label, _fmt(summary, key, fmt))
    for label, cells in slo_rows([summary]):
        table.add_row(label, *cells)
    pools = lookup(summary, "cost.pools") or {}
    for name, pool in pools.items():
        util = pool.get("utilization")
        util_text = f"{100 * util:.0f} % of time with work" if isinstance(util, (int, float)) else "—"
        chips = pool.get("chips")
        noun = "chip" if chips == 1 else "chips"
        table.add_row(f"pool {name} ({pool.get('role')}, {chips} {noun})", util_text)
    classes = summary.get("classes") or {}
    if len(classes) > 1:
        for name, cls in classes.items():
            for label, key, fmt in (("p99 TTFT (ms)", "p99_ttft_ms", "{:,.1f}"),
                                    ("p99 E2EL (ms)", "p99_e2el_ms", "{:,.0f}"),
                                    ("goodput (req/s)", "request_goodput", "{:,.2f}"),
                                    ("$ per task", "usd_per_task", "${:,.6f}"),
                                    ("J per task", "joules_per_task", "{:,.0f}")):
                table.add_row(f"class {name}: {label}", _fmt(cls, key, fmt))
    return table


def compare_table(summaries: Sequence[Mapping[str, Any]], names: Sequence[str]) -> Table:
    """Several runs side by side, one column per run."""
    table = Table(title="infersim compare", title_justify="left", header_style="bold")
    table.add_column("metric")
    for name in names:
        table.add_column(name, justify="right")
    for label, key, fmt in ROWS:
        table.add_row(label, *[_fmt(s, key, fmt) for s in summaries])
    for label, cells in slo_rows(summaries):
        table.add_row(label, *cells)
    return table


def compare_rows(summaries: Sequence[Mapping[str, Any]], names: Sequence[str]) -> dict:
    """The compare table as JSON data: {run name: {summary key: value}}."""
    keys = [k for _, key, _ in ROWS for k in key.split("|")]
    return {name: {k: lookup(s, k) for k in keys} for name, s in zip(names, summaries, strict=True)}
