"""Each reference measurement as a prediction: its deployment, its engine, its estimator.

A row of ``data/reference/heldout.csv`` names a chip, a model, a layout, a serving engine, a
workload and a load; this module turns it into the :class:`~infersim.cost.Deployment` and the
closed-form estimator of :mod:`infersim.cost.throughput` that predict its figure. The calibration
rows come from :func:`infersim.cost.calibration.published_figures`, which carries its own
predictors.

**Engine presets** (the only serving-framework numbers used for held-out rows; each was fixed on
the calibration set and is not tuned on held-out rows):

* ``trtllm``, ``nim-trtllm``: TensorRT-LLM's defaults (in-flight batching, max_num_tokens 8,192,
  max_batch_size 2,048, whole-request KV reservation) with the chip's own ``step_overhead``,
  which rows 1–7 (TensorRT-LLM) fixed on H100.
* ``vllm-0.6``: vLLM 0.6's defaults (prefill-first, max_num_seqs 256, one scheduler step) with its
  host time per step: 2.5 ms at TP1 and 6.5 ms at TP > 1, the values rows 10–11 (A100, TP1) and
  rows 8–9 (H100, TP4) fixed.
* ``vendor``: a vendor's single-stream speed; the chip's own knobs.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from infersim.cost import Deployment
from infersim.cost.calibration import SHAREGPT
from infersim.cost.memory import chips_for_kv
from infersim.cost.throughput import (
    TENSORRT_LLM,
    EngineConfig,
    batch_latency,
    closed_loop,
    fixed_lengths,
    offline_throughput,
    online_latency,
    single_stream,
    vllm_060,
)
from infersim.errors import InfersimError

# vLLM 0.6's host time per step, fitted on the calibration rows (docs/cost-model.md §3)
VLLM_06_STEP_OVERHEAD_TP1_S = 2.5e-3     # published.md rows 10-11 (A100, TP1)
VLLM_06_STEP_OVERHEAD_TP_S = 6.5e-3      # published.md rows 8-9 (H100, TP4)

METRICS = ("TTFT", "TPOT", "E2E", "throughput", "USER")


@dataclass(frozen=True)
class Reference:
    """One measured figure and the conditions it was measured under."""

    id: str
    set: str                  # "calibration" or "held-out"
    family: str               # hardware profile
    model: str
    precision: str
    kv_precision: str | None
    tp: int
    pp: int                   # 0: the fewest stages that hold weights + the request's KV
    engine: str
    isl: int | None           # None: ShareGPT stand-in
    osl: int | None
    load: str
    metric: str
    value: float
    unit: str
    source: str

    @property
    def label(self) -> str:
        layout = f"tp{self.tp}" + (f"·pp{self.pp}" if self.pp > 1 else "")
        lengths = "ShareGPT" if self.isl is None else f"{self.isl}/{self.osl}"
        return (f"{self.model} {self.precision} {layout}, {self.engine}, {lengths}, "
                f"{self.load.replace(':', ' ')}")


def engine_config(ref: Reference) -> tuple[EngineConfig, float | None]:
    """The engine preset of ``ref`` and the step overhead it imposes (None: the chip's)."""
    if ref.engine in ("trtllm", "nim-trtllm"):
        return TENSORRT_LLM, None
    if ref.engine == "vllm-0.6":
        overhead = VLLM_06_STEP_OVERHEAD_TP1_S if ref.tp == 1 else VLLM_06_STEP_OVERHEAD_TP_S
        return vllm_060(8192), overhead
    if ref.engine == "vendor":
        return TENSORRT_LLM, None
    raise InfersimError(field="engine", expected="trtllm, nim-trtllm, vllm-0.6 or vendor",
                        given=ref.engine)


def deployment(ref: Reference) -> Deployment:
    """The deployment ``ref`` was measured on, its stage count resolved when ``pp`` is 0."""
    from infersim.hardware import load_hardware
    from infersim.model import load_model

    _, overhead = engine_config(ref)
    dep = Deployment(model=load_model(ref.model), hardware=load_hardware(ref.family),
                     precision=ref.precision, kv_precision=ref.kv_precision, tp=ref.tp,
                     pp=max(ref.pp, 1), step_overhead_s=overhead)
    if ref.pp == 0:
        need = (ref.isl or 0) + (ref.osl or 0)
        dep = dataclasses.replace(dep, pp=chips_for_kv(dep, 0.9, max(need, 1)) // ref.tp)
    return dep


def predict(ref: Reference) -> float:
    """``ref``'s figure as the cost model predicts it, in ``ref.unit``."""
    dep = deployment(ref)
    engine, _ = engine_config(ref)
    kind, _, arg = ref.load.partition(":")
    metric = ref.metric
    if kind == "offline" and metric == "throughput":
        assert ref.isl is not None and ref.osl is not None
        return offline_throughput(dep, fixed_lengths(ref.isl, ref.osl), engine).output_tokens_per_s
    if kind == "users":
        assert ref.isl is not None and ref.osl is not None
        est = closed_loop(dep, ref.isl, ref.osl, int(arg), engine)
        return {"TTFT": 1e3 * est.ttft_s, "TPOT": 1e3 * est.tpot_s, "E2E": 1e3 * est.e2e_s,
                "throughput": est.output_tokens_per_s}[metric]
    if kind == "batch" and metric == "E2E":
        assert ref.isl is not None and ref.osl is not None
        return 1e3 * batch_latency(dep, int(arg), ref.isl, ref.osl)
    if kind == "poisson" and ref.isl is None:
        online = online_latency(dep, SHAREGPT, float(arg), engine)
        return {"TTFT": 1e3 * online.ttft_s, "TPOT": 1e3 * online.tpot_s}[metric]
    if kind == "single":
        assert ref.isl is not None and ref.osl is not None
        ttft, itl = single_stream(dep, ref.isl, ref.osl)
        return {"USER": 1.0 / itl, "TPOT": 1e3 * itl, "TTFT": 1e3 * ttft,
                "E2E": 1e3 * (ttft + (ref.osl - 1) * itl)}[metric]
    raise InfersimError(field=f"{ref.id}.load", expected="offline, users:C, batch:B, "
                        "poisson:R (ShareGPT) or single, with a metric it measures",
                        given=f"{ref.load} / {metric}")


def relative_error(predicted: float, measured: float) -> float:
    """(predicted − measured) / measured; NaN when the prediction could not be made."""
    if not math.isfinite(predicted):
        return math.nan
    return (predicted - measured) / measured
