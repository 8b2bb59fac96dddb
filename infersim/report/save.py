"""Writing a whole :class:`~infersim.result.Result` to a run folder (what ``infersim run`` does).

Files: ``summary.json``; ``requests.parquet`` (one row per request); ``token_gaps.parquet``
(every inter-token gap of every completed request, exact, as distinct values with their counts:
``gap_s``, ``count``; ITL percentiles over it equal those over the raw gaps); ``decode_epochs``
and ``decode_runs.parquet`` (the engine's compressed token clock, from which every token instant
of every request is rebuilt exactly; see :mod:`infersim.sim.records`); ``timeseries.parquet``
(per-instance samples), ``links.parquet``, ``instances.parquet``; and the PNG plots of
:mod:`infersim.report.plots`.

Writing is atomic and touches nothing the user already has: every file goes into a fresh private
folder created beside the output folder, which is renamed into place only once all of it is
written. A full disk, an unwritable folder or a crash mid-way leaves no half-written run and no
partial file behind; a symlink planted in (or as) the output folder is never followed; and an
output folder that already holds files is refused unless ``force`` (``infersim run --force``),
in which case it is replaced as a whole, never written into.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from infersim.errors import InfersimError
from infersim.report.html import write_report
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
    ttft_s = requests["ttft_s"].to_numpy()[requests["completed"].to_numpy()]
    gaps = result.token_gaps
    where = f"{sc.name}: {sc.model}, seed {sc.seed}"
    duration = float(result.summary["duration"] or 0.0)
    occupancy = plots.pool_occupancy(result.timeseries, duration)
    util = [{"name": name, **{k: v for k, v in pool.items() if k != "name"},
             "max_batch_size": sc.pools[name].max_batch_size, **occupancy.get(name, {})}
            for name, pool in result.summary["cost"]["pools"].items()]
    timeline = plots.pool_timeline(result.timeseries, duration)
    return [
        plots.plot_latency_cdfs(ttft_s, gaps["gap_s"].to_numpy(),
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


def default_out_dir(runs: Path, name: str, *, force: bool = False) -> Path:
    """Where a run goes when the user named no ``--out``: ``runs/<name>``, or the first of
    ``runs/<name>-2``, ``-3``, ... that is free (absent or empty) when ``runs/<name>`` already
    holds files, so an earlier run is never refused nor replaced; ``force`` keeps ``runs/<name>``
    (to be replaced)."""
    first = runs / name
    if force:
        return first
    def taken(folder: Path) -> bool:
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            return True
        try:
            return folder.is_dir() and any(folder.iterdir())
        except OSError:
            return True  # unreadable: not ours to write into

    candidate, number = first, 1
    while taken(candidate):
        number += 1
        if number > 10_000:
            raise InfersimError(field="--out", expected="a free runs/<scenario>-N folder below "
                                "10,000 (name one with --out)", given=str(first))
        candidate = runs / f"{name}-{number}"
    return candidate


def check_out_dir(out_dir: Path, *, force: bool = False) -> None:
    """Refuse an output folder that cannot take a run, before anything is simulated: a symlink,
    a file, or a folder that already holds files (unless ``force``)."""
    if out_dir.is_symlink():
        raise InfersimError(field="--out", expected="a folder, not a symbolic link (links are "
                            "never followed)", given=str(out_dir))
    if out_dir.exists() and not out_dir.is_dir():
        raise InfersimError(field="--out", expected="a folder (this is a file)",
                            given=str(out_dir))
    if out_dir.is_dir() and not force:
        try:
            occupied = any(out_dir.iterdir())
        except OSError as err:
            raise InfersimError(field="--out", expected="a readable folder",
                                given=f"{out_dir} ({err.strerror})") from None
        if occupied:
            raise InfersimError(field="--out", expected="a new or empty folder (--force "
                                "replaces one that holds files)", given=str(out_dir))
    _probe(out_dir.parent, out_dir)


def check_writable_folder(folder: Path) -> None:
    """Refuse, before any work, an output folder that cannot be written: a symlink in its place,
    a file, or a path where no folder can be made. Sweeps and plans call it for their --out."""
    if folder.is_symlink():
        raise InfersimError(field="--out", expected="a folder, not a symbolic link (links are "
                            "never followed)", given=str(folder))
    if folder.exists() and not folder.is_dir():
        raise InfersimError(field="--out", expected="a folder (this is a file)", given=str(folder))
    _probe(folder, folder)


def _probe(folder: Path, shown: Path) -> None:
    """Make and remove a folder in ``folder`` (or its nearest existing ancestor): now, not
    after an hour of simulation (root passes permission checks yet cannot write in /proc)."""
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    try:
        if not ancestor.is_dir():
            raise NotADirectoryError(20, "Not a directory")
        Path(tempfile.mkdtemp(prefix=".infersim-probe.", dir=ancestor)).rmdir()
    except OSError as err:
        raise InfersimError(field="--out", expected="a folder that can be created",
                            given=f"{shown} ({err.strerror or err})") from None


def result_frames(result: Result) -> dict[str, Callable[[], pd.DataFrame]]:
    """Each parquet table of a run (file stem -> how to build it), in the order written."""
    return {
        "requests": lambda: result.requests,
        "token_gaps": lambda: result.token_gaps,
        "decode_epochs": lambda: _epochs_frame(result.sim.epochs),
        "decode_runs": lambda: pd.DataFrame(result.sim.runs),
        "timeseries": lambda: result.timeseries,
        "links": lambda: result.links,
        "instances": lambda: result.sim.instances,
    }


def _write_tables(result: Result, folder: Path) -> list[Path]:
    written: list[Path] = []
    for name, frame in result_frames(result).items():
        written += write_frames(folder, {name: frame()})  # one table in memory at a time
    return written


def _write_all(result: Result, folder: Path, plots: bool, report: bool) -> list[str]:
    written = [write_summary(result.summary, folder / "summary.json")]
    # Parquet compression releases the GIL and plotting mostly holds it, so the tables are
    # written on a second thread while the plots draw: the bytes of each file are the same.
    with ThreadPoolExecutor(max_workers=1) as writer:
        tables = writer.submit(_write_tables, result, folder)
        drawn = write_plots(result, folder) if plots else []
        written += tables.result()
    pages = [write_report(folder)] if report else []  # reads the files above, so it goes last
    return [path.name for path in written + drawn + pages]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_result(result: Result, out_dir: Path, *, plots: bool = True,
                force: bool = False, report: bool = True) -> list[Path]:
    """Write every output of ``result`` into ``out_dir``, atomically (see the module notes),
    ``report.html`` included (``report=False`` leaves it out).

    ``out_dir`` must be new, an empty folder, or (with ``force``) a folder to replace.
    """
    out_dir = Path(out_dir)
    check_out_dir(out_dir, force=force)
    parent = out_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".partial",
                                        dir=parent))
    except OSError as err:
        raise InfersimError(field="--out", expected="a folder that can be created",
                            given=f"{out_dir} ({err.strerror or err})") from None
    old: Path | None = None
    try:
        names = _write_all(result, staging, plots, report)
        os.chmod(staging, 0o777 & ~_umask())  # mkdtemp made it private
        check_out_dir(out_dir, force=force)  # it may have changed while the run was written
        if out_dir.is_dir():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=parent))
            os.replace(out_dir, old / "run")  # a rename: nothing inside it is read or followed
        os.replace(staging, out_dir)
    except OSError as err:
        if old is not None and (old / "run").exists() and not out_dir.exists():
            os.replace(old / "run", out_dir)  # put the user's folder back
        raise InfersimError(field="--out", expected="a writable folder with room for the run",
                            given=f"{out_dir} ({err.strerror or err})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    return [out_dir / name for name in names]
