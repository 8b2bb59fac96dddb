"""End-to-end validation: the simulator, run the way the published benchmarks were run.

The cost model's knobs were fitted against ``reference/published.md`` with a closed-form
steady-state estimator (:mod:`infersim.cost.throughput`). Users trust the *simulator*, so this
script runs the SimPy engine itself (``infersim.simulate``) on one scenario per published
measurement and compares what it reports with the published figure, the calibrated estimator's
prediction beside it:

* **rows 1-7**, TensorRT-LLM offline throughput of Llama-3.1-8B FP8 on one H100: ``N`` requests of
  fixed ISL/OSL all queued at t = 0 (``trtllm-bench``, with NVIDIA's request counts per ISL/OSL)
  on one colocated ``mixed`` instance with TensorRT-LLM's defaults (in-flight batching = chunked
  prefill, ``max_batch_size`` 2048, ``max_num_tokens`` 8192) and its ``GUARANTEED_NO_EVICT``
  admission: a request starts only when its whole prompt + output KV is free, and nothing is ever
  preempted (the pool's ``kv_reservation: full``). The table below the main one shows what the
  engine gives with vLLM-style on-demand KV and preemption instead.
* **rows 8-11**, vLLM 0.6.0 with ShareGPT-like lognormal lengths (means 230 in / 200 out): offline
  (5,000 prompts at t = 0, output tokens/s) and online (500 prompts, Poisson 4 req/s, median TTFT
  and median TPOT), vLLM 0.6.0's defaults (prefill-first, ``max_num_seqs`` 256,
  ``max_num_batched_tokens = max(max_model_len, 2048)``). Several seeds; their mean is reported.
  vLLM 0.6's host time per step is the pool's ``step_overhead``: 6.5 ms at TP4 on H100 (rows
  8-9), 2 ms at TP1 on A100 (rows 10-11). Both were fitted on these very rows, so rows 8-11 check
  that the engine keeps what the fit put in, not the fit itself (docs/engine-validation.md D2).
* **rows 12-14**, single stream: one request alone (ITL = decode time / (output − 1), USER speed
  its inverse; TTFT).

The estimator column predicts each row for the deployment the scenario runs, the pool's
``step_overhead`` included, so ``sim/est`` isolates what the engine adds (batching, queueing, ramp
and drain) from the cost model it shares with the estimator.

**Throughput is measured as the benchmarks measure it**: total output tokens over the makespan
(t = 0 to the last token), which is ``trtllm-bench``'s "Total Output Throughput" and
``benchmark_throughput``'s elapsed-time figure. The run therefore includes the ramp (everyone
prefilling at once) and the drain tail (the last, longest requests decoding in a shrinking
batch), which is why the request counts are the published ones. The steady-state rate (tokens
emitted between the first completion and the last request's start of decoding, over that span)
is printed beside it to show how much the ramp and the tail cost.

Scenarios live in ``scenarios/validation/``; each row is one of them plus ``--set``-style
overrides, so any row can be rerun with ``infersim run``. Run::

    python benchmarks/validate_published.py            # full: published request counts, 3 seeds
    python benchmarks/validate_published.py --quick    # fewer requests, one seed (seconds)
    python benchmarks/validate_published.py --diagnose # also docs/engine-validation.md's D1-D4
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import infersim
from infersim.cost import Deployment, placement
from infersim.cost.calibration import LPU_ROW13_OUTPUT, LPU_ROW13_PROMPT, PublishedFigure

SCENARIOS = Path(__file__).resolve().parent.parent / "scenarios" / "validation"

# NVIDIA's perf-overview request counts (prepare_dataset.py --num-requests) per ISL/OSL.
TRTLLM_ROWS: tuple[tuple[str, int, int, int], ...] = (
    ("1", 128, 128, 30000),
    ("2", 128, 2048, 3000),
    ("3", 1000, 1000, 3000),
    ("4", 2048, 128, 3000),
    ("5", 2048, 2048, 1500),
    ("6", 5000, 500, 1500),
    ("7", 20000, 2000, 1000),
)
TRTLLM_MAX_BATCH_SIZE = 2048
VLLM_OFFLINE_PROMPTS = 5000       # published.md row 8
VLLM_ONLINE_PROMPTS = 500         # the vLLM v0.6.0 blog's ShareGPT runs
VLLM_ONLINE_RATE = 4.0
FULL_SEEDS = (1, 2, 3)
QUICK_SEEDS = (1,)
# --quick: request counts divided by this (at least QUICK_MIN_REQUESTS)
QUICK_DIVISOR = 5
QUICK_MIN_REQUESTS = 100


class ValidationError(RuntimeError):
    """A run that cannot stand for its published row (a request rejected or left unfinished)."""


@dataclass(frozen=True)
class Measured:
    """What one simulated row gave: the figure (mean over seeds) and each seed's value."""

    row: str
    value: float
    per_seed: tuple[float, ...]
    steady: float | None = None   # steady-state throughput (offline rows), mean over seeds
    note: str = ""
    # the pool's serving-framework step overhead, when the scenario sets one (None: the chip's)
    step_overhead_s: float | None = None


