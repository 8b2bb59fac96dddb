"""Trace loaders: replay what real users sent to real LLM services.

A trace records, per request, when it arrived and how many tokens went in and came out; some also
record which prompt blocks it shared with earlier requests (prefix-cache reuse). Replaying one
exercises the simulated cluster with production burstiness and length mixes instead of a
textbook Poisson stream. Supported formats (``format`` key):

``azure``      Azure LLM inference traces, 2023 (Splitwise) and 2024 (week-long): CSV
               ``TIMESTAMP,ContextTokens,GeneratedTokens``; timestamps such as
               ``2023-11-16 18:17:03.9799600`` (7 decimals) or with a ``+00:00`` offset.
``mooncake``   Mooncake FAST'25 JSON lines ``{"timestamp": ms, "input_length", "output_length",
               "hash_ids": [...]}``; each hash id names one 512-token prompt block, so requests
               sharing leading ids share a cacheable prefix (``RequestTable.prefix_hashes``).
``burstgpt``   BurstGPT CSV ``Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type``
               (seconds since the trace start). Failed requests are logged with 0 response
               tokens; they are dropped, and counted in ``Trace.dropped``.
``lengths``    a plain table of lengths without timestamps (e.g. vidur's arXiv summarisation
               table ``num_prefill_tokens,num_decode_tokens,...``), replayed with a synthetic
               arrival process.

Loaders stream: CSV files in chunks of rows, JSON lines one at a time, into numpy arrays (only
Mooncake's per-request prefix-id arrays are per-row objects, and they are views into one flat
array). A file declared to be in arrival order (``ordered=True``; published traces are) is read
only as far as the replay window or request cap needs, its order checked on every row read, so
ten minutes of a week-long trace cost ten minutes' parsing. Gzipped files are read as they are,
recognised by their magic bytes. Bad input (a missing column, a bad timestamp, a negative or
fractional length, an empty file) raises one :class:`InfersimError` naming the file, the line
and the field; nothing is returned half-loaded.

Any row with 0 prompt or 0 output tokens is dropped and counted (``Trace.dropped``, and a warning):
the simulator's requests carry at least one token each way, and such rows are failed or empty
requests in every trace we know of.

:func:`replay` turns a loaded trace into a :class:`RequestTable`: times are always taken relative
to the first arrival; ``window_s`` keeps a slice of the trace (seconds from the first arrival, in
the trace's own time); ``speedup`` divides every inter-arrival time (2.0 = twice the load); and
``max_requests`` keeps the earliest requests.
"""

from __future__ import annotations

import json
import logging
import math
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infersim.errors import InfersimError
from infersim.limits import MAX_SECONDS, MAX_TOKENS
from infersim.workload.table import RequestTable
from infersim.workload.tracefile import (
    Columns,
    ReadLimit,
    blank_rows,
    csv_chunks,
    header_has,
    open_text,
    read_header,
    reading_errors,
    seconds_column,
    timestamp_ns,
    token_column,
)

log = logging.getLogger(__name__)

TRACE_FORMATS = ("azure", "mooncake", "burstgpt", "lengths")
MOONCAKE_BLOCK_TOKENS = 512
_CHECK_LINES = 50_000  # JSON lines between checks of whether reading may stop

# Column pairs a plain length table may use, tried in order when none is named.
LENGTH_COLUMN_PAIRS = (
    ("prompt_tokens", "output_tokens"),
    ("num_prefill_tokens", "num_decode_tokens"),
    ("input_length", "output_length"),
    ("input_tokens", "output_tokens"),
    ("ContextTokens", "GeneratedTokens"),
    ("Request tokens", "Response tokens"),
)


@dataclass(frozen=True, eq=False)
class Trace:
    """A loaded trace, rows in file order; ``arrival_s`` relative to the earliest arrival."""

    path: Path
    format: str
    arrival_s: np.ndarray | None  # float64 seconds, None for a lengths-only table
    prompt_tokens: np.ndarray  # int64 >= 1
    output_tokens: np.ndarray  # int64 >= 1
    prefix_hashes: tuple[np.ndarray, ...] | None = None
    prefix_block_tokens: int = MOONCAKE_BLOCK_TOKENS
    dropped: int = 0  # rows with 0 prompt or output tokens (failed requests), not kept

    def __len__(self) -> int:
        return len(self.prompt_tokens)

    @property
    def span_s(self) -> float:
        """Seconds from the first to the last arrival (0 for a lengths-only table)."""
        if self.arrival_s is None or len(self.arrival_s) == 0:
            return 0.0
        return float(self.arrival_s.max())


