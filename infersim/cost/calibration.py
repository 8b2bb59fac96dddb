"""The published measurements the cost model is calibrated against, and how it predicts each.

Each :class:`PublishedFigure` is one row of ``reference/published.md`` (real measurements by
others: NVIDIA's TensorRT-LLM performance overview, the vLLM v0.6.0 blog, Cerebras, Groq, AWS
Neuron): the deployment it was measured on, the engine's batching policy, the workload, the
figure, and the estimator from :mod:`infersim.cost.throughput` that predicts it. The chips'
calibration knobs (``hardware/*.yaml``, ``calibration:``) were fitted so that these predictions
land close, with one set of knobs per chip for every model on it; :func:`calibration_report`
recomputes the errors, and ``tests/test_calibration.py`` bounds them.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from infersim.cost.memory import chips_for_kv
from infersim.cost.throughput import (
    TENSORRT_LLM,
    EngineConfig,
    LengthStats,
    fixed_lengths,
    lognormal_lengths,
    offline_throughput,
    online_latency,
    single_stream,
    vllm_060,
)
from infersim.cost.types import Deployment
from infersim.errors import InfersimError

if TYPE_CHECKING:
    from infersim.hardware import HardwareProfile

Kind = Literal["AGG", "USER", "TTFT", "TPOT", "ITL"]

# ShareGPT as the vLLM benchmarks filter it (published.md, rows 8-11): lognormal, means 230 / 200.
SHAREGPT = lognormal_lengths(230.0, 200.0, sigma_input=1.0, sigma_output=1.0)


@dataclass(frozen=True)
class PublishedFigure:
    """One published measurement and how infersim predicts it."""

    row: str                 # published.md row number (with a/b when a row has two figures)
    hardware: str
    model: str
    precision: str
    tp: int
    pp: int
    kind: Kind
    conditions: str
    published: float         # in the unit of ``unit``
    unit: str                # "tok/s" or "ms"
    predict: Callable[[Deployment], float]   # deployment -> figure in ``unit``
    kv_precision: str | None = None

    def deployment(self, *, ideal: bool = False,
                   hardware: HardwareProfile | None = None) -> Deployment:
        """The deployment measured, on the shipped profile or on ``hardware`` (a variant)."""
        from infersim.hardware import load_hardware
        from infersim.model import load_model

        return Deployment(model=load_model(self.model),
                          hardware=hardware if hardware is not None else load_hardware(
                              self.hardware),
                          precision=self.precision, kv_precision=self.kv_precision,
                          tp=self.tp, pp=self.pp, ideal=ideal)


@dataclass(frozen=True)
class CalibrationResult:
    figure: PublishedFigure
    predicted: float

    @property
    def error(self) -> float:
        """Relative error of the prediction, (predicted − published) / published."""
        return (self.predicted - self.figure.published) / self.figure.published


def _offline(lengths: LengthStats, engine: EngineConfig) -> Callable[[Deployment], float]:
    return lambda dep: offline_throughput(dep, lengths, engine).output_tokens_per_s


def _online(lengths: LengthStats, rate: float, engine: EngineConfig,
            what: Literal["ttft", "tpot"]) -> Callable[[Deployment], float]:
    def predict(dep: Deployment) -> float:
        est = online_latency(dep, lengths, rate, engine)
        return 1e3 * (est.ttft_s if what == "ttft" else est.tpot_s)
    return predict


def _user_tokens_per_s(prompt: int, output: int) -> Callable[[Deployment], float]:
    return lambda dep: 1.0 / single_stream(dep, prompt, output)[1]


def _itl_ms(prompt: int, output: int) -> Callable[[Deployment], float]:
    return lambda dep: 1e3 * single_stream(dep, prompt, output)[1]


def _ttft_ms(prompt: int, output: int) -> Callable[[Deployment], float]:
    return lambda dep: 1e3 * single_stream(dep, prompt, output)[0]


def _trtllm(row: str, isl: int, osl: int, published: float) -> PublishedFigure:
    return PublishedFigure(
        row=row, hardware="h100", model="llama-3.1-8b", precision="fp8", tp=1, pp=1, kind="AGG",
        conditions=f"TensorRT-LLM offline max load, ISL/OSL {isl}/{osl}", published=published,
        unit="tok/s", predict=_offline(fixed_lengths(isl, osl), TENSORRT_LLM))


# A GroqNode holds 8 fully connected LPUs: each layer is split 8 ways (tp) and the layers are
# pipelined over as many nodes as the weights need.
LPU_TP = 8

# Row 13's "4K context" as one request: Llama-2-7B's whole 4,096-token window (its
# max_position_embeddings), 3,584 prompt tokens then 512 output tokens. A longer request would be
# refused by a real engine, so the figure cannot have been measured on one.
LPU_ROW13_PROMPT = 3584
LPU_ROW13_OUTPUT = 512


def _lpu_stages(model: str, precision: str, kv_tokens: int) -> int:
    """Fewest GroqNode stages (``LPU_TP`` chips each) that hold the weights *and* the KV cache of
    ``kv_tokens`` tokens: an LPU keeps both in SRAM, so a layout sized for the weights alone
    cannot serve the row's context (Llama-2-7B fp16: 9 stages for the weights leave 2,419 tokens
    of KV; the 4K row needs 4,096, which takes 10)."""
    from infersim.hardware import load_hardware
    from infersim.model import load_model

    dep = Deployment(model=load_model(model), hardware=load_hardware("lpu"), precision=precision,
                     tp=LPU_TP)
    return chips_for_kv(dep, 0.9, kv_tokens) // LPU_TP


def published_figures() -> tuple[PublishedFigure, ...]:
    """Every calibration target of ``reference/published.md`` rows 1-14."""
    vllm_70b = vllm_060(4096, scheduler_steps=10)     # row 8: max_model_len 4096
    vllm_8b = vllm_060(131072, scheduler_steps=10)    # Llama-3.1-8B's default context
    figures = [
        _trtllm("1", 128, 128, 28312.0),
        _trtllm("2", 128, 2048, 22714.0),
        _trtllm("3", 1000, 1000, 15220.0),
        _trtllm("4", 2048, 128, 3450.0),
        _trtllm("5", 2048, 2048, 9305.0),
        _trtllm("6", 5000, 500, 3459.0),
        _trtllm("7", 20000, 2000, 1351.0),
        PublishedFigure(row="8", hardware="h100", model="llama-3.1-70b", precision="bf16", tp=4,
                        pp=1, kind="AGG", conditions="vLLM 0.6.0 offline ShareGPT",
                        published=3701.0, unit="tok/s", predict=_offline(SHAREGPT, vllm_70b)),
        PublishedFigure(row="9a", hardware="h100", model="llama-3.1-70b", precision="bf16", tp=4,
                        pp=1, kind="TTFT", conditions="vLLM 0.6.0 online ShareGPT, 4 req/s",
                        published=179.0, unit="ms",
                        predict=_online(SHAREGPT, 4.0, vllm_70b, "ttft")),
        PublishedFigure(row="9b", hardware="h100", model="llama-3.1-70b", precision="bf16", tp=4,
                        pp=1, kind="TPOT", conditions="vLLM 0.6.0 online ShareGPT, 4 req/s",
                        published=23.6, unit="ms",
                        predict=_online(SHAREGPT, 4.0, vllm_70b, "tpot")),
        PublishedFigure(row="10", hardware="a100", model="llama-3.1-8b", precision="bf16", tp=1,
                        pp=1, kind="AGG", conditions="vLLM 0.6.0 offline ShareGPT",
                        published=4132.0, unit="tok/s", predict=_offline(SHAREGPT, vllm_8b)),
        PublishedFigure(row="11a", hardware="a100", model="llama-3.1-8b", precision="bf16", tp=1,
                        pp=1, kind="TTFT", conditions="vLLM 0.6.0 online ShareGPT, 4 req/s",
                        published=100.0, unit="ms",
                        predict=_online(SHAREGPT, 4.0, vllm_8b, "ttft")),
        PublishedFigure(row="11b", hardware="a100", model="llama-3.1-8b", precision="bf16", tp=1,
                        pp=1, kind="TPOT", conditions="vLLM 0.6.0 online ShareGPT, 4 req/s",
                        published=14.1, unit="ms",
                        predict=_online(SHAREGPT, 4.0, vllm_8b, "tpot")),
        PublishedFigure(row="12", hardware="wse3", model="llama-3.1-8b", precision="bf16", tp=1,
                        pp=1, kind="USER", conditions="single stream, 1,000-token prompt",
                        published=1800.0, unit="tok/s", predict=_user_tokens_per_s(1000, 200)),
        PublishedFigure(row="13", hardware="lpu", model="llama-2-7b", precision="fp16",
                        tp=LPU_TP,
                        pp=_lpu_stages("llama-2-7b", "fp16", LPU_ROW13_PROMPT + LPU_ROW13_OUTPUT),
                        kind="USER",
                        conditions="single stream, 4K context (3,584 in / 512 out), "
                                   "8 LPUs per stage",
                        published=750.0, unit="tok/s",
                        predict=_user_tokens_per_s(LPU_ROW13_PROMPT, LPU_ROW13_OUTPUT)),
        PublishedFigure(row="14a", hardware="trainium2", model="llama-3.1-70b", precision="bf16",
                        tp=16, pp=1, kind="ITL",
                        conditions="batch 1, 10,000 in / 1,500 out (Llama-3.3-70B: same shape)",
                        published=19.8, unit="ms", predict=_itl_ms(10000, 1500)),
        PublishedFigure(row="14b", hardware="trainium2", model="llama-3.1-70b", precision="bf16",
                        tp=16, pp=1, kind="TTFT",
                        conditions="batch 1, 10,000 in / 1,500 out (Llama-3.3-70B: same shape)",
                        published=576.0, unit="ms", predict=_ttft_ms(10000, 1500)),
    ]
    return tuple(figures)


def calibration_report(figures: tuple[PublishedFigure, ...] | None = None
                       ) -> list[CalibrationResult]:
    """Predict every published figure with the shipped, calibrated profiles."""
    figures = published_figures() if figures is None else figures
    return [CalibrationResult(fig, fig.predict(fig.deployment())) for fig in figures]


def median_abs_error(results: list[CalibrationResult]) -> float:
    return statistics.median(abs(r.error) for r in results)


def format_report(results: list[CalibrationResult]) -> str:
    """A plain-text table: row, hardware, model, figure, published, predicted, error."""
    lines = [f"{'row':>4}  {'hardware':<10} {'model':<14} {'kind':<5} {'published':>10} "
             f"{'predicted':>10} {'error':>7}  conditions"]
    for r in results:
        f = r.figure
        lines.append(f"{f.row:>4}  {f.hardware:<10} {f.model:<14} {f.kind:<5} "
                     f"{f.published:>10.1f} {r.predicted:>10.1f} {100 * r.error:>+6.1f}%  "
                     f"{f.conditions} [{f.unit}]")
    lines.append(f"median |error| {100 * median_abs_error(results):.1f}%, "
                 f"max |error| {100 * max(abs(r.error) for r in results):.1f}%")
    return "\n".join(lines)


# Knobs of a HardwareProfile that calibration may set (attribute names).
KNOBS = ("compute_efficiency", "memory_efficiency", "step_overhead_s", "layer_latency_s",
         "hop_latency_s")


def fit_knobs(hardware: str, grid: Mapping[str, Sequence[float]],
              figures: Sequence[PublishedFigure] | None = None
              ) -> tuple[dict[str, float], list[CalibrationResult]]:
    """Grid-search ``hardware``'s knobs against its published figures.

    Minimises the mean absolute log error (a factor of 2 too high and too low weigh the same)
    over every figure measured on that chip. Knobs not in ``grid`` keep their shipped values.
    Returns the best knob values and the results they give.
    """
    from infersim.hardware import load_hardware

    unknown = sorted(set(grid) - set(KNOBS))
    if unknown:
        raise InfersimError(field=f"grid.{unknown[0]}", expected="one of " + ", ".join(KNOBS))
    base = load_hardware(hardware)
    chosen = [f for f in (figures or published_figures()) if f.hardware == hardware]
    if not chosen:
        raise InfersimError(field="hardware", expected="a chip with published figures",
                            given=hardware)
    names = list(grid)
    best: tuple[float, dict[str, float], list[CalibrationResult]] | None = None
    for values in itertools.product(*(grid[n] for n in names)):
        knobs = dict(zip(names, values, strict=True))
        profile = dataclasses.replace(base, **knobs)  # type: ignore[arg-type]  # knob names checked above
        results = []
        for fig in chosen:
            try:
                predicted = fig.predict(fig.deployment(hardware=profile))
            except InfersimError:
                predicted = math.nan
            results.append(CalibrationResult(fig, predicted))
        if any(not math.isfinite(r.predicted) or r.predicted <= 0 for r in results):
            continue
        loss = statistics.fmean(abs(math.log(r.predicted / r.figure.published))
                                for r in results)
        if best is None or loss < best[0]:
            best = (loss, knobs, results)
    if best is None:
        raise InfersimError(field="grid", expected="knob values under which every figure "
                            "can be predicted", given=dict(grid))
    return best[1], best[2]
