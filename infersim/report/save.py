"""Writing a whole :class:`~infersim.result.Result` to a run folder (what ``infersim run`` does).

Files: ``summary.json``; ``requests.parquet`` (one row per request); ``token_gaps.parquet``
(every inter-token gap of every completed request, exact, as distinct values with their counts:
``gap_s``, ``count``; ITL percentiles over it equal those over the raw gaps); ``decode_epochs``
and ``decode_runs.parquet`` (the engine's compressed token clock, from which every token instant
of every request is rebuilt exactly; see :mod:`infersim.sim.records`); ``timeseries.parquet``
(per-instance samples), ``links.parquet``, ``instances.parquet``; and the PNG plots of
:mod:`infersim.report.plots`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from infersim.errors import InfersimError
from infersim.report.outputs import write_frames, write_summary

if TYPE_CHECKING:
    from infersim.result import Result


def _epochs_frame(epochs: dict) -> pd.DataFrame:
    frames = [pd.DataFrame({"instance": instance, **arrays})
              for instance, arrays in sorted(epochs.items())]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_plots(result: Result, out_dir: Path) -> list[Path]:
    """The four PNG plots of a run."""
    from infersim.report import plots

    sc = result.scenario
    slo = sc.slo
    requests = result.requests
    done = requests[requests["completed"]]
    gaps = result.token_gaps
    where = f"{sc.name}: {sc.model}, seed {sc.seed}"
    duration = float(result.summary["duration"] or 0.0)
    occupancy = plots.pool_occupancy(result.timeseries, duration)
    util = [{"name": name, **{k: v for k, v in pool.items() if k != "name"},
             "max_batch_size": sc.pools[name].max_batch_size, **occupancy.get(name, {})}
            for name, pool in result.summary["cost"]["pools"].items()]
    timeline = plots.pool_timeline(result.timeseries, duration)
    return [
        plots.plot_latency_cdfs(done["ttft_s"].to_numpy(), gaps["gap_s"].to_numpy(),
                                out_dir / "latency_cdf.png", itl_counts=gaps["count"].to_numpy(),
                                title=f"Latency distributions: {where}",
                                ttft_slo_ms=slo.ttft_ms, itl_slo_ms=slo.itl_ms,
                                percentile=slo.percentile),
        plots.plot_timeline(timeline, out_dir / "timeline.png",
                            title=f"Queue, batch and KV cache per pool: {where}"),
        plots.plot_utilization(util, out_dir / "utilization.png",
                               title=f"Pool utilisation: {sc.name}"),
        plots.plot_breakdown(requests, out_dir / "breakdown.png",
                             title=f"Where a request's time goes: {where}"),
    ]


def save_result(result: Result, out_dir: Path, *, plots: bool = True) -> list[Path]:
    """Write every output of ``result`` into ``out_dir`` (created if needed)."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InfersimError(field="--out", expected="a folder that can be created",
                            given=f"{out_dir} ({err.strerror})") from None
    written = [write_summary(result.summary, out_dir / "summary.json")]
    written += write_frames(out_dir, {
        "requests": result.requests,
        "token_gaps": result.token_gaps,
        "decode_epochs": _epochs_frame(result.sim.epochs),
        "decode_runs": pd.DataFrame(result.sim.runs),
        "timeseries": result.timeseries,
        "links": result.links,
        "instances": result.sim.instances,
    })
    if plots:
        written += write_plots(result, out_dir)
    return written
