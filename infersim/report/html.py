"""One self-contained HTML page for a run folder or a plan folder (``infersim report DIR``).

A *run* folder (``summary.json`` from ``infersim run``) gives the scenario, the headline figures
in vLLM bench's words, the SLO verdicts, rejections and overload, cost, and the run's PNG plots.
A *plan* folder (``plan.json`` from ``infersim plan``) gives the verdict, the best plan per chip
family (or why a chip has none) with its confidence intervals, the ranked candidates, the Pareto
plot coloured by chip, and what was pruned and why. Plots are embedded as ``data:`` URIs and the
style is inline: the file opens anywhere, offline, with no script.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from infersim.errors import InfersimError

REPORT_NAME = "report.html"
RUN_PLOTS = ("latency_cdf.png", "timeline.png", "utilization.png", "breakdown.png")
PLAN_ROWS = 25          # candidates shown in the plan report's ranked table

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1d1d1f; background: #ffffff; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #ddd; padding-bottom: 0.2rem; }
p.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ddd; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f4f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.met { color: #0a7d2c; font-weight: 600; }
.missed { color: #b42318; font-weight: 600; }
.note { background: #fff7e6; border-left: 4px solid #f0a500; padding: 0.4rem 0.8rem; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5rem 0; }
"""


def write_report(folder: str | Path) -> Path:
    """Write ``report.html`` into a run or plan folder; the path written."""
    folder = Path(folder)
    if (folder / "plan.json").is_file():
        body = _plan_page(folder)
    elif (folder / "summary.json").is_file():
        body = _run_page(folder)
    else:
        raise InfersimError(file=str(folder), field="folder",
                            expected="a run folder (summary.json, from infersim run) or a plan "
                                     "folder (plan.json, from infersim plan)",
                            given="neither file" if folder.is_dir() else "no such folder")
    path = folder / REPORT_NAME
    path.write_text(body, encoding="utf-8")
    return path


# ---- building blocks ----------------------------------------------------------------------------

