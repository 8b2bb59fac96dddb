"""The pictures of a run, as PNG files a capacity planner can read at a glance.

* ``latency_cdf.png``: the cumulative distributions of time to first token (per request) and of
  inter-token latency (every gap of every request), with the SLO bound as a vertical line and the
  SLO percentile as a horizontal one. Where the curve crosses the percentile line left of the
  bound, the SLO is met.
* ``timeline.png``: queue length, running batch size and KV-cache use of each pool over time,
  averaged over the pool's instances at each sample.
* ``utilization.png``: per pool, three bars. *Time with work in progress*: the share of
  instance-time spent running steps (a pool that decodes one sequence all the time reads 100 %);
  it says a pool is never idle, not that it is full. *Mean running batch*: the time-weighted mean
  number of sequences in a step, as a share of the pool's ``max_batch_size``. *Mean KV cache in
  use*: the time-weighted share of KV capacity held. A decode pool at 100 % busy with a batch of 9
  out of 256 and its KV 10 % full has room for far more load; one at 100 % with a full batch or a
  full cache is saturated.
* ``breakdown.png``: where a request's time goes, on average, per workload class: waiting in a
  queue, prefill, KV transfer, decode.

Plots are bare matplotlib Figures rendered by Agg (no pyplot state, no backend switch, so a
notebook's own plots are untouched) and draw nothing that depends on the wall clock: the same
results give the same images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from infersim.sim.result import weighted_percentile as sorted_weighted_percentile

# The phases of a request's life, in order: (column of request_phases(), label, colour).
PHASES: tuple[tuple[str, str, str], ...] = (
    ("wait_s", "queue / wait", "#9e9e9e"),
    ("prefill_s", "prefill", "#1f77b4"),
    ("transfer_s", "KV transfer", "#ff7f0e"),
    ("decode_s", "decode", "#2ca02c"),
)

# The per-pool series of the timeline: (column of pool_timeline(), axis label).
TIMELINE_SERIES: tuple[tuple[str, str], ...] = (
    ("queue_length", "queued requests\n(mean per instance)"),
    ("batch_size", "running batch\n(mean sequences\nper instance)"),
    ("kv_used_fraction", "KV cache in use\n(fraction of capacity)"),
)

DPI = 110


CDF_POINTS = 2000  # a curve of at most this many points: a million requests draw as fast as ten


def cdf_curve(values: np.ndarray, counts: np.ndarray | None = None,
              max_points: int = CDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """(sorted values, cumulative share in %) of a multiset given as values with counts.

    Large multisets are read at ``max_points`` evenly spaced cumulative shares (the last point is
    always the maximum), which is exact at each drawn point.
    """
    values = np.asarray(values, dtype=float)
    counts = np.ones(len(values), dtype=np.int64) if counts is None else np.asarray(counts)
    keep = np.isfinite(values) & (counts > 0)
    if not keep.all():
        values, counts = values[keep], counts[keep]
    del keep
    if _ascending(values):  # the engine's gap multiset comes sorted: no copy, no sort
        x, cum = values, np.cumsum(counts)
    else:
        order = np.argsort(values, kind="stable")
        x, cum = values[order], np.cumsum(counts[order])
    total = int(cum[-1]) if len(cum) else 0
    if len(x) > max_points:
        pick = np.searchsorted(cum, np.linspace(1, total, max_points), side="left")
        x, cum = x[pick], cum[pick]
    return x, cum / max(total, 1) * 100.0


def _ascending(values: np.ndarray) -> bool:
    return bool((values[1:] >= values[:-1]).all())


def weighted_percentile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """``numpy.percentile(np.repeat(values, counts), q)`` (linear) for unsorted ``values``: the
    same computation as the summary's ITL percentiles (:mod:`infersim.metrics`)."""
    values, counts = np.asarray(values, float), np.asarray(counts)
    if _ascending(values):
        return sorted_weighted_percentile(values, counts, q)
    order = np.argsort(values, kind="stable")
    return sorted_weighted_percentile(values[order], counts[order], q)


def plain_log_ticks(axis) -> None:
    """Label a log axis 1, 2, 5, 10, 20, ... instead of powers of ten (for notebooks too)."""
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _figure(width: float, height: float) -> Figure:
    # A bare Figure, not pyplot: no global figure registry and no backend switch, so drawing a
    # report never disturbs a notebook's inline plots; savefig renders with Agg.
    return Figure(figsize=(width, height), layout="constrained")


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    return path


