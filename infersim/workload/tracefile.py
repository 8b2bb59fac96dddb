"""Reading trace files: text or gzip, CSV in chunks, and columns checked row by row.

The loaders in :mod:`infersim.workload.traces` are built from these pieces. Every bad cell is an
:class:`InfersimError` naming the file, the line and the column, with the value as the user wrote
it; nothing here keeps per-row Python objects (chunks become numpy arrays).
"""

from __future__ import annotations

import csv
import gzip
import math
import re
import warnings
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from infersim.errors import InfersimError
from infersim.limits import MAX_SECONDS, MAX_TOKENS

CHUNK_ROWS = 50_000  # CSV rows parsed at a time (bounds the parser's string objects)


def open_text(path: str | Path) -> TextIO:
    """Open ``path`` as UTF-8 text (a leading BOM skipped), un-gzipped if its magic bytes say so."""
    path = Path(path)
    if not path.is_file():
        raise InfersimError("no such file", file=path, expected="an existing trace file")
    with open(path, "rb") as raw:
        magic = raw.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


def read_header(handle: TextIO, path: Path, required: Sequence[str]) -> list[str]:
    first = handle.readline()
    if not first.strip():
        raise InfersimError("empty file", file=path, line=1,
                            expected="a CSV header row then at least one request")
    names = [n.strip() for n in next(csv.reader([first]))]
    header_has(names, required, path)
    return names


@contextmanager
def reading_errors(path: Path) -> Iterator[None]:
    """Turn undecodable bytes and truncated gzip streams into one-line errors."""
    try:
        yield
    except UnicodeDecodeError:
        raise InfersimError("undecodable bytes", file=path,
                            expected="UTF-8 text (or gzip of it)") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise InfersimError(f"unreadable gzip stream ({exc})", file=path,
                            expected="a complete gzip file") from None


_PANDAS_FIELDS = re.compile(r"line (\d+), saw (\d+)")


def csv_chunks(handle: TextIO, path: Path, names: list[str],
                text_columns: Sequence[str] = ()) -> Iterator[pd.DataFrame]:
    """Row chunks after the header; the index counts data rows, so line = index + 2."""
    with warnings.catch_warnings():
        # pandas only warns when the first row has more fields than the header; it is an error.
        warnings.simplefilter("error", pd.errors.ParserWarning)
        try:
            reader = pd.read_csv(handle, header=None, names=names, index_col=False,
                                 chunksize=CHUNK_ROWS, skip_blank_lines=False,
                                 dtype={c: str for c in text_columns}, keep_default_na=False,
                                 na_values=[""])
            yield from reader
        except pd.errors.ParserWarning:
            # Raised only for the first data row (line 2) having more fields than the header.
            raise InfersimError("malformed row", file=path, line=2,
                                expected=f"{len(names)} fields as in the header",
                                given="more fields") from None
        except pd.errors.ParserError as exc:
            text = str(exc)
            found = _PANDAS_FIELDS.search(text)
            if found is None:
                raise InfersimError("malformed CSV", file=path,
                                    given=text.strip().splitlines()[-1]) from None
            # pandas counts lines from where it started reading: just after the header.
            raise InfersimError("malformed row", file=path, line=int(found.group(1)) + 1,
                                expected=f"{len(names)} fields as in the header",
                                given=f"{found.group(2)} fields") from None