def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, digits: int = 4) -> str:
    if value is None or isinstance(value, bool):
        return "-" if value is None else str(value)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return "-"
        return f"{value:,.{digits}g}" if isinstance(value, float) else f"{value:,}"
    return _e(value)


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Iterable[int] = ()
           ) -> str:
    right = set(numeric)
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            text = cell if isinstance(cell, _Html) else _num(cell)
            cells.append(f'<td class="num">{text}</td>' if i in right else f"<td>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


class _Html(str):
    """Markup already escaped."""


def _verdict(met: bool | None, text: str = "") -> _Html:
    if met is None:
        return _Html("not simulated")
    word = "met" if met else "missed"
    return _Html(f'<span class="{word}">{word}</span>' + (f" {_e(text)}" if text else ""))


def _image(path: Path, alt: str) -> str:
    if not path.is_file():
        return ""
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{data}">'


def _page(title: str, lead: str, sections: Sequence[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><link rel=\"icon\" href=\"data:,\">"
            f"<style>{STYLE}</style></head><body>"
            f"<h1>{_e(title)}</h1><p class=\"lead\">{_e(lead)}</p>"
            + "".join(sections) + "</body></html>\n")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise InfersimError(file=str(path), field="(file)", expected="JSON written by infersim",
                            given=type(err).__name__) from None
    if not isinstance(data, dict):
        raise InfersimError(file=str(path), field="(file)", expected="a JSON object",
                            given=type(data).__name__)
    return data


# ---- a run ----------------------------------------------------------------------------------------

def _run_page(folder: Path) -> str:
    s = _read_json(folder / "summary.json")
    scenario = s.get("scenario") if isinstance(s.get("scenario"), Mapping) else {}
    name = scenario.get("name") or s.get("scenario_name") or folder.name
    sections = []
    headline = [
        ("completed / failed", f"{_num(s.get('completed'))} / {_num(s.get('failed'))}"),
        ("duration (s)", _num(s.get("duration"))),
        ("request throughput (req/s)", _num(s.get("request_throughput"))),
        ("request goodput (req/s)", _num(s.get("request_goodput"))),
        ("output throughput (tok/s)", _num(s.get("output_throughput"))),
    ]
    sections.append("<h2>Summary</h2>" + _table(("figure", "value"),
                                                ((k, _Html(v)) for k, v in headline), (1,)))
    latency = [(m.upper(), *(s.get(f"{stat}_{m}_ms") for stat in ("mean", "median", "p90", "p99")))
               for m in ("ttft", "tpot", "itl", "e2el")]
    sections.append("<h2>Latency (ms)</h2>" + _table(("metric", "mean", "median", "p90", "p99"),
                                                     latency, (1, 2, 3, 4)))
    verdicts = s.get("slo_attainment") or {}
    if verdicts:
        rows = [(key, f"p{_num(v.get('percentile'))}", v.get("value"), v.get("target"),
                 _verdict(bool(v.get("met"))))
                for key, v in verdicts.items() if isinstance(v, Mapping)]
        sections.append("<h2>SLO verdicts</h2>" + _table(
            ("target", "percentile", "value (ms)", "target (ms)", "verdict"), rows, (2, 3)))
    info = s.get("infersim") if isinstance(s.get("infersim"), Mapping) else {}
    warnings = []
    if info.get("rejected"):
        warnings.append(f"{info['rejected']} requests were rejected (their KV fits no instance "
                        "or a queue was full)")
    if info.get("in_flight_at_stop"):
        warnings.append(f"{info['in_flight_at_stop']} requests were still in flight when the "
                        "clock stopped: the cluster was overloaded")
    if info.get("beyond_context_requests"):
        warnings.append(f"{info['beyond_context_requests']} requests are longer than the "
                        "model's context window")
    # A pool "busy" 100 % of the time is not saturated (a memory-bound decode pool steps at a
    # batch of 9 of 256 all the time): overload is read from the steady window's queue instead.
    steady = s.get("steady_state") if isinstance(s.get("steady_state"), Mapping) else {}
    if steady.get("overloaded"):
        warnings.append("overloaded in the steady window: requests were rejected or the queue "
                        "grew while later arrivals waited longer; the offered rate is above "
                        "what this cluster serves")
    if steady.get("too_short"):
        warnings.append("the run is too short to reach a steady state: lengthen it before "
                        "trusting the percentiles")
    sections.append("<h2>Rejections and overload</h2>" + (
        "".join(f'<p class="note">{_e(w)}</p>' for w in warnings) if warnings
        else "<p>No request was rejected, none was left in flight, and the steady window shows "
             "no growing queue.</p>"))
    cost = s.get("cost") if isinstance(s.get("cost"), Mapping) else {}
    if cost:
        keys = ("chips", "dollars_per_hour", "cost_usd", "usd_per_million_output_tokens",
                "usd_per_request", "joules_per_output_token")
        sections.append("<h2>Cost</h2>" + _table(("figure", "value"),
                                                 ((k, cost.get(k)) for k in keys if k in cost),
                                                 (1,)))
    plots = "".join(_image(folder / name_, name_) for name_ in RUN_PLOTS)
    if plots:
        sections.append("<h2>Plots</h2>" + plots)
    if scenario:
        sections.append("<h2>Scenario</h2><pre>" + _e(json.dumps(scenario, indent=2)) + "</pre>")
    lead = str(scenario.get("description") or "") or f"model {s.get('model_id', '?')}"
    return _page(f"infersim run: {name}", lead, sections)


# ---- a plan ---------------------------------------------------------------------------------------

def _interval(row: Mapping[str, Any], key: str) -> str:
    spans = row.get("intervals") or {}
    if key not in spans:
        return "-"
    span = spans[key]
    if len(row.get("seeds") or ()) < 2:
        return _num(span.get("mean"))
    return f"{_num(span.get('mean'))} [{_num(span.get('low'))}, {_num(span.get('high'))}]"


def _plan_page(folder: Path) -> str:
    plan = _read_json(folder / "plan.json")
    slo = plan.get("slo") or {}
    percentile = slo.get("percentile", 99)
    p = f"p{int(percentile) if float(percentile).is_integer() else percentile}"
    ttft, itl = f"{p}_ttft_ms", f"{p}_itl_ms"
    sections = [f'<p class="note">{_e(plan.get("verdict", ""))}</p>']
    seeds = plan.get("seeds") or 1
    rows = []
    for family in plan.get("families") or []:
        if family.get("plan") is None:
            rows.append((family.get("family"), _Html(f'<span class="missed">none</span>: '
                                                     f'{_e(family.get("reason", ""))}'),
                         None, "-", "-", None, family.get("pruned")))
        else:
            units = f" ({family['units']})" if family.get("units") else ""
            rows.append((family.get("family"), f"{family['plan']}{units}",
                         family.get("cost_per_hour"), _Html(_e(_interval(family, ttft))),
                         _Html(_e(_interval(family, itl))), family.get("max_rate"),
                         family.get("pruned")))
    interval = f" ({seeds} seeds, 90% interval)" if seeds > 1 else ""
    sections.append("<h2>Best plan per chip</h2>" + _table(
        ("chip", "plan or why none", "$/h", ttft + interval, itl, "max req/s", "pruned"), rows,
        (2, 3, 4, 5, 6)))
    sections.append(_image(folder / "pareto.png", "Pareto front, coloured by chip"))
    ranked = _read_csv(folder / "plans.csv")
    if ranked:
        shown = []
        for r in ranked[:PLAN_ROWS]:
            met = {"True": True, "False": False}.get(r.get("slo_met", ""))
            shown.append((r.get("rank"), r.get("family"), r.get("plan"),
                           _float(r.get("cost_per_hour")), _verdict(met, r.get("reason", "")),
                           _float(r.get(ttft)), _float(r.get(itl)), _float(r.get("max_rate"))))
        more = f"<p>{len(ranked) - PLAN_ROWS} more in plans.csv.</p>" \
            if len(ranked) > PLAN_ROWS else ""
        sections.append("<h2>Candidates, ranked</h2>" + _table(
            ("#", "chip", "plan", "$/h", "SLOs", ttft, itl, "max req/s"), shown,
            (0, 3, 5, 6, 7)) + more)
    pruned = plan.get("pruned") or []
    if pruned:
        counts = Counter((p.get("family", ""), p.get("why", "").split(":")[0]) for p in pruned)
        sections.append("<h2>Pruned before simulation, and why</h2>" + _table(
            ("chip", "reason", "count"), ((f, why, n) for (f, why), n in counts.items()), (2,))
            + f"<p>{len(pruned)} in all; each with its shape in plan.json.</p>")
    notes = plan.get("notes") or []
    if notes:
        sections.append("<h2>Notes</h2>" + "".join(f'<p class="note">{_e(n)}</p>' for n in notes))
    targets = ", ".join(f"{k.removesuffix('_ms').upper()} <= {_num(v)} ms"
                        for k, v in slo.items() if k.endswith("_ms"))
    load = (f"{_num(plan.get('rate'))} req/s" if plan.get("rate") is not None
            else f"a budget of {_num(plan.get('budget'))} $/h")
    lead = (f"{load}; {p} {targets}; {plan.get('simulations', 0)} simulations; headroom "
            f"{_num(plan.get('headroom', 0))}")
    return _page(f"infersim plan: {folder.name}", lead, sections)


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text not in (None, "") else None
    except ValueError:
        return None
    return value