def plot_latency_cdfs(ttft_s: np.ndarray, itl_s: np.ndarray, path: Path, *, title: str,
                      itl_counts: np.ndarray | None = None, ttft_slo_ms: float | None = None,
                      itl_slo_ms: float | None = None, percentile: float = 99.0) -> Path:
    """TTFT and ITL cumulative distributions (ms, log scale) with the SLO lines.

    ITL may be given compressed, as distinct gap values with ``itl_counts`` (the engine's form).
    """
    fig = _figure(11, 4.2)
    axes = fig.subplots(1, 2)
    ttft_ms = np.asarray(ttft_s, float) * 1e3
    itl_ms = np.asarray(itl_s, float) * 1e3
    panels = (("Time to first token (TTFT)", ttft_ms, np.ones(len(ttft_ms), np.int64),
               ttft_slo_ms, "#1f77b4", "requests"),
              ("Inter-token latency (ITL)", itl_ms,
               np.ones(len(itl_ms), np.int64) if itl_counts is None else np.asarray(itl_counts),
               itl_slo_ms, "#2ca02c", "token gaps"))
    for ax, (name, values_ms, counts, slo_ms, colour, what) in zip(axes, panels, strict=True):
        x, y = cdf_curve(values_ms, counts)
        if len(x):
            finite = np.isfinite(values_ms)
            if not finite.all():
                values_ms, counts = values_ms[finite], counts[finite]
            n = int(counts.sum())
            ax.step(x, y, where="post", color=colour, lw=1.8, label=f"simulated ({n:,} {what})")
            p = weighted_percentile(values_ms, counts, percentile)
            ax.plot([p], [percentile], "o", color=colour, ms=5,
                    label=f"p{percentile:g} = {p:,.1f} ms")
            if x[0] > 0:
                ax.set_xscale("log")
                plain = FuncFormatter(lambda v, _: f"{v:g}")
                ax.xaxis.set_major_formatter(plain)
                ax.xaxis.set_minor_formatter(FuncFormatter(
                    lambda v, _: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))
        else:
            ax.text(0.5, 0.5, f"no {what}", transform=ax.transAxes, ha="center", va="center")
        if slo_ms is not None:
            ax.axvline(slo_ms, color="#d62728", ls="--", lw=1.4, label=f"SLO {slo_ms:g} ms")
        ax.axhline(percentile, color="#7f7f7f", ls=":", lw=1.0)
        ax.set_title(name)
        ax.set_xlabel(f"{name.split(' (')[0].lower()} (ms, log scale)")
        ax.set_ylabel(f"share of {what} (%)")
        ax.set_ylim(0, 101)
        ax.grid(True, which="both", alpha=0.25)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


_PHASE_COLUMNS = ("arrival_at", "prefill_start_at", "first_token_at", "decode_start_at",
                  "last_token_at", "kv_transfer_start_at", "kv_transfer_end_at")


def request_phases(requests: pd.DataFrame) -> pd.DataFrame:
    """Seconds each request spent per phase; the four add up to its end-to-end latency.

    ``wait_s`` gathers every wait: in the prefill queue, and between the end of its prefill and
    the start of decode other than the KV transfer itself (waiting for a link or for KV room on a
    decode instance). Prefill ends at ``prefill_end_at`` where the engine recorded it (a
    disaggregated request, whose first token may reach the client only at decode admission), else
    at the first token (mixed pools). Requests of mixed pools have no transfer.
    """
    def col(name: str) -> np.ndarray:
        return requests[name].to_numpy(dtype=float)

    arrival, prefill_start = col("arrival_at"), col("prefill_start_at")
    first, decode_start, last = col("first_token_at"), col("decode_start_at"), col("last_token_at")
    prefill_end = col("prefill_end_at") if "prefill_end_at" in requests else first
    prefill_end = np.where(np.isnan(prefill_end), first, prefill_end)
    transfer = np.nan_to_num(col("kv_transfer_end_at") - col("kv_transfer_start_at"), nan=0.0)
    # A request whose one token came out of prefill never decodes: it ends at its first token.
    decode_start = np.where(np.isnan(decode_start), first, decode_start)
    last = np.where(np.isnan(last), first, last)
    return pd.DataFrame({
        "wait_s": (prefill_start - arrival) + (decode_start - prefill_end - transfer),
        "prefill_s": prefill_end - prefill_start,
        "transfer_s": transfer,
        "decode_s": last - decode_start,
    }, index=requests.index)