def cell_text(value):
    """A cell as the user wrote it: '' for an empty field, plain Python numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return ""
    return value.item() if hasattr(value, "item") else value


def blank_rows(chunk: pd.DataFrame) -> np.ndarray:
    return chunk.isna().all(axis=1).to_numpy()


def token_column(chunk: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """A column of whole token counts >= 0, else an error at the first bad line."""
    raw = chunk[column]
    numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~(numbers >= 0) | (numbers > MAX_TOKENS) | (numbers != np.floor(numbers))
    if bad.any():
        i = int(np.argmax(bad))
        line = int(chunk.index[i]) + 2
        value = numbers[i]
        if np.isfinite(value) and value < 0:
            expected = "a token count >= 0"
        elif np.isfinite(value) and value > MAX_TOKENS:  # 2**63 would wrap to negative in int64
            expected = f"a token count <= {MAX_TOKENS:,}"
        else:
            expected = "a whole number of tokens"
        raise InfersimError(file=path, line=line, field=column, expected=expected,
                            given=cell_text(raw.iloc[i]))
    return numbers.astype(np.int64)


def timestamp_ns(chunk: pd.DataFrame, column: str, path: Path) -> np.ndarray:
    """ISO-8601 timestamps (any decimals, optional UTC offset) as int64 ns since the epoch."""
    raw = chunk[column]
    stamps = pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce")
    bad = stamps.isna().to_numpy()
    if bad.any():
        i = int(np.argmax(bad))
        raise InfersimError(file=path, line=int(chunk.index[i]) + 2, field=column,
                            expected="a timestamp such as '2023-11-16 18:17:03.9799600'",
                            given=cell_text(raw.iloc[i]))
    return stamps.dt.as_unit("ns").astype("int64").to_numpy()


def seconds_column(chunk: pd.DataFrame, column: str, path: Path, scale: float) -> np.ndarray:
    raw = chunk[column]
    numbers = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~((numbers >= 0) & (numbers * scale <= MAX_SECONDS))
    if bad.any():
        i = int(np.argmax(bad))
        raise InfersimError(file=path, line=int(chunk.index[i]) + 2, field=column,
                            expected=f"a time <= {MAX_SECONDS:g} s" if numbers[i] * scale
                            > MAX_SECONDS else "a time >= 0 in seconds", given=cell_text(raw.iloc[i]))
    return numbers * scale


class Columns:
    """Growable typed buffers: chunks append numpy arrays, no per-row Python objects kept."""

    def __init__(self) -> None:
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, name: str, values: np.ndarray) -> None:
        self.parts.setdefault(name, []).append(values)

    def get(self, name: str, dtype) -> np.ndarray:
        parts = self.parts.get(name, [])
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.zeros(0, dtype)


@dataclass
class ReadLimit:
    """When reading a trace promised to be in arrival order may stop.

    Week-long traces (Azure 2024) hold tens of millions of rows; replaying ten minutes of one
    should not parse the week. When the caller promises the file is in arrival order
    (``ordered=True``; every published trace is recorded that way), reading stops once an
    arrival passes the replay window's end or the cap is reached, and the promise is checked on
    every row read: a row earlier than the one before it is an error, never a silently wrong
    replay. Without the promise the whole file is read and :func:`replay` sorts it.
    """

    path: Path
    ordered: bool = False
    window_s: Sequence[float] | None = None
    max_requests: int | None = None
    first_s: float | None = None  # first usable arrival, seconds in the file's own clock
    last_s: float = -math.inf
    counted: int = 0

    def reached(self, times_s: np.ndarray, usable: np.ndarray, lines: np.ndarray) -> bool:
        """Account for a chunk of rows (file order); True once the rest of the file cannot matter."""
        if not self.ordered or len(times_s) == 0:
            return False
        steps = np.diff(times_s, prepend=self.last_s)
        if np.any(steps < 0):
            i = int(np.argmax(steps < 0))
            raise InfersimError("out of order", file=self.path, line=int(lines[i]),
                                expected="rows in arrival order (the trace is declared ordered)",
                                given=f"an arrival {-steps[i]:.6g} s before the previous row")
        self.last_s = float(times_s[-1])
        if self.first_s is None and usable.any():
            self.first_s = float(times_s[np.argmax(usable)])
        if self.first_s is None or (self.window_s is None and self.max_requests is None):
            return False
        relative = times_s - self.first_s
        start, end = (0.0, math.inf) if self.window_s is None else map(float, self.window_s)
        if self.max_requests is not None:
            self.counted += int(np.count_nonzero(usable & (relative >= start) & (relative < end)))
            if self.counted >= self.max_requests:
                return True
        return bool(relative[-1] >= end)




def header_has(names: Sequence[str], required: Sequence[str], path: Path) -> None:
    for name in required:
        if name not in names:
            raise InfersimError(f"no column {name}", file=path, line=1, field=name,
                                expected="a header naming it", given=",".join(names))