@dataclass(frozen=True)
class Case:
    """One scenario run (possibly over several seeds) and the published rows it produces."""

    rows: tuple[str, ...]
    scenario: str                          # file name in scenarios/validation/
    overrides: tuple[str, ...]
    seeds: tuple[int, ...]
    measure: Callable[[infersim.api.Result], dict[str, float]]
    steady: bool = False                   # offline run: also report the steady-state rate
    note: str = ""
    # a layout other than the figure's (hardware, model, precision, tp, pp), with the reason
    layout_deviation: str = ""


# -- measuring a run --------------------------------------------------------------------------

def check_complete(result: infersim.api.Result, label: str) -> None:
    """Every request must have completed: a rejected one (its KV fits nowhere) would silently
    make a throughput or latency figure describe a different workload."""
    requests = result.requests
    done = int(requests["completed"].sum())
    if done != len(requests):
        rejected = requests[requests["rejected"].to_numpy()]
        largest = int((rejected["prompt_tokens"] + rejected["output_tokens"]).max()) \
            if len(rejected) else 0
        room = {name: f"{pool['kv_blocks_capacity']:,} KV blocks"
                for name, pool in result.sim.pools.items()}
        raise ValidationError(f"{label}: {done} of {len(requests)} requests completed "
                              f"({len(rejected)} rejected, the largest needing {largest:,} "
                              f"tokens of KV; instances hold {room})")


def makespan_output_throughput(result: infersim.api.Result) -> float:
    """Output tokens/s over the whole run, t = 0 to the last token (trtllm-bench, vLLM)."""
    requests = result.requests
    makespan = float(requests["last_token_at"].max() - requests["arrival_at"].min())
    return float(requests["output_tokens"].sum()) / makespan


def steady_output_throughput(result: infersim.api.Result, min_share: float = 0.5) -> float:
    """Output tokens/s while the engine is saturated: tokens emitted after the first request
    completes (the ramp, where everyone is prefilling, is over) and up to the instant the last
    request starts decoding (after it nobody waits and the batch drains), over that span.

    NaN when that span is under ``min_share`` of the makespan: with few requests per batch
    (fixed lengths finish in waves) the span holds little more than one wave's refill, and its
    rate says nothing about a steady state."""
    requests = result.requests
    start = float(requests["last_token_at"].min())
    end = float(requests["decode_start_at"].max())
    makespan = float(requests["last_token_at"].max() - requests["arrival_at"].min())
    if not end - start >= min_share * makespan:
        return math.nan
    tokens = 0
    for rid in range(len(requests)):
        times = result.token_times(rid)
        tokens += int(np.searchsorted(times, end, side="right")
                      - np.searchsorted(times, start, side="right"))
    return tokens / (end - start)


def single_stream_itl_s(result: infersim.api.Result) -> float:
    """Mean inter-token gap of the one request: decode time / (output tokens − 1)."""
    times = result.token_times(0)
    if len(times) < 2:
        raise ValidationError("single stream: the request emitted fewer than two tokens")
    return float(np.diff(times).mean())


def _offline(row: str) -> Callable[[infersim.api.Result], dict[str, float]]:
    return lambda result: {row: makespan_output_throughput(result)}


def _online(ttft_row: str, tpot_row: str) -> Callable[[infersim.api.Result], dict[str, float]]:
    return lambda result: {ttft_row: float(result.summary["median_ttft_ms"]),
                           tpot_row: float(result.summary["median_tpot_ms"])}