def pool_timeline(timeseries: pd.DataFrame, end_s: float, points: int = 400) -> pd.DataFrame:
    """Per-pool means over instances on a regular time grid.

    The engine samples each instance on its own events; between two samples an instance's state
    holds, so each instance is read as a step function at every grid instant and the pool's value
    is the mean over its instances.
    """
    grid = np.linspace(0.0, max(end_s, 1e-9), points)
    rows = []
    for pool, of_pool in timeseries.groupby("pool", observed=True, sort=False):
        per_instance = []
        for _, inst in of_pool.groupby("instance", observed=True, sort=False):
            times = inst["time_at"].to_numpy()
            at = np.searchsorted(times, grid, side="right") - 1
            valid = at >= 0
            at = np.clip(at, 0, None)
            capacity = np.maximum(inst["kv_blocks_capacity"].to_numpy()[at], 1)
            values = np.vstack([inst["queue_length"].to_numpy()[at],
                                inst["batch_size"].to_numpy()[at],
                                inst["kv_blocks_used"].to_numpy()[at] / capacity])
            per_instance.append(np.where(valid, values, 0.0))
        mean = np.mean(per_instance, axis=0)
        rows.append(pd.DataFrame({"pool": str(pool), "time_s": grid, "queue_length": mean[0],
                                  "batch_size": mean[1], "kv_used_fraction": mean[2]}))
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(
        columns=["pool", "time_s", *[c for c, _ in TIMELINE_SERIES]])


def plot_timeline(timeline: pd.DataFrame, path: Path, *, title: str) -> Path:
    """Queue length, batch size and KV-cache use per pool over simulated time."""
    rows = len(TIMELINE_SERIES)
    fig = _figure(11, 2.3 * rows + 0.8)
    axes = fig.subplots(rows, 1, sharex=True, squeeze=False)
    pools = list(dict.fromkeys(timeline["pool"]))
    for ax, (column, label) in zip(axes[:, 0], TIMELINE_SERIES, strict=True):
        for pool in pools:
            of_pool = timeline[timeline["pool"] == pool]
            ax.plot(of_pool["time_s"], of_pool[column], lw=1.2, label=str(pool))
        ax.set_ylabel(label, fontsize=9)
        ax.grid(True, alpha=0.25)
        if column == "kv_used_fraction":
            ax.set_ylim(0, 1.05)
        else:  # counts: an all-zero series still gets a readable 0..1 axis
            top = float(timeline[column].max()) if len(timeline) else 0.0
            ax.set_ylim(0, max(1.0, top * 1.08))
    if pools:
        axes[0, 0].legend(title="pool", loc="upper right", fontsize=8, ncols=min(len(pools), 4))
    else:
        axes[0, 0].text(0.5, 0.5, "no samples", transform=axes[0, 0].transAxes, ha="center")
    axes[-1, 0].set_xlabel("simulated time (s)")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def pool_occupancy(timeseries: pd.DataFrame, end_s: float) -> dict[str, dict[str, float]]:
    """Per pool, the time-weighted means over ``[0, end_s]`` of the running batch (sequences per
    instance) and of the KV-cache share in use, averaged over the pool's instances.

    The engine samples an instance at its own events and its state holds between samples, so
    each sample is weighted by the time until the next one (the last until ``end_s``); before an
    instance's first sample it held nothing. Exact, unlike a reading on a grid.
    """
    out: dict[str, dict[str, float]] = {}
    if end_s <= 0 or timeseries.empty:
        return out
    for pool, of_pool in timeseries.groupby("pool", observed=True, sort=False):
        batch, kv = [], []
        for _, inst in of_pool.groupby("instance", observed=True, sort=False):
            times = np.clip(inst["time_at"].to_numpy(dtype=float), 0.0, end_s)
            weights = np.diff(np.append(times, end_s))
            capacity = np.maximum(inst["kv_blocks_capacity"].to_numpy(dtype=float), 1.0)
            batch.append(float(np.dot(weights, inst["batch_size"].to_numpy(dtype=float))) / end_s)
            kv.append(float(np.dot(weights, inst["kv_blocks_used"].to_numpy(dtype=float)
                                   / capacity)) / end_s)
        out[str(pool)] = {"mean_batch": float(np.mean(batch)),
                          "kv_used_fraction": float(np.mean(kv))}
    return out


# The bars of the utilisation plot: (key of a pool's record, legend label, colour).
UTILIZATION_BARS: tuple[tuple[str, str, str], ...] = (
    ("utilization", "time with work in progress (% of instance-time)", "#4c72b0"),
    ("batch_fraction", "mean running batch (% of max_batch_size)", "#dd8452"),
    ("kv_used_fraction", "mean KV cache in use (% of capacity)", "#55a868"),
)


