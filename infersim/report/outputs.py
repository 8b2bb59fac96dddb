"""Writing a run's results to disk, byte for byte the same for the same scenario and seed.

A run folder holds:

* ``summary.json``: the vLLM-bench keys (``completed``, ``duration``, ``p99_ttft_ms``, ...) with
  ``backend: "infersim"``, the ``cost`` block, the resolved scenario, its hash, the seed and the
  infersim version. Non-finite numbers (a p99 of no requests) are written as ``null``, since JSON
  has no NaN.
* ``requests.parquet``: one row per request.
* ``token_gaps.parquet``: every inter-token gap, exactly as simulated (float64 seconds), with the
  request it belongs to; this is what ITL percentiles are computed from, kept apart from the
  request table so that a million requests do not drag a list column around.
* ``timeseries.parquet`` (queue length, batch size, KV use per pool over time) and
  ``links.parquet`` (KV transfers).
* PNG plots (see :mod:`infersim.report.plots`).

Parquet files are written without wall-clock metadata, so two runs of the same scenario and seed
produce identical bytes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def json_ready(value: Any) -> Any:
    """``value`` with numpy scalars made plain and non-finite floats made ``None``."""
    if isinstance(value, Mapping):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_ready(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


def dumps_summary(summary: Mapping[str, Any]) -> str:
    """The canonical text of ``summary.json`` (keys in the summary's own order, 2-space indent)."""
    return json.dumps(json_ready(summary), indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def write_summary(summary: Mapping[str, Any], path: Path) -> Path:
    path.write_text(dumps_summary(summary), encoding="utf-8")
    return path


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` reproducibly: no index column, fixed compression, no timestamps."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, path, compression="zstd", use_dictionary=True, write_statistics=True)
    return path


def token_gaps_frame(request_ids: np.ndarray, gaps_per_request: np.ndarray,
                     gaps_s: np.ndarray) -> pd.DataFrame:
    """A long table of inter-token gaps: ``request_id`` repeated per gap, ``gap_s`` exact.

    ``gaps_per_request[i]`` gaps of ``gaps_s`` (in order) belong to ``request_ids[i]``.
    """
    counts = np.asarray(gaps_per_request, dtype=np.int64)
    gaps = np.asarray(gaps_s, dtype=np.float64)
    if counts.sum() != len(gaps):
        raise ValueError(f"{counts.sum()} gaps announced, {len(gaps)} given")
    return pd.DataFrame({"request_id": np.repeat(np.asarray(request_ids, dtype=np.int64), counts),
                         "gap_s": gaps})


def write_frames(out_dir: Path, frames: Mapping[str, pd.DataFrame | None]) -> list[Path]:
    """Write each non-empty frame as ``<name>.parquet``; returns the paths written."""
    written = []
    for name, frame in frames.items():
        if frame is not None:
            written.append(write_parquet(frame, out_dir / f"{name}.parquet"))
    return written
