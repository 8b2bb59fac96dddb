"""The scenario schema: the pydantic models a scenario file is checked against.

Strict, frozen models: unknown keys are refused everywhere, quantities with units go through
:func:`infersim.units.parse_quantity` (stored in SI units), and a validated :class:`Scenario` is
a value that cannot change. ``infersim schema`` prints the JSON Schema made from these models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from infersim import limits
from infersim.errors import InfersimError
from infersim.precision import PRECISIONS
from infersim.scenario.digests import input_digests as _input_digests
from infersim.scenario.digests import resolved_hash
from infersim.units import parse_quantity
from infersim.workload.config import WorkloadConfig

# Router policy names a scenario may use -> the engine's registry (infersim.sim.router.POLICIES).
# ``policy`` routes a new request to an instance of its first pool (prefill or mixed);
# ``decode_policy`` picks the decode instance that receives a finished prefill's KV cache.
ROUTER_POLICIES: dict[str, str] = {
    "least_loaded": "least_outstanding_tokens",   # least work queued or running, in tokens
    "least_outstanding_tokens": "least_outstanding_tokens",
    "shortest_queue": "join_shortest_queue",      # fewest requests queued or running
    "join_shortest_queue": "join_shortest_queue",
    "round_robin": "round_robin",                 # instances in turn
    "power_of_two": "power_of_two",               # the less loaded of two drawn at random
    "prefix_affinity": "prefix_affinity",         # the instance holding the longest cached prefix
    "kv_aware": "kv_aware",                       # the most free KV memory
}
DECODE_POLICIES: dict[str, str] = dict(ROUTER_POLICIES)

# allow_inf_nan=False: .nan and .inf are refused in every float field (see infersim.limits).
_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------

def _quantity(kind: str, example: str) -> Any:
    """A float in SI units that users may write with a unit, e.g. ``50 GB/s``."""

    def parse(value: Any) -> Any:
        try:
            # 15 significant digits: '10 us' is 1e-05, not 10 × 1e-6 = 9.999999999999999e-06,
            # so the resolved scenario (and its hash) does not depend on how a unit was written.
            return float(f"{parse_quantity(value, kind):.15g}")
        except InfersimError as err:
            raise PydanticCustomError("infersim", "{expected}",
                                      {"expected": err.expected or f"a {kind} quantity"}) from None

    return Annotated[
        float,
        BeforeValidator(parse),
        WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}],
                        "description": f"a {kind} with a unit, e.g. {example!r}; "
                                       "a bare number is in SI units"}),
    ]


Bandwidth = Annotated[_quantity("bandwidth", "50 GB/s"),
                      Field(ge=limits.MIN_BANDWIDTH, le=limits.MAX_BANDWIDTH)]
Duration = Annotated[_quantity("time", "10 us"), Field(ge=0, le=limits.MAX_SECONDS)]
PositiveDuration = Annotated[_quantity("time", "60 s"), Field(gt=0, le=limits.MAX_SECONDS)]
def _single_component(value: str) -> str:
    # a name becomes a folder (runs/<name>/): '.' and '..' would write beside or above it
    if value in (".", ".."):
        raise PydanticCustomError("infersim", "{expected}",
                                  {"expected": "a name other than '.' or '..'"})
    return value


Name = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.-]+$"),
                 AfterValidator(_single_component)]


def _check_precision(value: str | None) -> str | None:
    if value is not None and value not in PRECISIONS:
        raise PydanticCustomError("infersim", "{expected}",
                                  {"expected": "one of " + ", ".join(PRECISIONS)})
    return value


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------

class PoolConfig(BaseModel):
    """A pool of identical instances; each instance is ``tp × pp`` chips serving one model copy."""

    model_config = _STRICT

    role: Literal["prefill", "decode", "mixed"] = Field(
        description="prefill: prompts to KV cache; decode: tokens from KV cache; mixed: both")
    hardware: str = Field(min_length=1, description="a shipped chip name or a hardware YAML path")
    engine: str | None = Field(None, min_length=1, description="a shipped serving-engine profile "
                               "(vllm-v1, vllm-0.6, sglang, trtllm, dynamo) or an engine YAML "
                               "path: its scheduler defaults fill the fields this pool leaves "
                               "unset; none: vLLM V1's defaults (the ones below)")
    instances: int = Field(1, ge=1, le=limits.MAX_INSTANCES, description="model replicas in the pool")
    tp: int = Field(1, ge=1, le=limits.MAX_PARALLEL, description="tensor-parallel degree (chips per stage)")
    pp: int = Field(1, ge=1, le=limits.MAX_PARALLEL, description="pipeline-parallel degree (stages)")
    precision: str | None = Field(None, description="weights/compute precision; default: the "
                                                    "scenario's precision")
    kv_precision: str | None = Field(None, description="KV-cache precision; default: precision")
    max_batch_tokens: int = Field(8192, ge=1, le=limits.MAX_BATCH_TOKENS, description="token budget of one step "
                                                          "(vLLM max_num_batched_tokens)")
    max_batch_size: int = Field(256, ge=1, le=limits.MAX_BATCH_SIZE, description="sequences in one step (vLLM max_num_seqs)")
    chunked_prefill: bool = Field(True, description="mixed pools: chunked prefill (vLLM), "
                                                    "else prefill-first")
    block_size: int = Field(16, ge=1, le=limits.MAX_BLOCK_SIZE, description="tokens per KV-cache block")
    memory_fraction: float = Field(0.9, gt=0, le=1, description="share of chip memory for weights"
                                                                " + KV (vLLM gpu_memory_utilization)")
    preemption: Literal["recompute", "swap"] = Field(
        "recompute", description="what happens to a sequence evicted when KV cache runs out")
    scaleup_domain: Name | None = Field(
        None, description="pools naming the same domain exchange KV over the scale-up fabric "
                          "(e.g. NVLink in one NVL72 rack)")
    host_bandwidth: Bandwidth = Field(64e9, description="per chip, to host memory, used by "
                                                        "preemption: swap (default PCIe 5.0 x16)")
    step_overhead: Duration | None = Field(
        None, description="the serving framework's fixed host time per step (scheduling, launch, "
                          "sampling), e.g. '5.5 ms' for vLLM 0.6 at TP4; none: the chip's "
                          "calibrated step_overhead (TensorRT-LLM-like)")
    compute_efficiency: float | None = Field(
        None, gt=0, le=1, description="this deployment's achievable fraction of peak FLOP/s, "
                                      "replacing the chip's calibrated value (written by "
                                      "infersim calibrate); none: the chip's")
    memory_efficiency: float | None = Field(
        None, gt=0, le=1, description="this deployment's achievable fraction of memory "
                                      "bandwidth, replacing the chip's calibrated value (written "
                                      "by infersim calibrate); none: the chip's")
    first_token_from: Literal["decode", "prefill"] = Field(
        "decode", description="prefill pools: where a client gets a request's first token; "
                              "decode: from the decode instance, once it has the KV and admits "
                              "the request (vLLM disaggregation, Dynamo, SGLang, TensorRT-LLM); "
                              "prefill: as the prefill step ends")
    kv_reservation: Literal["on_demand", "full"] = Field(
        "on_demand", description="decode and mixed pools: on_demand takes KV blocks as sequences "
                                 "grow and preempts when memory runs out (vLLM); full admits a "
                                 "request only when KV for its prompt and all its output tokens "
                                 "is free, and never preempts (TensorRT-LLM GUARANTEED_NO_EVICT)")

    _v_precision = field_validator("precision", "kv_precision")(_check_precision)


# Fields added after scenarios were first hashed, and the value at which resolved() leaves each
# out (see Scenario.resolved): pool fields, then link fields.
_OMITTED_WHEN_UNSET = ("step_overhead", "compute_efficiency",
                       "memory_efficiency", "engine")
_POOL_OMITTED_AT = {"kv_reservation": "on_demand", "first_token_from": "decode"}
_LINK_OMITTED_AT = {"per": "pool"}


class LinkConfig(BaseModel):
    """A KV-cache link between two pools (both directions), e.g. RDMA over the scale-out NICs."""

    model_config = _STRICT

    between: list[str] = Field(min_length=2, max_length=2,
                               description="the two pool names this link joins")
    bandwidth: Bandwidth = Field(description="one direction, shared fairly by every transfer in "
                                             "flight on this link, e.g. '50 GB/s'")
    latency: Duration = Field(0.0, description="one-way latency, e.g. '10 us'")
    per: Literal["pool", "instance"] = Field(
        "pool", description="pool: one path for the pool pair, bandwidth shared by every sending "
                            "instance; instance: each sending instance has its own path of this "
                            "bandwidth (its NICs), shared by its transfers only")


class RouterConfig(BaseModel):
    """How requests find instances. Policy names: see ``infersim.scenario.ROUTER_POLICIES``."""

    model_config = _STRICT

    policy: str = Field("least_loaded", description="first-pool routing: " +
                        ", ".join(ROUTER_POLICIES))
    decode_policy: str = Field("kv_aware", description="decode-instance choice after prefill: " +
                               ", ".join(DECODE_POLICIES))
    queue_limit: int | None = Field(None, ge=1, le=limits.MAX_COUNT,
                                     description="requests waiting per instance before new ones "
                                                 "are refused; none: unbounded")
    prefix_cache_blocks: int = Field(4096, ge=1, le=limits.MAX_COUNT,
                                     description="prefix_affinity: prefix blocks each instance "
                                                 "remembers (LRU)")

    @field_validator("policy", "decode_policy")
    @classmethod
    def _known_policy(cls, value: str, info: ValidationInfo) -> str:
        known = ROUTER_POLICIES if info.field_name == "policy" else DECODE_POLICIES
        if value not in known:
            raise PydanticCustomError("infersim", "{expected}",
                                      {"expected": "one of " + ", ".join(known)})
        return value


class ScenarioSLO(BaseModel):
    """Service-level objectives. A request meets them when each named latency is within its bound
    (``<=``); goodput counts such requests. The percentile is the one the SLO is stated at."""

    model_config = _STRICT

    ttft_ms: float | None = Field(None, gt=0, le=limits.MAX_MS, description="time to first token bound, ms")
    itl_ms: float | None = Field(None, gt=0, le=limits.MAX_MS, description="inter-token latency bound, ms")
    tpot_ms: float | None = Field(None, gt=0, le=limits.MAX_MS, description="time per output token bound, ms")
    e2el_ms: float | None = Field(None, gt=0, le=limits.MAX_MS, description="end-to-end latency bound, ms")
    percentile: float = Field(99.0, gt=0, le=100, description="percentile the SLO is stated at, "
                                                              "in (0, 100]")


class Scenario(BaseModel):
    """One experiment: model, pools, links, router, workload, SLOs and seed."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False,
                              title="infersim scenario")

    name: Name = Field(description="short name; default output folder runs/<name>/")
    description: str = Field("", description="the question this scenario asks")
    seed: int = Field(0, ge=0, le=limits.MAX_SEED, description="seed of the run's random generator")
    model: str = Field(min_length=1, description="a shipped model name or a path to a Hugging "
                                                 "Face config.json (relative to this file)")
    precision: str = Field("bf16", description="weights and compute precision of every pool")
    pools: dict[Name, PoolConfig] = Field(min_length=1, description="pools by name")
    links: list[LinkConfig] = Field(default_factory=list, description="KV-cache links")
    router: RouterConfig = Field(default_factory=RouterConfig)
    workload: WorkloadConfig
    slo: ScenarioSLO = Field(default_factory=ScenarioSLO)
    time_limit: PositiveDuration | None = Field(None, description="stop the clock here, e.g. "
                                                                  "'10 min'; none: run to the end")
    ideal: bool = Field(False, description="every efficiency 1, no overheads: the roofline bound")
    layerwise_kv_overlap: bool = Field(False, description="ship KV layer by layer while prefill "
                                                          "runs, hiding most transfer time")
    prices: dict[Name, Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(
        default_factory=dict, description="USD per chip-hour by chip name, overriding the "
                                          "hardware profiles' prices (runs and plans)")

    _base_dir: Path | None = PrivateAttr(default=None)
    _source: str | None = PrivateAttr(default=None)

    _v_precision = field_validator("precision")(_check_precision)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in this scenario are resolved against."""
        return self._base_dir if self._base_dir is not None else Path.cwd()

    @property
    def source(self) -> str | None:
        """The file this scenario came from (named in error messages); None for a dict."""
        return self._source

    def resolved(self) -> dict:
        """The scenario as plain JSON data, quantities in SI units.

        Optional pool and link fields added after scenarios were first hashed are left out
        while unset or at their default, so a scenario that does not use them keeps the hash
        (and the sweep cache and plan baselines) it had.
        """
        data = self.model_dump(mode="json")
        if not data.get("prices"):
            data.pop("prices", None)     # added later: a scenario without prices keeps its hash
        for pool in data["pools"].values():
            for key in _OMITTED_WHEN_UNSET:
                if pool.get(key) is None:
                    pool.pop(key, None)
            for key, default in _POOL_OMITTED_AT.items():
                if key in pool and pool[key] == default:
                    del pool[key]
        for link in data["links"]:
            for key, default in _LINK_OMITTED_AT.items():
                if key in link and link[key] == default:
                    del link[key]
        return data

    @property
    def hash(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON of :meth:`resolved`."""
        return resolved_hash(self.resolved(), self.base_dir)


def scenario_hash(scenario: Scenario) -> str:
    """What a run depends on, digested (see :mod:`infersim.scenario.digests`)."""
    return scenario.hash


def input_digests(scenario: Scenario) -> dict[str, str]:
    """SHA-256 of every data file the scenario reads, keyed by a stable label."""
    return _input_digests(scenario.resolved(), scenario.base_dir)


def json_schema() -> dict:
    """The JSON Schema of scenario files (what ``infersim schema`` prints)."""
    schema = Scenario.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