def _finish(path: Path, fmt: str, arrival: np.ndarray | None, prompt: np.ndarray,
            output: np.ndarray, hashes: tuple[np.ndarray, ...] | None = None) -> Trace:
    if len(prompt) == 0:
        raise InfersimError("no requests", file=path, expected="at least one data row")
    keep = (prompt > 0) & (output > 0)
    dropped = int(len(keep) - keep.sum())
    if dropped:
        if not keep.any():
            raise InfersimError(f"all {dropped} rows have 0 prompt or output tokens", file=path,
                                expected="at least one request with tokens each way")
        # A warning, not info: the replay has fewer requests than the file, and infersim sets
        # up no logging, so only a warning reaches the user (Python's last-resort handler).
        log.warning("%s: dropped %d of %d rows with 0 prompt or output tokens (failed requests)",
                    path, dropped, len(keep))
        prompt, output = prompt[keep], output[keep]
        if arrival is not None:
            arrival = arrival[keep]
        if hashes is not None:
            hashes = tuple(h for h, k in zip(hashes, keep, strict=True) if k)
    if arrival is not None:
        arrival = arrival - arrival.min()
    return Trace(path=path, format=fmt, arrival_s=arrival, prompt_tokens=prompt,
                 output_tokens=output, prefix_hashes=hashes, dropped=dropped)


def load_azure(path: str | Path, *, ordered: bool = False,
               window_s: Sequence[float] | None = None, max_requests: int | None = None) -> Trace:
    """Azure LLM inference trace (2023 or 2024): ``TIMESTAMP,ContextTokens,GeneratedTokens``.

    ``ordered``, ``window_s`` and ``max_requests``: see :class:`ReadLimit`.
    """
    path = Path(path)
    cols = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
    out = Columns()
    limit = ReadLimit(path, ordered, window_s, max_requests)
    epoch_ns: int | None = None
    with open_text(path) as handle, reading_errors(path):
        names = read_header(handle, path, cols)
        for chunk in csv_chunks(handle, path, names, text_columns=("TIMESTAMP",)):
            chunk = chunk[~blank_rows(chunk)]
            stamps = timestamp_ns(chunk, "TIMESTAMP", path)
            prompt = token_column(chunk, "ContextTokens", path)
            output = token_column(chunk, "GeneratedTokens", path)
            out.add("t", stamps)
            out.add("p", prompt)
            out.add("o", output)
            if len(stamps):
                epoch_ns = int(stamps[0]) if epoch_ns is None else epoch_ns
                if limit.reached((stamps - epoch_ns) * 1e-9, (prompt > 0) & (output > 0),
                                 chunk.index.to_numpy() + 2):
                    break
    stamps = out.get("t", np.int64)
    # Subtract in integer nanoseconds first so float64 keeps sub-microsecond precision.
    arrival = (stamps - (stamps.min() if len(stamps) else 0)).astype(np.float64) * 1e-9
    return _finish(path, "azure", arrival, out.get("p", np.int64), out.get("o", np.int64))


