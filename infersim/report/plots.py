"""The pictures of a run, as PNG files a capacity planner can read at a glance.

* ``latency_cdf.png``: the cumulative distributions of time to first token (per request) and of
  inter-token latency (every gap of every request), with the SLO bound as a vertical line and the
  SLO percentile as a horizontal one. Where the curve crosses the percentile line left of the
  bound, the SLO is met.
* ``timeline.png``: queue length, running batch size and KV-cache use of each pool over time,
  averaged over the pool's instances at each sample.
* ``utilization.png``: the share of time each pool's instances spent running steps, with the
  pool's chip count; an idle pool is money spent for nothing.
* ``breakdown.png``: where a request's time goes, on average, per workload class: waiting in a
  queue, prefill, KV transfer, decode.

Plots use the non-interactive Agg backend and draw nothing that depends on the wall clock, so
the same results give the same images.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window (CLI, CI, notebooks' subprocesses)

import matplotlib.pyplot as plt  # the backend is chosen before pyplot loads
import numpy as np
import pandas as pd

# The phases of a request's life, in order, as (column of the request table, label, colour).
PHASES: tuple[tuple[str, str, str], ...] = (
    ("queue_s", "queue", "#9e9e9e"),
    ("prefill_s", "prefill", "#1f77b4"),
    ("transfer_s", "KV transfer", "#ff7f0e"),
    ("decode_s", "decode", "#2ca02c"),
)

# The per-pool series of the timeline, as (column of the timeseries table, axis label).
TIMELINE_SERIES: tuple[tuple[str, str], ...] = (
    ("queue_len", "queued requests\n(per instance)"),
    ("batch_size", "running batch\n(sequences per instance)"),
    ("kv_used_fraction", "KV cache in use\n(fraction of capacity)"),
)

DPI = 110


def _cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(values[np.isfinite(values)])
    y = np.arange(1, len(x) + 1) / max(len(x), 1) * 100.0
    return x, y


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return path


def plot_latency_cdfs(ttft_s: np.ndarray, itl_s: np.ndarray, path: Path, *, title: str,
                      ttft_slo_ms: float | None = None, itl_slo_ms: float | None = None,
                      percentile: float = 99.0) -> Path:
    """TTFT and ITL cumulative distributions (ms, log scale) with the SLO lines."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    panels = (("Time to first token (TTFT)", np.asarray(ttft_s, float) * 1e3, ttft_slo_ms,
               "#1f77b4", "requests"),
              ("Inter-token latency (ITL)", np.asarray(itl_s, float) * 1e3, itl_slo_ms,
               "#2ca02c", "token gaps"))
    for ax, (name, values_ms, slo_ms, colour, what) in zip(axes, panels, strict=True):
        x, y = _cdf(values_ms)
        if len(x):
            ax.step(x, y, where="post", color=colour, lw=1.8, label=f"simulated ({len(x):,} {what})")
            p = float(np.percentile(x, percentile))
            ax.plot([p], [percentile], "o", color=colour, ms=5,
                    label=f"p{percentile:g} = {p:,.1f} ms")
            if x[0] > 0:
                ax.set_xscale("log")
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
        ax.legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_timeline(timeseries: pd.DataFrame, path: Path, *, title: str,
                  time_col: str = "time_s", pool_col: str = "pool") -> Path:
    """Queue length, batch size and KV-cache use per pool over simulated time."""
    series = [(c, label) for c, label in TIMELINE_SERIES if c in timeseries.columns]
    rows = max(len(series), 1)
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.4 * rows + 0.6), sharex=True,
                             constrained_layout=True, squeeze=False)
    pools = list(dict.fromkeys(timeseries[pool_col])) if len(timeseries) else []
    for ax, (column, label) in zip(axes[:, 0], series, strict=False):
        for pool in pools:
            rows_of_pool = timeseries[timeseries[pool_col] == pool]
            ax.step(rows_of_pool[time_col], rows_of_pool[column], where="post", lw=1.2,
                    label=str(pool))
        ax.set_ylabel(label, fontsize=9)
        ax.grid(True, alpha=0.25)
        if column == "kv_used_fraction":
            ax.set_ylim(0, 1.05)
    if pools:
        axes[0, 0].legend(title="pool", loc="upper right", fontsize=8, ncols=min(len(pools), 4))
    else:
        axes[0, 0].text(0.5, 0.5, "no samples", transform=axes[0, 0].transAxes, ha="center")
    axes[-1, 0].set_xlabel("simulated time (s)")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def plot_utilization(pools: Sequence[Mapping[str, object]], path: Path, *, title: str) -> Path:
    """Busy share of each pool's instance-time, one bar per pool, labelled with chips and role."""
    fig, ax = plt.subplots(figsize=(max(5.0, 1.3 * len(pools) + 3), 3.8), constrained_layout=True)
    names = [str(p["name"]) for p in pools]
    util = [100.0 * float(p["utilization"]) for p in pools]
    colours = {"prefill": "#1f77b4", "decode": "#2ca02c", "mixed": "#9467bd"}
    bars = ax.bar(names, util, color=[colours.get(str(p["role"]), "#7f7f7f") for p in pools])
    for bar, pool, u in zip(bars, pools, util, strict=True):
        ax.annotate(f"{u:.0f} %\n{pool['chips']} chips, {pool['role']}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_ylim(0, 118)
    ax.set_ylabel("busy time (% of instance-time)")
    ax.set_xlabel("pool")
    ax.grid(True, axis="y", alpha=0.25)
    ax.set_title(title, fontsize=11)
    return _save(fig, path)


def plot_breakdown(requests: pd.DataFrame, path: Path, *, title: str,
                   class_col: str = "class_name") -> Path:
    """Mean seconds per phase (queue, prefill, KV transfer, decode), one bar per workload class."""
    phases = [(c, label, colour) for c, label, colour in PHASES if c in requests.columns]
    groups: list[tuple[str, pd.DataFrame]] = [("all requests", requests)]
    if class_col in requests.columns and requests[class_col].nunique() > 1:
        groups += [(str(name), frame) for name, frame in requests.groupby(class_col, sort=True)]
    fig, ax = plt.subplots(figsize=(11, 1.0 + 0.7 * len(groups)), constrained_layout=True)
    labels = [f"{name} (n={len(frame):,})" for name, frame in groups]
    left = np.zeros(len(groups))
    for column, label, colour in phases:
        means = np.array([float(np.nanmean(frame[column])) if len(frame) else 0.0
                          for _, frame in groups])
        means = np.nan_to_num(means)
        ax.barh(labels, means, left=left, color=colour, label=label, height=0.6)
        left += means
    for y, total in enumerate(left):
        ax.annotate(f"{total:.3g} s", (total, y), xytext=(3, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, max(float(left.max()) * 1.15, 1e-9) if len(left) else 1)
    ax.set_xlabel("mean time per request (s)")
    ax.grid(True, axis="x", alpha=0.25)
    ax.legend(loc="lower right", ncols=len(phases), fontsize=8)
    ax.set_title(title, fontsize=11)
    return _save(fig, path)
