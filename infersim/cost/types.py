"""The value objects of the cost model: what runs where, what one step does, what it costs.

A :class:`Deployment` is one model instance: a model on ``tp × pp`` chips of one kind, at a weight
precision and a KV-cache precision. A :class:`StepBatch` is what one engine step (one forward pass)
computes: chunks of prompts being prefilled and sequences decoding one token each; prefill, decode
and mixed (chunked-prefill) steps are the same object. A :class:`StepCost` is the roofline verdict
for that step: how long it takes and what bound it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from infersim.errors import InfersimError
from infersim.precision import bytes_per_element

if TYPE_CHECKING:  # the cost layer is handed loaded objects; it never loads files itself
    from infersim.hardware import HardwareProfile
    from infersim.model import ModelSpec

Bound = Literal["compute", "memory", "latency"]

# Precisions whose KV cache is stored in bf16: 4-bit weight formats keep a 16-bit cache.
_KV_FROM_WEIGHTS = {"fp4": "bf16", "int4": "bf16"}


def _positive_int(value: Any, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InfersimError(field=name, expected="an integer >= 1", given=value)


@dataclass(frozen=True)
class Deployment:
    """One model instance: ``model`` on ``tp × pp`` chips of ``hardware``.

    ``tp`` splits every layer across chips (tensor parallelism, two all-reduces per layer);
    ``pp`` splits the layers into sequential stages (pipeline parallelism, one activation hop per
    stage boundary). ``ideal=True`` strips every calibrated inefficiency (efficiencies 1, no step
    overhead, no latency floors) so the textbook roofline holds exactly.

    ``step_overhead_s`` is the serving framework's fixed host time per step (scheduling, launch,
    sampling) when it differs from the chip's calibrated ``step_overhead``: the same H100 costs
    ~2 ms per step under TensorRT-LLM and ~6.5 ms under vLLM 0.6 at TP4 (docs/engine-validation.md D2).
    ``None`` keeps the chip's value; ideal mode drops it like every other overhead.

    ``cuda_graphs`` says whether the engine replays pure-decode steps from captured CUDA graphs
    (vLLM, SGLang and TensorRT-LLM do by default): such a step launches one graph and pays none of
    the chip's per-layer ``launch_overhead``; steps with prompt tokens are launched kernel by
    kernel and pay it. ``False`` is an eager engine (``--enforce-eager``): every step pays it.
    Chips that run a compiled static graph (WSE-3, LPU, Trainium2) have no launch overhead.
    """

    model: ModelSpec
    hardware: HardwareProfile
    precision: str = "bf16"
    kv_precision: str | None = None
    tp: int = 1
    pp: int = 1
    ideal: bool = False
    step_overhead_s: float | None = None
    cuda_graphs: bool = True

    def __post_init__(self) -> None:
        # duck-typed: the cost layer does not import the loaders (load_model, load_hardware)
        for name, attribute, loader in (("model", "num_layers", "load_model"),
                                        ("hardware", "peak_flops", "load_hardware")):
            if not hasattr(getattr(self, name), attribute):
                raise InfersimError(field=name, expected=f"what infersim.{loader} returns",
                                    given=getattr(self, name))
        _positive_int(self.tp, "tp")
        _positive_int(self.pp, "pp")
        if self.pp > self.model.num_layers:
            raise InfersimError(field="pp", given=self.pp,
                                expected=f"at most {self.model.num_layers} pipeline stages "
                                         f"({self.model.name} has {self.model.num_layers} "
                                         "layers; a stage holds at least one)")
        overhead = self.step_overhead_s
        if overhead is not None and (isinstance(overhead, bool)
                                     or not isinstance(overhead, (int, float))
                                     or not math.isfinite(overhead) or overhead < 0):
            raise InfersimError(field="step_overhead", expected="a time >= 0 in seconds",
                                given=overhead)
        bytes_per_element(self.precision, field="precision")
        if self.kv_precision is not None:
            bytes_per_element(self.kv_precision, field="kv_precision")
        # Fail at the edge, not mid-simulation, if the chip has no peak for this precision.
        self.hardware.flops(self.precision)

    @property
    def chips(self) -> int:
        return self.tp * self.pp

    @property
    def effective_step_overhead_s(self) -> float:
        """Fixed time added to every step: this deployment's override, else the chip's knob;
        0 in ideal mode."""
        if self.ideal:
            return 0.0
        if self.step_overhead_s is not None:
            return float(self.step_overhead_s)
        return self.hardware.step_overhead_s

    @property
    def kv_dtype(self) -> str:
        """The KV-cache precision actually used (``kv_precision`` or derived from ``precision``)."""
        if self.kv_precision is not None:
            return self.kv_precision
        return _KV_FROM_WEIGHTS.get(self.precision, self.precision)

    def describe(self) -> str:
        """``llama-3.1-70b bf16 on 4× h100 (tp4)``: for messages and reports."""
        layout = f"tp{self.tp}" + (f"·pp{self.pp}" if self.pp > 1 else "")
        return f"{self.model.name} {self.precision} on {self.chips}× {self.hardware.name} ({layout})"



def check_tensor_parallel(model: ModelSpec, tp: int, *, field: str = "tp") -> None:
    """InfersimError unless ``tp`` chips can split ``model``'s attention evenly.

    Tensor parallelism gives each chip of a stage the same number of query heads, so ``tp`` must
    divide them; KV heads are split the same way or, when there are fewer KV heads than chips,
    replicated (vLLM), so ``tp`` must divide the KV heads or be a multiple of them. The cost
    functions themselves accept any ``tp`` (they scale bytes and FLOPs by ``1/tp``); commands that
    take a layout from a user check it here first.
    """
    heads, kv_heads = model.num_attention_heads, model.num_kv_heads
    if heads % tp:
        raise InfersimError(field=field, given=tp,
                            expected=f"a divisor of {model.name}'s {heads} attention heads")
    if kv_heads and kv_heads % tp and tp % kv_heads:
        raise InfersimError(field=field, given=tp,
                            expected=f"a divisor or a multiple of {model.name}'s {kv_heads} "
                                     "KV heads")


@dataclass(frozen=True)
class StepBatch:
    """What one engine step computes.

    ``prefill_new_tokens[i]`` prompt tokens of sequence i are computed this step after
    ``prefill_context[i]`` tokens of the same sequence already cached (a chunk of a chunked prefill,
    or a prompt whose prefix was cached); ``decode_kv_lens[j]`` is the number of KV entries decoding
    sequence j attends to while it makes one new token.
    """

    prefill_new_tokens: tuple[int, ...] = ()
    prefill_context: tuple[int, ...] = ()
    decode_kv_lens: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.prefill_context) != len(self.prefill_new_tokens):
            if self.prefill_context:
                raise InfersimError(field="prefill_context", expected="empty or one entry per "
                                    "prefill_new_tokens entry", given=self.prefill_context)
            # No context given: every prefill starts from an empty cache.
            object.__setattr__(self, "prefill_context", (0,) * len(self.prefill_new_tokens))

    @property
    def tokens(self) -> int:
        """Tokens that pass through the weights this step (each prefill token, each decode)."""
        return sum(self.prefill_new_tokens) + len(self.decode_kv_lens)

    @property
    def sequences(self) -> int:
        return len(self.prefill_new_tokens) + len(self.decode_kv_lens)


@dataclass(frozen=True)
class StepCost:
    """The roofline cost of one step on one instance.

    ``time_s`` is the sum over operator groups of max(compute, memory) plus communication and
    fixed terms. ``compute_s`` and ``memory_s`` are the sums of the two sides over groups (what the
    step would take if only that resource mattered); ``comm_s`` is tensor- and pipeline-parallel
    traffic; ``overhead_s`` the fixed per-step overhead plus latency floors. ``flops`` and
    ``bytes_moved`` are totals over the instance's chips.
    """

    time_s: float
    compute_s: float
    memory_s: float
    comm_s: float
    overhead_s: float
    flops: float
    bytes_moved: float
    bound: Bound

    @property
    def arithmetic_intensity(self) -> float:
        """FLOP per byte moved from the memory that holds weights and KV."""
        return self.flops / self.bytes_moved if self.bytes_moved > 0 else 0.0


ZERO_COST = StepCost(time_s=0.0, compute_s=0.0, memory_s=0.0, comm_s=0.0, overhead_s=0.0,
                     flops=0.0, bytes_moved=0.0, bound="latency")