def load_burstgpt(path: str | Path, *, model: str | None = None, ordered: bool = False,
                  window_s: Sequence[float] | None = None,
                  max_requests: int | None = None) -> Trace:
    """BurstGPT CSV; ``model`` keeps only that ``Model`` column value (e.g. ``ChatGPT``).

    ``ordered``, ``window_s`` and ``max_requests``: see :class:`ReadLimit`.
    """
    path = Path(path)
    cols = ("Timestamp", "Model", "Request tokens", "Response tokens")
    out = Columns()
    limit = ReadLimit(path, ordered, window_s, max_requests)
    seen_models: set[str] = set()
    with open_text(path) as handle, reading_errors(path):
        names = read_header(handle, path, cols)
        for chunk in csv_chunks(handle, path, names, text_columns=("Model",)):
            chunk = chunk[~blank_rows(chunk)]
            if model is not None:
                seen_models.update(chunk["Model"].dropna().unique().tolist())
                chunk = chunk[chunk["Model"] == model]
            times = seconds_column(chunk, "Timestamp", path, 1.0)
            prompt = token_column(chunk, "Request tokens", path)
            output = token_column(chunk, "Response tokens", path)
            out.add("t", times)
            out.add("p", prompt)
            out.add("o", output)
            if limit.reached(times, (prompt > 0) & (output > 0), chunk.index.to_numpy() + 2):
                break
    prompt = out.get("p", np.int64)
    if model is not None and len(prompt) == 0 and seen_models:
        raise InfersimError(file=path, field="Model",
                            expected=f"one of {', '.join(sorted(seen_models))}", given=model)
    return _finish(path, "burstgpt", out.get("t", np.float64), prompt, out.get("o", np.int64))


def length_columns(names: Sequence[str], prompt_column: str | None,
                   output_column: str | None, path: Path) -> tuple[str, str]:
    """The prompt and output columns of a length table: as named, else a known pair."""
    if prompt_column is not None or output_column is not None:
        if prompt_column is None or output_column is None:
            raise InfersimError(file=path, field="prompt_column" if prompt_column is None
                                else "output_column", expected="both prompt_column and "
                                "output_column, or neither", given="only one")
        return prompt_column, output_column
    for pair in LENGTH_COLUMN_PAIRS:
        if pair[0] in names and pair[1] in names:
            return pair
    raise InfersimError("no prompt/output length columns", file=path, line=1,
                        field="prompt_column", expected="a header with a known pair such as "
                        "num_prefill_tokens,num_decode_tokens, or prompt_column and "
                        "output_column naming them", given=",".join(names))


def load_lengths(path: str | Path, *, prompt_column: str | None = None,
                 output_column: str | None = None, max_requests: int | None = None) -> Trace:
    """A CSV table of prompt and output lengths, without timestamps.

    With ``max_requests``, reading stops once that many usable rows are in.
    """
    path = Path(path)
    out = Columns()
    usable_rows = 0
    with open_text(path) as handle, reading_errors(path):
        names = read_header(handle, path, ())
        prompt_col, output_col = length_columns(names, prompt_column, output_column, path)
        header_has(names, (prompt_col, output_col), path)
        for chunk in csv_chunks(handle, path, names):
            chunk = chunk[~blank_rows(chunk)]
            prompt = token_column(chunk, prompt_col, path)
            output = token_column(chunk, output_col, path)
            out.add("p", prompt)
            out.add("o", output)
            usable_rows += int(np.count_nonzero((prompt > 0) & (output > 0)))
            if max_requests is not None and usable_rows >= max_requests:
                break
    return _finish(path, "lengths", None, out.get("p", np.int64), out.get("o", np.int64))


def _json_number(record: dict, key: str, path: Path, line: int, *, whole: bool) -> float:
    if key not in record:
        raise InfersimError(f"no {key}", file=path, line=line, field=key,
                            expected="every line to have it")
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (whole and value != int(value)):
        raise InfersimError(file=path, line=line, field=key,
                            expected="a whole number" if whole else "a number", given=value)
    top = MAX_TOKENS if whole else MAX_SECONDS * 1e3  # tokens; milliseconds
    if not 0 <= value <= top:
        raise InfersimError(file=path, line=line, field=key, given=value,
                            expected="a value >= 0" if value < 0 else f"a value <= {top:g}")
    return value


