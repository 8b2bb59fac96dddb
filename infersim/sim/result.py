"""What a run produces: one row per request, per-instance time series, links, pools, token times.

Token times are not stored per token. Each decoding instance keeps its epoch log and each request
its decode runs (see :mod:`infersim.sim.records`), from which any token time is rebuilt exactly.
The inter-token latency (ITL) distribution, which pools every gap between consecutive tokens of
every completed request, is built the same way without one array entry per token:

- a step that is not the first of a request's run is a gap, of that step's duration measured end
  to end (``end[s] - end[s-1]``, stalls included), for *every* completed request whose run covers
  both steps. So each step of an instance is one gap value with a multiplicity, the number of
  such runs covering it (a difference array over the runs, summed cumulatively);
- the first token of a run follows the request's previous token (the prefill's first token, or
  the last token before a preemption): one gap per run, of multiplicity one.

The percentiles of this (value, count) multiset are exactly those of the raw gaps
(``numpy.percentile``'s linear interpolation, reproduced on cumulative counts).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from infersim.sim.records import RunRecords, step_end_times


@dataclass(frozen=True, eq=False)
class SimResult:
    """The outcome of one simulated run (see module docstring)."""

    requests: pd.DataFrame  # one row per request
    timeseries: pd.DataFrame  # per-instance samples
    links: pd.DataFrame  # per KV link
    instances: pd.DataFrame  # per instance: busy time, peak KV, steps
    pools: dict[str, dict[str, Any]]  # per pool: role, chips, busy seconds, utilisation, ...
    duration_s: float
    seed: int
    epochs: dict[int, dict[str, np.ndarray]] = field(repr=False)  # instance -> epoch log
    runs: dict[str, np.ndarray] = field(repr=False)  # decode runs of all requests
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # -- token times ----------------------------------------------------------------------------

    def _step_ends(self, instance: int) -> np.ndarray:
        key = f"ends{instance}"
        if key not in self._cache:
            self._cache[key] = step_end_times(self.epochs[instance])
        return self._cache[key]

    def token_times(self, request_id: int) -> np.ndarray:
        """Instants of every output token of one request (the first comes out of prefill)."""
        first = self.requests["first_token_at"].to_numpy()[request_id]
        if np.isnan(first):
            return np.empty(0)
        runs = self.runs
        if "by_request" not in self._cache:  # run numbers grouped by request, in time order
            order = np.argsort(runs["request"], kind="stable")
            self._cache["by_request"] = (order, runs["request"][order])
        order, sorted_requests = self._cache["by_request"]
        lo, hi = np.searchsorted(sorted_requests, [request_id, request_id + 1])
        parts = [np.array([first])]
        for r in order[lo:hi]:  # runs were logged in time order
            ends = self._step_ends(int(runs["instance"][r]))
            f = int(runs["first_step"][r])
            parts.append(ends[f:f + int(runs["steps"][r])])
        return np.concatenate(parts)

    def _runs_timed(self) -> dict[str, np.ndarray]:
        """Decode runs with their first and last token instants and the gap before each run."""
        if "runs" in self._cache:
            return self._cache["runs"]
        first_token = self.requests["first_token_at"].to_numpy()
        runs = self.runs
        req, inst = runs["request"], runs["instance"]
        first, steps = runs["first_step"], runs["steps"]
        first_at = np.empty(len(req))
        last_at = np.empty(len(req))
        for i in np.unique(inst).tolist():
            ends = self._step_ends(i)
            mine = inst == i
            first_at[mine] = ends[first[mine]]
            last_at[mine] = ends[first[mine] + steps[mine] - 1]
        # runs were logged in time order; the first token of a run follows the request's
        # previous token: the prefill's first token, or the last token before a preemption
        # (only requests with several runs need their runs put in order)
        start_gap = first_at - first_token[req]
        again = np.flatnonzero(np.bincount(req, minlength=len(first_token))[req] > 1)
        if len(again):
            order = again[np.argsort(req[again], kind="stable")]
            same = req[order][1:] == req[order][:-1]
            later, earlier = order[1:][same], order[:-1][same]
            start_gap[later] = first_at[later] - last_at[earlier]
        self._cache["runs"] = {"request": req, "instance": inst, "first_step": first,
                               "steps": steps, "first_at": first_at, "last_at": last_at,
                               "start_gap": start_gap}
        return self._cache["runs"]

    def itl_distribution(self) -> tuple[np.ndarray, np.ndarray]:
        """All inter-token gaps of completed requests as (sorted gap values s, multiplicities)."""
        if "itl" in self._cache:
            return self._cache["itl"]
        completed = self.requests["completed"].to_numpy()
        runs = self._runs_timed()
        keep = completed[runs["request"]]
        inst, first, steps = runs["instance"][keep], runs["first_step"][keep], runs["steps"][keep]
        instances = np.unique(inst).tolist()
        # one buffer sized for every gap (at most the runs' first gaps and every step's gap
        # after the first), filled instance by instance: no list of pieces to concatenate
        starts = int(keep.sum())
        room = starts + sum(max(len(self._step_ends(i)) - 1, 0) for i in instances)
        v = np.empty(room)
        c = np.empty(room, dtype=np.int32)
        v[:starts] = runs["start_gap"][keep]
        c[:starts] = 1
        filled = starts
        for i in instances:
            ends = self._step_ends(i)
            mine = inst == i
            f, m = first[mine], steps[mine]
            # steps f+1 .. f+m-1 of each run are gaps within the run: count the runs covering
            # each step with a difference array
            cover = np.cumsum(np.bincount(f + 1, minlength=len(ends) + 1)
                              - np.bincount(f + m, minlength=len(ends) + 1))[1:len(ends)]
            covered = cover > 0
            size = int(covered.sum())
            v[filled:filled + size] = np.diff(ends)[covered]
            c[filled:filled + size] = cover[covered]  # runs covering one step
            filled += size
        unsorted = [v[:filled]]
        del v
        order, v = stable_sort(unsorted)  # frees the unsorted buffer once v is sorted
        c = c[order]
        del order
        self._cache["itl"] = (v, c)
        return self._cache["itl"]

    def max_token_gap(self) -> np.ndarray:
        """Per request, its largest inter-token gap (s); NaN where it has fewer than 2 tokens
        (computed once, read-only)."""
        if "max_gap" in self._cache:
            return self._cache["max_gap"]
        runs = self._runs_timed()
        out = np.full(len(self.requests), np.nan)
        np.fmax.at(out, runs["request"], runs["start_gap"])
        for i in np.unique(runs["instance"]).tolist():
            mine = runs["instance"] == i
            f, m = runs["first_step"][mine], runs["steps"][mine]
            multi = m > 1
            if not multi.any():
                continue
            gaps = np.append(np.diff(self._step_ends(i)), 0.0)  # gaps[s-1] = end[s] - end[s-1]
            # max over gaps[f .. f+m-2] of each run, by reduceat over (start, stop) pairs
            bounds = np.ravel(np.column_stack([f[multi], f[multi] + m[multi] - 1]))
            inner = np.maximum.reduceat(gaps, bounds)[::2]
            np.fmax.at(out, runs["request"][mine][multi], inner)
        out.flags.writeable = False
        self._cache["max_gap"] = out
        return out

    def token_gaps(self) -> np.ndarray:
        """Every inter-token gap (s) of every completed request, sorted (materialised: for big
        runs prefer :meth:`itl_distribution`, which is the same multiset, compressed)."""
        values, counts = self.itl_distribution()
        return np.repeat(values, counts)


def stable_sort(values: np.ndarray | list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(order, values[order])`` with ``order = numpy.argsort(values, kind="stable")`` (NaNs
    last, in index order), about 1.5x faster on millions of float gaps with many repeats: numpy's
    unstable sort, then each run of equal values put back in index order by one integer sort of
    (run number, index). A list of arrays is sorted as their concatenation and emptied, so that
    the unsorted values are freed as soon as the sorted copy exists (a million requests' gap
    multiset is 100 MB a copy)."""
    if isinstance(values, list):
        parts = values
        values = (parts[0] if len(parts) == 1 else np.concatenate(parts) if parts
                  else np.empty(0))
        parts.clear()
    n = len(values)
    if n < 2:
        return np.arange(n), values.copy()
    order = np.argsort(values)
    ordered = values[order]
    del values  # the caller's concatenation, if it passed a list: freed here
    new_run = ordered[1:] != ordered[:-1]
    new_run &= ~(np.isnan(ordered[1:]) & np.isnan(ordered[:-1]))
    key = np.zeros(n, dtype=np.int64)
    np.cumsum(new_run, out=key[1:])
    del new_run
    key *= n  # run numbers and indices are below n, so (run, index) packs into one int64
    key += order
    del order
    key.sort()
    key %= n
    return key, ordered  # equal values are interchangeable: ordered is values[key]


