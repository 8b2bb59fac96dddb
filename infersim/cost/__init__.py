"""The roofline cost model: how long one engine step takes on one instance, as pure functions.

Nothing here simulates time or imports simpy: the engine asks :func:`step_time` (or, for runs of
pure decode steps, :func:`decode_step_coefficients`) and yields that long. See
``docs/cost-model.md`` for the equations and the calibration against published measurements.
"""

from infersim.cost.comm import (
    ALLREDUCE_BUS_EFFICIENCY,
    Fabric,
    allreduce_time,
    kv_transfer_time,
    send_recv_time,
)
from infersim.cost.layout import check_layout, valid_tensor_parallel
from infersim.cost.memory import (
    Layout,
    Placement,
    advised_layout,
    check_fits,
    kv_cache_bytes,
    min_chips,
    placement,
    smallest_layout,
)
from infersim.cost.pipeline import decode_round_coefficients
from infersim.cost.step import (
    decode_step_coefficients,
    decode_time,
    expected_distinct_experts,
    prefill_time,
    ridge_point,
    step_time,
    step_time_s,
)
from infersim.cost.throughput import (
    TENSORRT_LLM,
    EngineConfig,
    LengthStats,
    OfflineEstimate,
    OnlineEstimate,
    fixed_lengths,
    lognormal_lengths,
    offline_throughput,
    online_latency,
    single_stream,
    vllm_060,
)
from infersim.cost.types import Deployment, StepBatch, StepCost, check_tensor_parallel

__all__ = [
    "ALLREDUCE_BUS_EFFICIENCY",
    "TENSORRT_LLM",
    "Deployment",
    "EngineConfig",
    "Fabric",
    "Layout",
    "LengthStats",
    "OfflineEstimate",
    "OnlineEstimate",
    "Placement",
    "StepBatch",
    "StepCost",
    "advised_layout",
    "allreduce_time",
    "check_fits",
    "check_layout",
    "check_tensor_parallel",
    "decode_round_coefficients",
    "decode_step_coefficients",
    "decode_time",
    "expected_distinct_experts",
    "fixed_lengths",
    "kv_cache_bytes",
    "kv_transfer_time",
    "lognormal_lengths",
    "min_chips",
    "offline_throughput",
    "online_latency",
    "placement",
    "prefill_time",
    "ridge_point",
    "send_recv_time",
    "single_stream",
    "smallest_layout",
    "step_time",
    "step_time_s",
    "valid_tensor_parallel",
    "vllm_060",
]