def plot_utilization(pools: Sequence[Mapping[str, object]], path: Path, *, title: str) -> Path:
    """Per pool: time with work in progress, mean running batch against ``max_batch_size`` and
    mean KV-cache use (bars whose keys a pool record lacks are left out), labelled with chips,
    role and price.

    A pool record has ``name``, ``role``, ``chips``, ``utilization`` (busy share) and optionally
    ``dollars_per_hour``, ``mean_batch`` with ``max_batch_size`` (drawn as their ratio) and
    ``kv_used_fraction`` (see :func:`pool_occupancy`).
    """
    fig = _figure(max(8.5, 2.4 * len(pools) + 3), 4.6)
    ax = fig.subplots()
    records = []
    for pool in pools:
        record = dict(pool)
        if pool.get("mean_batch") is not None and pool.get("max_batch_size"):
            record["batch_fraction"] = float(pool["mean_batch"]) / float(pool["max_batch_size"])
        records.append(record)
    drawn = [bar for bar in UTILIZATION_BARS if any(r.get(bar[0]) is not None for r in records)]
    width = 0.8 / max(len(drawn), 1)
    x = np.arange(len(records), dtype=float)
    for i, (key, label, colour) in enumerate(drawn):
        offset = (i - (len(drawn) - 1) / 2) * width
        for j, record in enumerate(records):
            value = record.get(key)
            if value is None:
                continue
            pct = 100.0 * float(value)
            ax.bar(x[j] + offset, pct, width=width * 0.95, color=colour,
                   label=label if j == next(k for k, r in enumerate(records)
                                            if r.get(key) is not None) else None)
            text = f"{pct:.0f} %" if pct >= 9.5 or pct == 0 else f"{pct:.1f} %"
            if key == "batch_fraction":
                text += f"\n{float(record['mean_batch']):.3g} of {int(record['max_batch_size'])}"
            ax.annotate(text, (x[j] + offset, pct), ha="center", va="bottom", fontsize=7,
                        xytext=(0, 2), textcoords="offset points")
    labels = []
    for record in records:
        chips = int(record["chips"])
        price = record.get("dollars_per_hour")
        priced = f", ${float(price):,.0f}/h" if price is not None else ""
        labels.append(f"{record['name']}\n{chips} chip{'s' if chips != 1 else ''}, "
                      f"{record['role']}{priced}")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylim(0, 115)
    ax.set_ylabel("% (see legend)")
    ax.grid(True, axis="y", alpha=0.25)
    if drawn:  # below the axes, where no bar or value label can hide under it
        fig.legend(loc="outside lower center", ncols=len(drawn), fontsize=7, frameon=False)
    ax.set_title(title, fontsize=11)
    return _save(fig, path)


def plot_breakdown(requests: pd.DataFrame, path: Path, *, title: str,
                   class_col: str = "class_name") -> Path:
    """Mean seconds per phase (wait, prefill, KV transfer, decode) of completed requests, one
    bar for all and one per workload class."""
    needed = [c for c in (*_PHASE_COLUMNS, class_col) if c in requests.columns]
    done = (requests.loc[requests["completed"].to_numpy(), needed] if "completed" in requests
            else requests[needed])  # only the columns drawn: a million rows stay cheap
    phases = request_phases(done)
    groups: list[tuple[str, pd.DataFrame]] = [("all requests", phases)]
    if class_col in done.columns and done[class_col].nunique() > 1:
        for name in sorted(done[class_col].dropna().unique().tolist(), key=str):
            groups.append((str(name), phases[(done[class_col] == name).to_numpy()]))
    fig = _figure(11, 1.4 + 0.7 * len(groups))
    ax = fig.subplots()
    labels = [f"{name} (n={len(frame):,})" for name, frame in groups]
    left = np.zeros(len(groups))
    for column, label, colour in PHASES:
        means = np.array([float(frame[column].mean()) if len(frame) else 0.0
                          for _, frame in groups])
        means = np.nan_to_num(means)
        overall_ms = means[0] * 1e3
        ax.barh(labels, means, left=left, color=colour, height=0.6,
                label=f"{label} (mean {overall_ms:,.1f} ms)")
        left += means
    for y, total in enumerate(left):
        ax.annotate(f"{total:.3g} s", (total, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(float(left.max()) * 1.15, 1e-9))
    ax.set_xlabel("mean time per completed request (s)")
    ax.grid(True, axis="x", alpha=0.25)
    fig.legend(loc="outside lower center", ncols=len(PHASES), fontsize=8, frameon=False)
    ax.set_title(title, fontsize=11)
    return _save(fig, path)
