"""Writing a run's results to disk, byte for byte the same for the same scenario and seed.

``summary.json`` holds the vLLM-bench keys (``completed``, ``duration``, ``p99_ttft_ms``, ...)
with ``backend: "infersim"``, the ``cost`` block, the resolved scenario, its hash, the seed and the
infersim version. Non-finite numbers (a p99 of no requests) are written as ``null``, since JSON has
no NaN. The tables (one row per request, the inter-token gaps as distinct values with their counts,
the decode clock, time series, links, instances) are written as parquet; which file holds what is
listed in :mod:`infersim.report.save`.

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


def write_frames(out_dir: Path, frames: Mapping[str, pd.DataFrame | None]) -> list[Path]:
    """Write each frame that is not None as ``<name>.parquet``; returns the paths written."""
    written = []
    for name, frame in frames.items():
        if frame is not None:
            written.append(write_parquet(frame, out_dir / f"{name}.parquet"))
    return written