def load_mooncake(path: str | Path, *, ordered: bool = False,
                  window_s: Sequence[float] | None = None,
                  max_requests: int | None = None) -> Trace:
    """Mooncake FAST'25 JSON lines: ms timestamps, lengths and 512-token prefix block ids.

    ``ordered``, ``window_s`` and ``max_requests``: see :class:`ReadLimit`.
    """
    path = Path(path)
    limit = ReadLimit(path, ordered, window_s, max_requests)
    checked = 0  # rows already shown to the limit
    line_numbers = array("q")  # of each request, for the limit's order check
    # Typed buffers: ~32 bytes a line plus 8 per block id, not a Python object per field.
    stamps_ms, prompt, output = array("d"), array("q"), array("q")
    flat_ids, ends = array("q"), array("q")
    with_hashes: bool | None = None
    with open_text(path) as handle, reading_errors(path):
        for line, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                raise InfersimError(f"invalid JSON ({exc.msg}, character {exc.pos + 1})", file=path,
                                    line=line, expected="one JSON object per line") from None
            except (RecursionError, ValueError):  # deep nesting; an int of 4,300+ digits
                raise InfersimError("invalid JSON (too deep or a number too long)", file=path,
                                    line=line, expected="one JSON object per line") from None
            if not isinstance(record, dict):
                raise InfersimError(file=path, line=line, expected="a JSON object",
                                    given=type(record).__name__)
            stamps_ms.append(_json_number(record, "timestamp", path, line, whole=False))
            if ordered:
                line_numbers.append(line)
            prompt.append(int(_json_number(record, "input_length", path, line, whole=True)))
            output.append(int(_json_number(record, "output_length", path, line, whole=True)))
            has = "hash_ids" in record
            if with_hashes is None:
                with_hashes = has
            elif has != with_hashes:
                raise InfersimError("hash_ids " + ("missing" if not has else "present"),
                                    file=path, line=line, field="hash_ids",
                                    expected="hash_ids on every line or on none")
            if has:
                ids = record["hash_ids"]
                if not isinstance(ids, list) or not all(
                        isinstance(i, int) and not isinstance(i, bool) for i in ids):
                    raise InfersimError(file=path, line=line, field="hash_ids",
                                        expected="a list of whole numbers", given=ids)
                # One id per 512-token block of the prompt: anything else is a corrupt line (or
                # another block size), and prefix routing would miscount cached tokens.
                blocks = -(-prompt[-1] // MOONCAKE_BLOCK_TOKENS)
                if len(ids) != blocks:
                    raise InfersimError(file=path, line=line, field="hash_ids", given=ids,
                                        expected=f"ceil(input_length / {MOONCAKE_BLOCK_TOKENS}) "
                                                 f"= {blocks} block ids")
                try:
                    flat_ids.extend(ids)
                except OverflowError:
                    raise InfersimError(file=path, line=line, field="hash_ids",
                                        expected="ids that fit in 64 bits", given=ids) from None
                ends.append(len(flat_ids))
            if ordered and len(prompt) - checked >= _CHECK_LINES:
                # Slicing an array copies it, so no buffer stays exported while they grow.
                p = np.frombuffer(prompt[checked:], dtype=np.int64)
                o = np.frombuffer(output[checked:], dtype=np.int64)
                times_s = np.frombuffer(stamps_ms[checked:], dtype=np.float64) * 1e-3
                lines = np.frombuffer(line_numbers[checked:], dtype=np.int64)
                checked = len(prompt)
                if limit.reached(times_s, (p > 0) & (o > 0), lines):
                    break
    if ordered and checked < len(prompt):  # the promise holds for the last partial chunk too
        limit.reached(np.frombuffer(stamps_ms[checked:], dtype=np.float64) * 1e-3,
                      np.ones(len(prompt) - checked, dtype=bool),
                      np.frombuffer(line_numbers[checked:], dtype=np.int64))
    if len(prompt) == 0:
        raise InfersimError("empty file", file=path, expected="at least one JSON line")
    hashes = None
    if with_hashes:
        # One flat array; each request's ids are a view into it (no per-id Python objects).
        flat = np.frombuffer(flat_ids, dtype=np.int64).copy()
        hashes = tuple(np.split(flat, np.frombuffer(ends, dtype=np.int64)[:-1]))
    arrival = np.frombuffer(stamps_ms, dtype=np.float64) * 1e-3
    return _finish(path, "mooncake", arrival, np.frombuffer(prompt, dtype=np.int64).copy(),
                   np.frombuffer(output, dtype=np.int64).copy(), hashes)


def load_trace(path: str | Path, format: str, *, prompt_column: str | None = None,
               output_column: str | None = None, model: str | None = None,
               ordered: bool = False, window_s: Sequence[float] | None = None,
               max_requests: int | None = None) -> Trace:
    """Load a trace file of ``format`` (one of :data:`TRACE_FORMATS`).

    ``window_s`` and ``max_requests`` are what the trace will be replayed with; with
    ``ordered=True`` (the file is in arrival order, which is checked on every row read) reading
    stops as soon as they are satisfied. :func:`replay` applies them either way.
    """
    limits = {"ordered": ordered, "window_s": window_s, "max_requests": max_requests}
    if format == "azure":
        return load_azure(path, **limits)
    if format == "mooncake":
        return load_mooncake(path, **limits)
    if format == "burstgpt":
        return load_burstgpt(path, model=model, **limits)
    if format == "lengths":
        return load_lengths(path, prompt_column=prompt_column, output_column=output_column,
                            max_requests=max_requests)
    raise InfersimError(file=path, field="format", expected=f"one of {', '.join(TRACE_FORMATS)}",
                        given=format)


def replay(trace: Trace, *, speedup: float = 1.0, window_s: Sequence[float] | None = None,
           max_requests: int | None = None) -> RequestTable:
    """The trace as a request table, sorted by arrival, the first request at ``t = 0``.

    ``window_s = (start, end)`` keeps requests arriving in ``[start, end)`` seconds after the
    trace's first arrival (trace time, before ``speedup``); ``speedup`` divides every
    inter-arrival time; ``max_requests`` keeps the earliest requests.
    """
    if trace.arrival_s is None:
        raise InfersimError(file=trace.path, field="format", expected="a trace with timestamps "
                            "(a lengths table needs an arrival process)", given=trace.format)
    if isinstance(speedup, bool) or not isinstance(speedup, (int, float)) \
            or not math.isfinite(speedup) or speedup <= 0:
        raise InfersimError(file=trace.path, field="speedup", expected="a number > 0",
                            given=speedup)
    times = trace.arrival_s
    index = np.argsort(times, kind="stable")
    if window_s is not None:
        if len(window_s) != 2 or not (0 <= float(window_s[0]) < float(window_s[1])):
            raise InfersimError(file=trace.path, field="window_s",
                                expected="[start, end] with 0 <= start < end",
                                given=list(window_s))
        lo, hi = np.searchsorted(times[index], [float(window_s[0]), float(window_s[1])])
        index = index[lo:hi]
        if len(index) == 0:
            raise InfersimError(file=trace.path, field="window_s",
                                expected=f"a window holding requests (the trace spans "
                                f"{trace.span_s:.1f} s)", given=list(window_s))
    index = index[:_cap(max_requests, trace.path)]
    kept = times[index]
    return _table(trace, index, (kept - kept[0]) / speedup)


def with_arrivals(trace: Trace, arrival_s: np.ndarray, *,
                  max_requests: int | None = None) -> RequestTable:
    """The trace's lengths, in file order, under arrival instants from elsewhere.

    This replays a lengths-only table (or a timed trace's lengths) under a synthetic arrival
    process: request ``i`` of the file arrives at ``arrival_s[i]``. There must be an arrival
    instant for every request kept.
    """
    index = np.arange(min(len(trace), _cap(max_requests, trace.path) or len(trace)))
    if len(arrival_s) < len(index):
        raise ValueError(f"{len(index)} requests need as many arrival instants, "
                         f"got {len(arrival_s)}")
    return _table(trace, index, np.asarray(arrival_s[: len(index)], dtype=np.float64))


def _cap(max_requests: int | None, path: Path) -> int | None:
    if max_requests is None:
        return None
    if isinstance(max_requests, bool) or not isinstance(max_requests, (int, np.integer)) \
            or max_requests < 1:
        raise InfersimError(file=path, field="max_requests", expected="a whole number >= 1",
                            given=max_requests)
    return int(max_requests)


def _table(trace: Trace, index: np.ndarray, arrival_s: np.ndarray) -> RequestTable:
    hashes = None
    if trace.prefix_hashes is not None:
        hashes = tuple(trace.prefix_hashes[i] for i in index)
    return RequestTable(arrival_s=arrival_s, prompt_tokens=trace.prompt_tokens[index],
                        output_tokens=trace.output_tokens[index], prefix_hashes=hashes,
                        prefix_block_tokens=trace.prefix_block_tokens)