def _user_tok_s(row: str) -> Callable[[infersim.api.Result], dict[str, float]]:
    return lambda result: {row: 1.0 / single_stream_itl_s(result)}


def _trn2(itl_row: str, ttft_row: str) -> Callable[[infersim.api.Result], dict[str, float]]:
    return lambda result: {itl_row: 1e3 * single_stream_itl_s(result),
                           ttft_row: 1e3 * float(result.requests["ttft_s"].iloc[0])}


# -- the cases ----------------------------------------------------------------------------------

def reservation_batch_cap(isl: int, osl: int, *, block_size: int = 16) -> int:
    """Sequences TensorRT-LLM's GUARANTEED_NO_EVICT runs at once with fixed lengths: whole
    requests (prompt + output, in KV blocks) that fit the instance's KV blocks, at most its
    max_batch_size. The engine's ``kv_reservation: full`` reaches it by admission alone."""
    figure = _figures()["1"]
    kv_blocks = placement(figure.deployment()).kv_capacity_tokens // block_size
    per_request = -(-(isl + osl) // block_size)
    return min(TRTLLM_MAX_BATCH_SIZE, kv_blocks // per_request)


def _scaled(n: int, quick: bool) -> int:
    return max(QUICK_MIN_REQUESTS, n // QUICK_DIVISOR) if quick else n


def trtllm_case(row: str, isl: int, osl: int, requests: int, *, reserve: bool = True,
                seeds: Sequence[int] = (1,)) -> Case:
    """Rows 1-7: fixed-length offline run, GUARANTEED_NO_EVICT admission as the scenario ships
    it (``reserve``), else the engine's on-demand KV with recompute preemption."""
    kv = () if reserve else ("pools.gpu.kv_reservation=on_demand",)
    return Case(rows=(row,), scenario="trtllm-h100-llama31-8b-fp8.yaml",
                overrides=(f"workload.prompt_tokens.value={isl}",
                           f"workload.output_tokens.value={osl}",
                           f"workload.requests={requests}", *kv),
                seeds=tuple(seeds), measure=_offline(row), steady=True,
                note=f"ISL/OSL {isl}/{osl}, N={requests}, "
                     + ("whole-request KV reserved" if reserve else "KV on demand"))


def cases(quick: bool = False) -> list[Case]:
    """Every simulated row, in published.md order."""
    seeds = QUICK_SEEDS if quick else FULL_SEEDS
    out = [trtllm_case(row, isl, osl, _scaled(n, quick)) for row, isl, osl, n in TRTLLM_ROWS]
    online = (f"workload.arrival={{process: poisson, rate: {VLLM_ONLINE_RATE:g}}}",
              f"workload.requests={_scaled(VLLM_ONLINE_PROMPTS, quick)}")
    offline_n = _scaled(VLLM_OFFLINE_PROMPTS, quick)
    for offline_row, (ttft_row, tpot_row), scenario in (
            ("8", ("9a", "9b"), "vllm060-h100x4-llama31-70b-sharegpt.yaml"),
            ("10", ("11a", "11b"), "vllm060-a100-llama31-8b-sharegpt.yaml")):
        out.append(Case(rows=(offline_row,), scenario=scenario,
                        overrides=(f"workload.requests={offline_n}",), seeds=seeds,
                        measure=_offline(offline_row), steady=True,
                        note=f"ShareGPT-like, N={offline_n}, {len(seeds)} seed(s)"))
        out.append(Case(rows=(ttft_row, tpot_row), scenario=scenario, overrides=online,
                        seeds=seeds, measure=_online(ttft_row, tpot_row),
                        note=f"Poisson {VLLM_ONLINE_RATE:g} req/s, "
                             f"N={_scaled(VLLM_ONLINE_PROMPTS, quick)}, {len(seeds)} seed(s)"))
    out.append(Case(rows=("12",), scenario="single-stream-wse3-llama31-8b.yaml", overrides=(),
                    seeds=(1,), measure=_user_tok_s("12"), note="1,000 in / 200 out"))
    out.append(Case(rows=("13",), scenario="single-stream-lpu-llama2-7b.yaml", overrides=(),
                    seeds=(1,), measure=_user_tok_s("13"),
                    note="3,584 in / 512 out (the 4K window), tp8·pp10 (holds it)"))
    out.append(Case(rows=("14a", "14b"), scenario="single-stream-trn2-llama31-70b.yaml",
                    overrides=(), seeds=(1,), measure=_trn2("14a", "14b"),
                    note="10,000 in / 1,500 out, prompt in one pass"))
    return out


def check_layout(result: infersim.api.Result, case: Case) -> None:
    """The scenario must run what the published row measured: same chip, model, precision and
    tensor/pipeline layout (unless the case states why it differs)."""
    (pool,) = result.scenario.pools.values()
    precision = pool.precision or result.scenario.precision
    simulated = (pool.hardware, result.scenario.model, precision, pool.tp, pool.pp)
    for row in case.rows:
        f = _figures()[row]
        published = (f.hardware, f.model, f.precision, f.tp, f.pp)
        if simulated != published and not case.layout_deviation:
            raise ValidationError(f"{case.scenario} runs {simulated}; row {row} was measured "
                                  f"on {published}")


def pool_step_overhead_s(result: infersim.api.Result) -> float | None:
    """The one pool's serving-framework step overhead in seconds (None: the chip's knob)."""
    (pool,) = result.scenario.pools.values()
    return pool.step_overhead


def run_case(case: Case) -> list[Measured]:
    """Simulate ``case`` once per seed; the mean over seeds stands for each of its rows."""
    per_row: dict[str, list[float]] = {row: [] for row in case.rows}
    steady: list[float] = []
    overhead: float | None = None
    for seed in case.seeds:
        result = infersim.simulate(SCENARIOS / case.scenario, seed=seed,
                                   overrides=list(case.overrides))
        check_complete(result, f"{case.scenario} {' '.join(case.overrides)} seed {seed}")
        check_layout(result, case)
        overhead = pool_step_overhead_s(result)
        for row, value in case.measure(result).items():
            per_row[row].append(value)
        if case.steady:
            steady.append(steady_output_throughput(result))
    note = case.note if not case.layout_deviation else f"{case.note} ({case.layout_deviation})"
    if overhead is not None:
        note = f"{note}, step overhead {1e3 * overhead:g} ms"
    return [Measured(row=row, value=statistics.fmean(values), per_seed=tuple(values),
                     steady=statistics.fmean(steady) if steady else None, note=note,
                     step_overhead_s=overhead)
            for row, values in per_row.items()]


# -- the report ---------------------------------------------------------------------------------

def _figures() -> dict[str, PublishedFigure]:
    from infersim.cost.calibration import published_figures

    return {f.row: f for f in published_figures()}


@dataclass(frozen=True)
class Row:
    figure: PublishedFigure
    measured: Measured
    estimator: float

    @property
    def error(self) -> float:
        return (self.measured.value - self.figure.published) / self.figure.published

    @property
    def estimator_error(self) -> float:
        return (self.estimator - self.figure.published) / self.figure.published

    @property
    def engine_vs_estimator(self) -> float:
        return (self.measured.value - self.estimator) / self.estimator


def simulated_deployment(figure: PublishedFigure, step_overhead_s: float | None) -> Deployment:
    """The row's deployment as the scenario runs it: the published layout, with the pool's
    serving-framework step overhead where the scenario sets one."""
    return dataclasses.replace(figure.deployment(), step_overhead_s=step_overhead_s)


def estimate(figure: PublishedFigure, step_overhead_s: float | None) -> float:
    """The closed-form estimator's figure for the deployment the scenario runs."""
    return figure.predict(simulated_deployment(figure, step_overhead_s))


def validate(quick: bool = False) -> list[Row]:
    """Run every case and pair each simulated figure with the published one and the estimator's
    (for the same deployment, the pool's step overhead included)."""
    figures = _figures()
    rows = []
    for case in cases(quick):
        for measured in run_case(case):
            figure = figures[measured.row]
            rows.append(Row(figure, measured, estimate(figure, measured.step_overhead_s)))
    return rows


def _fmt(value: float, unit: str) -> str:
    return f"{value:,.0f} {unit}" if unit == "tok/s" else f"{value:,.1f} {unit}"


def format_table(rows: Sequence[Row]) -> str:
    header = (f"{'row':>4}  {'published':>12} {'simulated':>12} {'error':>7}  "
              f"{'estimator':>12} {'error':>7}  {'sim/est':>7}  {'steady':>10}  conditions")
    lines = [header, "-" * len(header)]
    for r in rows:
        f, m = r.figure, r.measured
        steady = f"{m.steady:,.0f}" if m.steady is not None and math.isfinite(m.steady) else ""
        spread = ""
        if len(m.per_seed) > 1:
            spread = f"; seeds {min(m.per_seed):,.1f}..{max(m.per_seed):,.1f}"
        lines.append(f"{f.row:>4}  {_fmt(f.published, f.unit):>12} {_fmt(m.value, f.unit):>12} "
                     f"{100 * r.error:>+6.1f}%  {_fmt(r.estimator, f.unit):>12} "
                     f"{100 * r.estimator_error:>+6.1f}%  {100 * r.engine_vs_estimator:>+6.1f}%  "
                     f"{steady:>10}  {f.hardware} {f.model} {f.precision} {f.kind}: {m.note}{spread}")
    errors = [abs(r.error) for r in rows]
    worst = max(rows, key=lambda r: abs(r.error))
    lines.append("")
    lines.append(f"simulator: median |error| {100 * statistics.median(errors):.1f} %, worst row "
                 f"{worst.figure.row} ({100 * worst.error:+.1f} %) over {len(rows)} figures")
    est = [abs(r.estimator_error) for r in rows]
    lines.append(f"estimator: median |error| {100 * statistics.median(est):.1f} % on the same "
                 f"figures")
    return "\n".join(lines)


def reservation_ablation(quick: bool = False) -> str:
    """Rows 1-7 with vLLM-style admission (KV on demand, preemption by recompute) at
    TensorRT-LLM's max_batch_size 2048: what GUARANTEED_NO_EVICT's whole-request reservation
    changes."""
    lines = [f"{'row':>4}  {'reserved':>10} {'on demand':>10}  {'preempted':>9}  ISL/OSL"]
    figures = _figures()
    for row, isl, osl, n in TRTLLM_ROWS:
        values, preempted = [], 0
        for reserve in (True, False):
            case = trtllm_case(row, isl, osl, _scaled(n, quick), reserve=reserve)
            result = infersim.simulate(SCENARIOS / case.scenario, seed=1,
                                       overrides=list(case.overrides))
            check_complete(result, f"row {row}")
            values.append(makespan_output_throughput(result))
            if not reserve:
                preempted = int(result.requests["preemptions"].sum())
        pub = figures[row].published
        lines.append(f"{row:>4}  {values[0]:>10,.0f} {values[1]:>10,.0f}  {preempted:>9,}  "
                     f"{isl}/{osl}  (on demand {100 * (values[1] - pub) / pub:+.1f} % "
                     f"vs published)")
    return "\n".join(lines)


# -- diagnostics (docs/engine-validation.md, D1-D4) ----------------------------------------------------

VLLM_BLOG_SCHEDULER_STEPS = 10   # the vLLM v0.6.0 blog ran --num-scheduler-steps 10
VLLM_CASES = (("8", "9", "vllm060-h100x4-llama31-70b-sharegpt.yaml", 4096),
              ("10", "11", "vllm060-a100-llama31-8b-sharegpt.yaml", 131072))


def _online_overrides(requests: int) -> list[str]:
    return [f"workload.arrival={{process: poisson, rate: {VLLM_ONLINE_RATE:g}}}",
            f"workload.requests={requests}"]


def ttft_breakdown(quick: bool = False) -> str:
    """D1: the engine's median TTFT split into queueing and prefill, and what vLLM 0.6's
    multi-step scheduling (wait half a step group) and asynchronous output (one step late) add."""
    k = VLLM_BLOG_SCHEDULER_STEPS
    lines = [f"{'row':>4}  {'queue':>7} {'prefill':>8} {'TTFT':>7} {'TPOT':>6}  "
             f"{'TTFT + (' + str(k) + '/2+1)·TPOT':>22}  published"]
    figures = _figures()
    for _, online_row, scenario, _ in VLLM_CASES:
        result = infersim.simulate(SCENARIOS / scenario, seed=1, overrides=_online_overrides(
            _scaled(VLLM_ONLINE_PROMPTS, quick)))
        check_complete(result, scenario)
        q = result.requests
        ttft = 1e3 * float(q["ttft_s"].median())
        tpot = float(result.summary["median_tpot_ms"])
        corrected = ttft + (k / 2 + 1) * tpot
        published = figures[online_row + "a"].published
        lines.append(f"{online_row + 'a':>4}  {1e3 * q['queue_s'].median():>5.1f}ms "
                     f"{1e3 * q['prefill_s'].median():>6.1f}ms {ttft:>5.1f}ms {tpot:>4.1f}ms  "
                     f"{corrected:>20.1f}ms  {published:.0f} ms "
                     f"({100 * (corrected - published) / published:+.1f} %)")
    return "\n".join(lines)


def offline_decomposition(quick: bool = False) -> str:
    """D3: from the calibrated estimator (for the scenario's deployment, its step overhead
    included) to the engine's makespan figure, one assumption at a time: realised (clipped)
    lengths, the engine's prefill batch size, steady state, makespan."""
    from infersim.cost import prefill_time
    from infersim.cost.throughput import LengthStats, offline_throughput, vllm_060

    figures = _figures()
    lines = []
    for row, _, scenario, max_model_len in VLLM_CASES:
        result = infersim.simulate(SCENARIOS / scenario, seed=1, overrides=[
            f"workload.requests={_scaled(VLLM_OFFLINE_PROMPTS, quick)}"])
        check_complete(result, scenario)
        q = result.requests
        overhead = pool_step_overhead_s(result)
        dep = simulated_deployment(figures[row], overhead)
        prompts, outputs = q["prompt_tokens"], q["output_tokens"]
        lengths = LengthStats(mean_input=float(prompts.mean()), mean_output=float(outputs.mean()),
                              median_input=float(prompts.median()),
                              output_second_moment=float((outputs ** 2).mean()))
        realised = offline_throughput(dep, lengths,
                                      vllm_060(max_model_len,
                                               scheduler_steps=VLLM_BLOG_SCHEDULER_STEPS))
        # prefill-first: requests prefilled together start at the same instant
        steps = q.groupby("prefill_start_at")["prompt_tokens"].apply(list)
        per_step = len(q) / len(steps)
        prefill_s = sum(prefill_time(dep, list(batch)) for batch in steps)
        makespan = float(q["last_token_at"].max())
        size = max(1, round(per_step))
        per_request = prefill_time(dep, (round(lengths.mean_input),) * size) / size
        cycle = ((lengths.mean_output - 1) * realised.decode_step_s
                 + realised.batch_size * per_request)
        engine_batching = realised.batch_size * lengths.mean_output / cycle
        lines += [f"row {row}: {len(q)} requests, realised mean in/out {lengths.mean_input:.0f}/"
                  f"{lengths.mean_output:.0f}, E[out²] {lengths.output_sq:,.0f}; "
                  f"{len(steps):,} prefill steps, {per_step:.1f} prompts each, "
                  f"{100 * prefill_s / makespan:.0f} % of the makespan",
                  f"  estimator, ShareGPT fit (230/200, σ 1)        "
                  f"{estimate(figures[row], overhead):>7,.0f} tok/s",
                  f"  ... with the realised lengths                 "
                  f"{realised.output_tokens_per_s:>7,.0f}",
                  f"  ... and the engine's prefill batch ({per_step:.1f})      "
                  f"{engine_batching:>7,.0f}",
                  f"  engine, steady state                          "
                  f"{steady_output_throughput(result):>7,.0f}",
                  f"  engine, makespan                              "
                  f"{makespan_output_throughput(result):>7,.0f}"]
    return "\n".join(lines)


# D2: the H100 TP4 rows across the interpolation's bracket and the fitted value; the A100 TP1 rows
# at their own fitted value and at the H100 TP4 one (an out-of-sample check of "one vLLM overhead").
STEP_OVERHEAD_WHAT_IF_MS = {"8": (2.0, 5.5, 6.5, 7.0), "10": (2.0, 6.5)}


def step_overhead_what_if(overheads_ms: dict[str, Sequence[float]] | None = None,
                          quick: bool = False) -> str:
    """D2: the vLLM rows with the pool's ``step_overhead`` set to each value (``--set
    pools.gpu.step_overhead=...``, everything else as shipped), the TTFT corrected as in D1."""
    overheads_ms = STEP_OVERHEAD_WHAT_IF_MS if overheads_ms is None else overheads_ms
    figures = _figures()
    seeds = QUICK_SEEDS if quick else FULL_SEEDS
    k = VLLM_BLOG_SCHEDULER_STEPS
    lines = [f"{'row':>4} {'overhead':>8}  {'offline tok/s':>16} {'TPOT':>16} "
             f"{'TTFT+' + str(k // 2 + 1) + '·TPOT':>16}"]
    for row, online_row, scenario, _ in VLLM_CASES:
        for ms in overheads_ms.get(row, ()):
            setting = [f"pools.gpu.step_overhead={ms:g} ms"]
            offline, tpot, ttft = [], [], []
            for seed in seeds:
                requests = f"workload.requests={_scaled(VLLM_OFFLINE_PROMPTS, quick)}"
                off = infersim.simulate(SCENARIOS / scenario, seed=seed,
                                        overrides=[*setting, requests])
                on = infersim.simulate(SCENARIOS / scenario, seed=seed, overrides=[
                    *setting, *_online_overrides(_scaled(VLLM_ONLINE_PROMPTS, quick))])
                check_complete(off, f"{scenario} {setting[0]}")
                check_complete(on, f"{scenario} {setting[0]}")
                offline.append(makespan_output_throughput(off))
                tpot.append(float(on.summary["median_tpot_ms"]))
                ttft.append(float(on.summary["median_ttft_ms"]))
            t, p = statistics.fmean(tpot), statistics.fmean(offline)
            corrected = statistics.fmean(ttft) + (k / 2 + 1) * t
            cells = []
            for value, fig_row, fmt in ((p, row, ",.0f"), (t, online_row + "b", ".2f"),
                                        (corrected, online_row + "a", ".1f")):
                pub = figures[fig_row].published
                cells.append(f"{value:{fmt}} ({100 * (value - pub) / pub:+.1f}%)")
            lines.append(f"{row + '-' + online_row:>5} {ms:>6g}ms  {cells[0]:>16} {cells[1]:>16} "
                         f"{cells[2]:>16}")
    return "\n".join(lines)


def lpu_context_fit() -> str:
    """D4 (resolved): KV room of the calibrated row-13 layout, and of one stage fewer, against the
    row's context."""
    figure = _figures()["13"]
    need = LPU_ROW13_PROMPT + LPU_ROW13_OUTPUT
    lines = []
    for pp in (figure.pp - 1, figure.pp):
        dep = dataclasses.replace(figure.deployment(), pp=pp)
        room = placement(dep).kv_capacity_tokens
        lines.append(f"lpu tp{dep.tp}·pp{pp}: KV room {room:,} tokens, the row needs {need:,}: "
                     f"{'fits' if room >= need else 'does not fit'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"request counts / {QUICK_DIVISOR}, one seed")
    parser.add_argument("--no-ablation", action="store_true",
                        help="skip the rows 1-7 run without KV reservation")
    parser.add_argument("--diagnose", action="store_true",
                        help="also print the diagnoses of docs/engine-validation.md (D1-D4)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    rows = validate(quick=args.quick)
    print(format_table(rows))
    if not args.no_ablation:
        print("\nRows 1-7, output tok/s, GUARANTEED_NO_EVICT (kv_reservation: full, reserved) vs "
              "on-demand KV with preemption, both at max_batch_size 2048:")
        print(reservation_ablation(quick=args.quick))
    if args.diagnose:
        print("\nD1. Online TTFT, median parts (seed 1), and with vLLM 0.6's multi-step "
              "scheduling and async output added:")
        print(ttft_breakdown(quick=args.quick))
        print("\nD2. The vLLM rows against the pool's step_overhead (everything else shipped; "
              "rows 10-11 at 6.5 ms: out of sample):")
        print(step_overhead_what_if(quick=args.quick))
        print("\nD3. Offline ShareGPT rows, estimator to engine one assumption at a time (seed 1):")
        print(offline_decomposition(quick=args.quick))
        print("\nD4 (resolved). Row 13's calibrated layout and one stage fewer:")
        print(lpu_context_fit())
    print(f"\n{'quick' if args.quick else 'full'} run, {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