def weighted_percentiles(values: np.ndarray, counts: np.ndarray,
                         qs: tuple[float, ...]) -> list[float]:
    """``numpy.percentile(np.repeat(values, counts), q)`` (linear) for each q, without the
    repeat. ``values`` must be sorted."""
    cum = np.cumsum(counts, dtype=np.int64)
    total = int(cum[-1]) if len(cum) else 0
    if total == 0:
        return [float("nan")] * len(qs)
    out = []
    for q in qs:
        h = (total - 1) * q / 100.0
        lo = int(np.floor(h))
        hi = min(lo + 1, total - 1)
        v_lo = values[np.searchsorted(cum, lo, side="right")]
        v_hi = values[np.searchsorted(cum, hi, side="right")]
        out.append(float(v_lo + (h - lo) * (v_hi - v_lo)))
    return out


def weighted_percentile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """``numpy.percentile(np.repeat(values, counts), q)`` (linear); ``values`` sorted."""
    return weighted_percentiles(values, counts, (q,))[0]


def build_result(run: RunRecords, *, duration_s: float) -> SimResult:
    """Gather a stopped run's records into a :class:`SimResult`."""
    table, rec = run.table, run.requests
    insts = run.instances
    pool_names = [p.name for p in run.pools]
    # each instance's pool as a category code, and -1 (no pool: the request never got there)
    # last, for index -1; Categorical.from_codes gives the very column pd.Categorical(names)
    # would, ~50x faster at a million rows (no string hashing)
    pool_code = np.array([pool_names.index(inst.pool) for inst in insts] + [-1], dtype=np.int64)
    local_of = np.array([inst.local_index for inst in insts] + [-1], dtype=np.int32)

    def pool_column(index: np.ndarray) -> pd.Categorical:
        return pd.Categorical.from_codes(pool_code[index], categories=pool_names)

    prompt = table.prompt_tokens
    output = table.output_tokens
    df = pd.DataFrame({
        "request_id": np.arange(len(table), dtype=np.int64),
        "class_name": pd.Categorical.from_codes(table.class_index.astype(np.int32),
                                                categories=list(table.class_names)),
        "prompt_tokens": prompt,
        "output_tokens": output,
        "arrival_at": rec.arrival_at,
        "prefill_pool": pool_column(rec.prefill_instance),
        "prefill_instance": local_of[rec.prefill_instance],
        "cached_prompt_tokens": rec.cached_prompt_tokens,
        "prefill_start_at": rec.prefill_start_at,
        "prefill_end_at": rec.prefill_end_at,
        "first_token_at": rec.first_token_at,
        "kv_transfer_start_at": rec.kv_transfer_start_at,
        "kv_transfer_end_at": rec.kv_transfer_end_at,
        "decode_pool": pool_column(rec.decode_instance),
        "decode_instance": local_of[rec.decode_instance],
        "decode_start_at": rec.decode_start_at,
        "last_token_at": rec.last_token_at,
        "preemptions": rec.preemptions,
        "rejected": rec.rejected,
        "completed": rec.completed,
    })
    df["in_flight"] = ~(rec.completed | rec.rejected)
    df["ttft_s"] = rec.first_token_at - rec.arrival_at
    df["e2e_s"] = rec.last_token_at - rec.arrival_at
    with np.errstate(invalid="ignore", divide="ignore"):
        df["tpot_s"] = np.where(output > 1, (df["e2e_s"] - df["ttft_s"]) / (output - 1), np.nan)
    df["queue_s"] = rec.prefill_start_at - rec.arrival_at
    # a mixed instance's first token comes out as its prompt's last chunk ends
    prefill_end = np.where(np.isnan(rec.prefill_end_at), rec.first_token_at, rec.prefill_end_at)
    df["prefill_s"] = prefill_end - rec.prefill_start_at
    df["transfer_s"] = rec.kv_transfer_end_at - rec.kv_transfer_start_at
    df["decode_s"] = rec.last_token_at - rec.decode_start_at

    ts = run.timeseries
    ts_inst = np.frombuffer(ts.instance, dtype=np.int32)
    names = [inst.name for inst in insts]
    timeseries = pd.DataFrame({
        "instance": pd.Categorical.from_codes(ts_inst, categories=names),
        "pool": pd.Categorical.from_codes(pool_code[ts_inst], categories=pool_names),
        "time_at": np.frombuffer(ts.time_at, dtype=np.float64).copy(),
        "busy": np.frombuffer(ts.busy, dtype=np.int8).astype(bool),
        "batch_size": np.frombuffer(ts.batch_size, dtype=np.int32).copy(),
        "kv_blocks_used": np.frombuffer(ts.kv_blocks_used, dtype=np.int64).copy(),
        "kv_blocks_capacity": np.frombuffer(ts.kv_blocks_capacity, dtype=np.int64).copy(),
        "queue_length": np.frombuffer(ts.queue_length, dtype=np.int32).copy(),
    })

    links = pd.DataFrame(run.links, columns=["link", "bandwidth", "latency_s", "bytes_moved",
                                             "busy_s", "transfers", "peak_concurrency"])

    epochs = {inst.index: inst.epochs.arrays() for inst in insts if inst.epochs is not None}
    instances = pd.DataFrame({
        "instance": [inst.name for inst in insts],
        "pool": [inst.pool for inst in insts],
        "role": [inst.role for inst in insts],
        "busy_s": [inst.busy_s for inst in insts],
        "peak_kv_blocks": [inst.peak_kv_blocks for inst in insts],
        "kv_blocks_capacity": [inst.kv_blocks_capacity for inst in insts],
        "decode_steps": [int(epochs[inst.index]["steps"].sum()) if inst.index in epochs else 0
                         for inst in insts],
    })

    pools: dict[str, dict[str, Any]] = {}
    capacity = {inst.pool: inst.kv_blocks_capacity for inst in insts}
    for pool in run.pools:
        busy = float(instances.loc[instances["pool"] == pool.name, "busy_s"].sum())
        dep = pool.deployment
        pools[pool.name] = {
            "role": pool.role,
            "hardware": dep.hardware.name,
            "instances": pool.instances,
            "chips_per_instance": dep.chips,
            "chips": dep.chips * pool.instances,
            "busy_s": busy,
            "utilization": busy / (pool.instances * duration_s) if duration_s > 0 else 0.0,
            "kv_blocks_capacity": capacity[pool.name],
        }
        if pool.role == "mixed":  # for billing input and output tokens apart
            pools[pool.name]["prefill_busy_s"] = float(sum(
                inst.prefill_busy_s for inst in insts if inst.pool == pool.name))
    return SimResult(requests=df, timeseries=timeseries, links=links, instances=instances,
                     pools=pools, duration_s=float(duration_s), seed=run.seed, epochs=epochs,
                     runs=run.runs.arrays())
