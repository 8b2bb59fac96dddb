"""Benchmark result files, read into one shape: what load was offered and what was measured.

Three families of serving benchmarks are read, each in the format its tool writes:

- ``vllm bench serve --save-result`` (and the older ``benchmarks/benchmark_serving.py``): one JSON
  object per run with ``request_rate`` (a number, or ``"inf"``), ``burstiness``,
  ``max_concurrency``, ``completed``, ``total_input_tokens``, ``total_output_tokens`` and
  ``median_/p90_/p99_`` + ``ttft|tpot|itl|e2el`` + ``_ms``; with ``--save-detailed`` also the
  per-request lists ``input_lens``, ``output_lens``, ``ttfts`` (s), ``itls`` (s, one list per
  request) and ``errors`` (and ``start_times`` in recent releases). When the lists are there,
  the lengths are replayed request by request and the latency statistics are recomputed from
  them (so p90 is known even when the run printed only p99).
- guidellm's ``benchmarks.json``: ``benchmarks[i]`` per load level, each with its strategy
  (``config.strategy`` or, in older reports, ``args.strategy``: ``type_`` synchronous /
  concurrent / throughput / constant / poisson, ``streams`` or ``rate``), ``metrics.<name>.
  successful.{median, percentiles.{p50, p90, p99}}`` and, when saved, ``requests.successful[]``
  with ``prompt_tokens`` and ``output_tokens``. guidellm's ``inter_token_latency_ms`` is the
  per-request (e2e - ttft)/(output - 1): vLLM's TPOT. ``request_latency`` is in seconds.
- genai-perf's ``profile_export_genai_perf.json`` and AIPerf's ``profile_export_aiperf.json``:
  one block per metric, ``{unit, avg, p50, p90, p99, ...}`` (``time_to_first_token``,
  ``inter_token_latency`` (vLLM's TPOT, again), ``request_latency``, ``input_sequence_length``,
  ``output_sequence_length``, ``request_throughput``), and the load under ``input_config``
  (``concurrency`` / ``request_rate``; AIPerf nests them under ``input_config.loadgen``). When
  AIPerf's per-request records, ``profile_export.jsonl``, sit beside its export (as AIPerf writes
  them, one run per folder), the run is replayed request by request from them (each record's
  ``metrics.input_sequence_length`` / ``output_sequence_length`` ``.value``,
  ``metadata.request_start_ns``) and its statistics recomputed from their ``time_to_first_token``,
  ``inter_token_latency`` and ``request_latency``; failed records (``error`` set) are left out.

Every run becomes a :class:`BenchRun` whose measured metrics carry vLLM's names and units
(:data:`METRICS`). A malformed file is one :class:`~infersim.errors.InfersimError` naming the
file, the field path inside it, what was expected and what was given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from infersim.errors import InfersimError
from infersim.yamlfile import parse_json, read_json, read_text

# The measured statistics calibration compares, in vLLM's names and units (ms).
METRICS: tuple[str, ...] = ("median_ttft_ms", "p90_ttft_ms", "median_tpot_ms", "median_e2el_ms")

Tool = Literal["vllm", "guidellm", "genai-perf", "aiperf"]


@dataclass(frozen=True)
class Load:
    """The load a benchmark offered: a closed loop of ``concurrency`` streams, an open-loop
    ``rate`` (requests/s; ``burstiness`` is the gamma shape of the gaps, 1 = Poisson), or every
    request at once (``offline``)."""

    kind: Literal["concurrency", "rate", "offline"]
    value: float = 0.0  # streams for concurrency, requests/s for rate
    burstiness: float = 1.0

    def describe(self) -> str:
        if self.kind == "concurrency":
            return f"concurrency {int(self.value)}"
        if self.kind == "rate":
            shape = "" if self.burstiness == 1.0 else f", burstiness {self.burstiness:g}"
            return f"rate {self.value:g}/s{shape}"
        return "offline"


@dataclass(frozen=True)
class BenchRun:
    """One measured run: where it came from, its load and lengths, and what was measured."""

    source: str  # "file" or "file#benchmarks.2"
    tool: Tool
    load: Load
    requests: int | None  # completed requests; None where the file does not say
    mean_prompt_tokens: float
    mean_output_tokens: float
    metrics: Mapping[str, float]  # a subset of METRICS, in ms
    prompt_tokens: np.ndarray | None = field(default=None, repr=False)  # per request, if saved
    output_tokens: np.ndarray | None = field(default=None, repr=False)
    start_s: np.ndarray | None = field(default=None, repr=False)  # send instants from 0, if saved

    @property
    def label(self) -> str:
        return f"{self.source} ({self.tool}, {self.load.describe()})"


# --------------------------------------------------------------------------------------------
# Field access with one-line errors
# --------------------------------------------------------------------------------------------

class _Doc:
    """A parsed JSON document and the file it came from, for errors naming both."""

    def __init__(self, data: Any, file: str) -> None:
        self.data, self.file = data, file

    def get(self, path: Sequence[str | int], *, default: Any = ...) -> Any:
        node = self.data
        for depth, key in enumerate(path):
            missing = (not isinstance(node, Mapping) or key not in node) if isinstance(key, str) \
                else (not isinstance(node, list) or not 0 <= key < len(node))
            if missing:
                if default is not ...:
                    return default
                if depth and not isinstance(node, (Mapping, list)):
                    raise self.error(path[:depth], "a mapping", node)
                raise self.error(path, "a value (this field is required)")
            node = node[key]
        return node

    def number(self, path: Sequence[str | int], *, default: Any = ..., low: float = 0.0,
               scale: float = 1.0) -> Any:
        value = self.get(path, default=default)
        if value is None and default is None:
            return None
        if default is not ... and value is default:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value < low:
            raise self.error(path, f"a finite number >= {low:g}", value)
        return float(value) * scale

    def error(self, path: Sequence[str | int], expected: str, given: Any = ...) -> InfersimError:
        return InfersimError(file=self.file, field=".".join(str(p) for p in path) or None,
                             expected=expected, given=given)


def _lengths(doc: _Doc, path: Sequence[str | int], values: Any, n: int | None = None) -> np.ndarray:
    if not isinstance(values, list) or (n is not None and len(values) != n):
        raise doc.error(path, f"a list of {n} token counts" if n is not None
                        else "a list of token counts", values if not isinstance(values, list)
                        else f"{len(values)} items")
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise doc.error([*path, i], "an integer >= 0", v)
    return np.asarray(values, dtype=np.int64)


def _percentile_stats(values_ms: np.ndarray) -> dict[str, float]:
    return {"median": float(np.median(values_ms)), "p90": float(np.percentile(values_ms, 90))}


# --------------------------------------------------------------------------------------------
# vLLM bench serve
# --------------------------------------------------------------------------------------------

def _vllm_load(doc: _Doc) -> Load:
    rate = doc.get(["request_rate"], default="inf")
    concurrency = doc.get(["max_concurrency"], default=None)
    if concurrency is not None and (isinstance(concurrency, bool)
                                    or not isinstance(concurrency, int) or concurrency < 1):
        raise doc.error(["max_concurrency"], "an integer >= 1 or null", concurrency)
    if rate in ("inf", "Infinity") or (isinstance(rate, float) and math.isinf(rate)):
        return Load("concurrency", float(concurrency)) if concurrency else Load("offline")
    rate_value = doc.number(["request_rate"])
    if rate_value <= 0:
        raise doc.error(["request_rate"], "a number > 0 or \"inf\"", rate)
    if concurrency:
        raise doc.error(["max_concurrency"], "null when request_rate is finite (infersim "
                        "replays a rate or a concurrency, not both)", concurrency)
    burstiness = doc.number(["burstiness"], default=1.0)
    if burstiness <= 0:
        raise doc.error(["burstiness"], "a number > 0", burstiness)
    return Load("rate", rate_value, burstiness)


def _read_vllm(doc: _Doc, file: str) -> list[BenchRun]:
    load = _vllm_load(doc)
    completed = int(doc.number(["completed"]))
    if completed < 1:
        raise doc.error(["completed"], "at least 1 completed request", completed)
    metrics: dict[str, float] = {}
    prompt = output = start = None
    if "ttfts" in doc.data and "input_lens" in doc.data:
        inputs = _lengths(doc, ["input_lens"], doc.get(["input_lens"]))
        n = len(inputs)
        outputs = _lengths(doc, ["output_lens"], doc.get(["output_lens"]), n)
        ttfts = doc.get(["ttfts"])
        itls = doc.get(["itls"])
        errors = doc.get(["errors"], default=[""] * n)
        for name, values in (("ttfts", ttfts), ("itls", itls), ("errors", errors)):
            if not isinstance(values, list) or len(values) != n:
                raise doc.error([name], f"a list of {n} items (one per request, as input_lens)",
                                values if not isinstance(values, list) else f"{len(values)} items")
        ok = np.array([not err and out > 0 for err, out in zip(errors, outputs, strict=True)])
        if not ok.any():
            raise doc.error(["errors"], "at least one successful request", "every request failed")
        ttft_s = np.array([doc.number(["ttfts", i]) for i in range(n)])
        e2e_s = np.empty(n)
        for i, gaps in enumerate(itls):
            if not isinstance(gaps, list):
                raise doc.error(["itls", i], "a list of gaps in seconds", gaps)
            e2e_s[i] = ttft_s[i] + sum(doc.number(["itls", i, j]) for j in range(len(gaps)))
        ttft_ms, e2e_ms = 1e3 * ttft_s[ok], 1e3 * e2e_s[ok]
        out_ok = outputs[ok]
        multi = out_ok > 1
        tpot_ms = (e2e_ms[multi] - ttft_ms[multi]) / (out_ok[multi] - 1)
        ttft = _percentile_stats(ttft_ms)
        metrics = {"median_ttft_ms": ttft["median"], "p90_ttft_ms": ttft["p90"],
                   "median_e2el_ms": float(np.median(e2e_ms))}
        if len(tpot_ms):
            metrics["median_tpot_ms"] = float(np.median(tpot_ms))
        prompt, output = inputs[ok], outputs[ok]
        if "start_times" in doc.data:
            starts = [doc.number(["start_times", i], low=-math.inf) for i in range(n)]
            start = np.asarray(starts)[ok]
            start = np.sort(start - start.min())
    else:
        for key in METRICS:
            if key in doc.data:
                metrics[key] = doc.number([key])
    total_in = doc.number(["total_input_tokens"])
    total_out = doc.number(["total_output_tokens"])
    mean_prompt = float(prompt.mean()) if prompt is not None else total_in / completed
    mean_output = float(output.mean()) if output is not None else total_out / completed
    return [BenchRun(source=file, tool="vllm", load=load, requests=completed,
                     mean_prompt_tokens=mean_prompt, mean_output_tokens=mean_output,
                     metrics=metrics, prompt_tokens=prompt, output_tokens=output,
                     start_s=start)]


# --------------------------------------------------------------------------------------------
# guidellm
# --------------------------------------------------------------------------------------------

_GUIDELLM_METRICS = (  # ours <- guidellm's metric, statistic, scale to ms
    ("median_ttft_ms", "time_to_first_token_ms", "median", 1.0),
    ("p90_ttft_ms", "time_to_first_token_ms", "p90", 1.0),
    ("median_tpot_ms", "inter_token_latency_ms", "median", 1.0),
    ("median_e2el_ms", "request_latency", "median", 1e3),
)


def _guidellm_load(doc: _Doc, at: list[str | int]) -> Load:
    bench = doc.get(at)
    where = ["config", "strategy"] if "strategy" in (bench.get("config") or {}) \
        else ["args", "strategy"]
    strategy = doc.get([*at, *where])
    kind = doc.get([*at, *where, "type_"])
    if kind == "synchronous":
        return Load("concurrency", 1.0)
    if kind == "concurrent":
        streams = doc.get([*at, *where, "streams"])
        if isinstance(streams, bool) or not isinstance(streams, int) or streams < 1:
            raise doc.error([*at, *where, "streams"], "an integer >= 1", streams)
        return Load("concurrency", float(streams))
    if kind in ("constant", "poisson"):
        rate = doc.number([*at, *where, "rate"])
        if rate <= 0:
            raise doc.error([*at, *where, "rate"], "a number > 0", rate)
        # constant: evenly spaced sends, a gamma process with no spread (a very large shape)
        return Load("rate", rate, 1.0 if kind == "poisson" else 1e6)
    if kind == "throughput":
        return Load("offline")
    raise doc.error([*at, *where, "type_"], "one of synchronous, concurrent, throughput, "
                    "constant, poisson", kind if strategy else ...)


def _read_guidellm(doc: _Doc, file: str) -> list[BenchRun]:
    benches = doc.get(["benchmarks"])
    if not isinstance(benches, list) or not benches:
        raise doc.error(["benchmarks"], "a non-empty list of benchmarks", benches)
    runs = []
    for b in range(len(benches)):
        at: list[str | int] = ["benchmarks", b]
        if not isinstance(benches[b], Mapping):
            raise doc.error(at, "a mapping (one benchmark)", benches[b])
        load = _guidellm_load(doc, at)
        metrics = {}
        for ours, theirs, stat, scale in _GUIDELLM_METRICS:
            path = [*at, "metrics", theirs, "successful",
                    *(["median"] if stat == "median" else ["percentiles", stat])]
            value = doc.number(path, default=None, scale=scale)
            if value is not None:
                metrics[ours] = value
        prompt = output = None
        successful = doc.get([*at, "requests", "successful"], default=None)
        if isinstance(successful, list) and successful:
            base = [*at, "requests", "successful"]
            prompt = _lengths(doc, base, [doc.get([*base, i, "prompt_tokens"])
                                          for i in range(len(successful))])
            output = _lengths(doc, base, [doc.get([*base, i, "output_tokens"])
                                          for i in range(len(successful))])
        count_path = [*at, "metrics", "request_totals", "successful"]
        count = doc.get(count_path, default=None)
        if isinstance(count, Mapping):
            count = count.get("count")
        if count is None and prompt is not None:
            count = len(prompt)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise doc.error(count_path, "a count >= 1 of successful requests", count)
        if prompt is not None and output is not None:
            mean_prompt, mean_output = float(prompt.mean()), float(output.mean())
        else:
            mean_prompt = doc.number([*at, "metrics", "prompt_token_count", "successful", "mean"])
            mean_output = doc.number([*at, "metrics", "output_token_count", "successful", "mean"])
        runs.append(BenchRun(source=f"{file}#benchmarks.{b}", tool="guidellm", load=load,
                             requests=count, mean_prompt_tokens=mean_prompt,
                             mean_output_tokens=mean_output, metrics=metrics,
                             prompt_tokens=prompt, output_tokens=output))
    return runs


# --------------------------------------------------------------------------------------------
# genai-perf / AIPerf
# --------------------------------------------------------------------------------------------

_PERF_METRICS = (  # ours <- metric block, statistic
    ("median_ttft_ms", "time_to_first_token", "p50"),
    ("p90_ttft_ms", "time_to_first_token", "p90"),
    ("median_tpot_ms", "inter_token_latency", "p50"),
    ("median_e2el_ms", "request_latency", "p50"),
)
_TIME_UNITS = {"ms": 1.0, "s": 1e3, "sec": 1e3, "us": 1e-3, "ns": 1e-6}


def _read_perf(doc: _Doc, file: str, tool: Tool) -> list[BenchRun]:
    config = doc.get(["input_config"], default={})
    if not isinstance(config, Mapping):
        raise doc.error(["input_config"], "a mapping", config)
    base = ["input_config", "loadgen"] if isinstance(config.get("loadgen"), Mapping) \
        else ["input_config"]
    concurrency = doc.get([*base, "concurrency"], default=None)
    rate = doc.get([*base, "request_rate"], default=None)
    if rate is not None:
        value = doc.number([*base, "request_rate"])
        if value <= 0:
            raise doc.error([*base, "request_rate"], "a number > 0", rate)
        load = Load("rate", value)
    elif concurrency is not None:
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise doc.error([*base, "concurrency"], "an integer >= 1", concurrency)
        load = Load("concurrency", float(concurrency))
    else:
        raise doc.error([*base, "concurrency"], "the load: concurrency or request_rate")
    metrics = {}
    for ours, block, stat in _PERF_METRICS:
        if block not in doc.data:
            continue
        unit = doc.get([block, "unit"], default="ms")
        if unit not in _TIME_UNITS:
            raise doc.error([block, "unit"], "a time unit (" + ", ".join(_TIME_UNITS) + ")", unit)
        value = doc.number([block, stat], default=None, scale=_TIME_UNITS[unit])
        if value is not None:
            metrics[ours] = value
    # AIPerf states the count; genai-perf's export does not (None: replay max_requests)
    count = doc.get(["request_count", "avg"], default=None)
    if count is not None and (isinstance(count, bool) or not isinstance(count, (int, float))
                              or count < 1):
        raise doc.error(["request_count", "avg"], "a request count >= 1", count)
    prompt = output = start = None
    records = Path(file).with_name("profile_export.jsonl")
    if tool == "aiperf" and records.is_file():
        prompt, output, start, metrics = _read_aiperf_records(records)
        count = len(prompt)
    mean_prompt = doc.number(["input_sequence_length", "avg"]) if prompt is None \
        else float(prompt.mean())
    mean_output = doc.number(["output_sequence_length", "avg"]) if output is None \
        else float(output.mean())
    return [BenchRun(source=file, tool=tool, load=load, prompt_tokens=prompt,
                     output_tokens=output, start_s=start,
                     requests=int(count) if count is not None else None,
                     mean_prompt_tokens=mean_prompt, mean_output_tokens=mean_output,
                     metrics=metrics)]


# Result files with per-request detail (token timestamps of every request) run to hundreds of
# megabytes; scenarios stay at yamlfile.MAX_BYTES.
MAX_RESULT_BYTES = 1 << 30

_RECORD_UNITS = {"ms": 1.0, "s": 1e3, "sec": 1e3, "us": 1e-3, "ns": 1e-6}


def _read_aiperf_records(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray,
                                               dict[str, float]]:
    """AIPerf's per-request records: lengths, send instants (s from the first) and the
    statistics of the successful ones."""
    file = str(path)
    lines = read_text(path, what="profile_export.jsonl", kind="JSON lines",
                      max_bytes=MAX_RESULT_BYTES).splitlines()
    prompt, output, start, ttft, tpot, e2e = [], [], [], [], [], []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        record = parse_json(line, file, line=number)
        doc = _Doc(record, f"{file}:{number}")
        if not isinstance(record, Mapping):
            raise doc.error([], "one JSON object per line (a request record)", record)
        if record.get("error") is not None:
            continue
        lengths = []
        for key in ("input_sequence_length", "output_sequence_length"):
            value = doc.get(["metrics", key, "value"])
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise doc.error(["metrics", key, "value"], "an integer >= 0", value)
            lengths.append(value)
        prompt.append(lengths[0])
        output.append(lengths[1])
        start.append(doc.number(["metadata", "request_start_ns"]) * 1e-9)
        times = []
        for key in ("time_to_first_token", "inter_token_latency", "request_latency"):
            unit = doc.get(["metrics", key, "unit"], default="ms")
            if unit not in _RECORD_UNITS:
                raise doc.error(["metrics", key, "unit"], "a time unit (" +
                                ", ".join(_RECORD_UNITS) + ")", unit)
            value = doc.number(["metrics", key, "value"], default=None,
                               scale=_RECORD_UNITS[unit])
            times.append(np.nan if value is None else value)
        ttft.append(times[0])
        tpot.append(times[1])
        e2e.append(times[2])
    if not prompt:
        raise InfersimError(file=file, expected="at least one successful request record",
                            given="none")
    starts = np.asarray(start)
    ttft_ms, tpot_ms, e2e_ms = (np.asarray(v) for v in (ttft, tpot, e2e))
    metrics: dict[str, float] = {}
    if np.isfinite(ttft_ms).any():
        stats = _percentile_stats(ttft_ms[np.isfinite(ttft_ms)])
        metrics.update(median_ttft_ms=stats["median"], p90_ttft_ms=stats["p90"])
    for key, values in (("median_tpot_ms", tpot_ms), ("median_e2el_ms", e2e_ms)):
        if np.isfinite(values).any():
            metrics[key] = float(np.median(values[np.isfinite(values)]))
    return (np.asarray(prompt, dtype=np.int64), np.asarray(output, dtype=np.int64),
            np.sort(starts - starts.min()), metrics)


# --------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------

def detect_tool(data: Any) -> Tool | None:
    """Which tool wrote this JSON document, from the keys only that tool writes."""
    if not isinstance(data, Mapping):
        return None
    if "benchmarks" in data:
        return "guidellm"
    if "time_to_first_token" in data or "request_latency" in data:
        config = data.get("input_config")
        aiperf = isinstance(config, Mapping) and ("loadgen" in config or "endpoint" in config)
        return "aiperf" if aiperf or "benchmark_duration" in data else "genai-perf"
    if "completed" in data and ("median_ttft_ms" in data or "ttfts" in data):
        return "vllm"
    return None


def read_benchmark(path: str | Path) -> list[BenchRun]:
    """Every run in one result file (a guidellm report holds one per load level)."""
    file = str(path)
    data = read_json(path, what="benchmark result file", max_bytes=MAX_RESULT_BYTES)
    tool = detect_tool(data)
    if tool is None:
        raise InfersimError(file=file, expected="a vllm bench serve --save-result JSON, a "
                            "guidellm benchmarks.json or a genai-perf/AIPerf profile export",
                            given=("keys " + ", ".join(list(data)[:6])) if isinstance(data, dict)
                            else type(data).__name__)
    doc = _Doc(data, file)
    if tool == "vllm":
        runs = _read_vllm(doc, file)
    elif tool == "guidellm":
        runs = _read_guidellm(doc, file)
    else:
        runs = _read_perf(doc, file, tool)
    for run in runs:
        if run.mean_prompt_tokens < 1 or run.mean_output_tokens < 1:
            raise InfersimError(file=file, field="lengths", expected="mean prompt and output "
                                "lengths >= 1 token", given=(run.mean_prompt_tokens,
                                                              run.mean_output_tokens))
        if not run.metrics:
            raise InfersimError(file=file, expected="at least one of the latency statistics "
                                "(TTFT, TPOT, E2E)", given="none")
    return runs
