"""Moving bytes between chips: tensor-parallel all-reduces, pipeline hops, KV-cache transfers.

A tensor-parallel layer ends in an all-reduce of the activations of every token in the step (two
per transformer layer: after attention and after the MLP). What one costs depends on the fabric
and on the message, because serving engines pick the algorithm by size:

* **one-shot** (vLLM, SGLang and TensorRT-LLM custom all-reduce on NVLink/NVSwitch; a GroqNode's
  fully connected chips): every chip reads the whole message from each of its ``p − 1`` peers and
  reduces locally. One barrier (a flag written to every peer) and one read:
  ``2·α + (p − 1)·n / B``. Best for the small messages of decode steps.
* **two-shot** (the same engines, larger messages): reduce-scatter then all-gather through peer
  memory, two barriers and two data phases: ``4·α + 2·(p − 1)/p · n / B``.
* **NCCL ring** inside a switched domain (every engine above its custom all-reduce's buffer,
  8 MiB in vLLM): ``c + 2·(p − 1)/p · n / (η·B)``, with NCCL's call cost ``c`` (its pipelined
  low-latency protocol hides the per-step link latency inside it) and bus efficiency ``η``
  fitted to measurements. Across nodes (the scale-out network) the ring pays
  ``2·(p − 1)`` link latencies and NCCL's **double binary tree**
  ``c + 2·n / (η·B) + 2·⌈log₂ p⌉·α`` often wins; NCCL takes the faster of the two.
* **2-D torus** (AWS Trainium2's NeuronLink, a 4 × 4 torus): a ring along each dimension in turn,
  the same bytes as one ring but ``2·Σ(dᵢ − 1)`` latency steps instead of ``2·(p − 1)``.
* **Ethernet between systems** (Cerebras CS-3 wafers): no collective at all; a wafer is one
  tensor-parallel unit and models span wafers by pipeline stages only (:mod:`.layout`).

``α`` is the fabric's one-way latency (``scaleup.latency``), ``B`` its one-direction bandwidth per
chip (``scaleup.bandwidth``). The ring's ``η`` and call cost ``c`` were fitted to NCCL all-reduce
times measured on an 8-GPU H100 DGX (Vidur's profiles, ``data/reference/vidur/all_reduce.csv``,
2 KiB–64 MiB, 2/4/8 GPUs): ``η`` on messages of 8 MiB and more (they reach 74–84 % of NVLink's
450 GB/s after the call cost), ``c`` on messages of 1 MiB and less (flat at 24–44 µs, NCCL's
launch and protocol cost). Nothing else here is fitted: the one-shot and two-shot times are the fabric's datasheet
latency and bandwidth, checked (not fitted) against the same file, where they are the lower
envelope engines reach below NCCL (``tests/test_cost_comm.py``).

A **pipeline hop** (:func:`send_recv_time`) sends one stage's activations to the next: one latency
plus the bytes at the link's bandwidth. Vidur's NCCL send/recv times (same file set) check it: on
NVLink 5 µs + n / 345 GB/s, across nodes 17 µs + n / 32 GB/s. A **KV-cache transfer** ships a
finished prompt's cache from a prefill instance to a decode instance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from infersim.errors import InfersimError
from infersim.hardware import TOPOLOGIES

# Fraction of one-direction link bandwidth NCCL's ring all-reduce reaches on large messages;
# fitted to the vidur H100 NVLink medians >= 8 MiB after the call cost (per GPU count: 0.74 /
# 0.84 / 0.76 at 2 / 4 / 8 GPUs; their median, rounded; tests/test_cost_comm.py refits it).
ALLREDUCE_BUS_EFFICIENCY = 0.78

# Fixed cost of one NCCL collective call (kernel launch, protocol handshake); fitted to the vidur
# H100 all-reduce medians for messages <= 1 MiB (per GPU count 39 / 42 / 32 us at 2 / 4 / 8 GPUs,
# 24-44 us interquartile; rounded down to 30 us, the value that minimises the p90 error over all
# sizes: tests/test_cost_comm.py).
NCCL_CALL_OVERHEAD_S = 30e-6

# Largest message the engines' custom (one-shot / two-shot) all-reduce takes: vLLM's
# CustomAllreduce buffer, 8 MiB; larger messages go to NCCL.
CUSTOM_ALLREDUCE_MAX_BYTES = 8 * 2**20


@dataclass(frozen=True)
class Fabric:
    """The links a group of chips talks over: topology, one-direction bandwidth per chip (B/s),
    one-way latency (s). ``ideal`` drops the fitted NCCL efficiency and call cost."""

    topology: str
    bandwidth: float
    latency_s: float
    ideal: bool = False

    def __post_init__(self) -> None:
        if self.topology not in TOPOLOGIES:
            raise InfersimError(field="topology", expected="one of " + ", ".join(TOPOLOGIES),
                                given=self.topology)
        if not (self.bandwidth > 0 and math.isfinite(self.bandwidth)):
            raise InfersimError(field="bandwidth", expected="a positive finite B/s",
                                given=self.bandwidth)
        if self.latency_s < 0 or not math.isfinite(self.latency_s):
            raise InfersimError(field="latency_s", expected="a time >= 0 s", given=self.latency_s)

    @property
    def efficiency(self) -> float:
        return 1.0 if self.ideal else ALLREDUCE_BUS_EFFICIENCY

    @property
    def call_overhead_s(self) -> float:
        return 0.0 if self.ideal else NCCL_CALL_OVERHEAD_S


def one_shot_allreduce_time(nbytes: float, chips: int, bandwidth: float,
                            latency_s: float) -> float:
    """Every chip reads the whole message from each peer: ``2·α + (p − 1)·n / B``."""
    if chips <= 1:
        return 0.0
    return 2.0 * latency_s + (chips - 1) * nbytes / bandwidth


def two_shot_allreduce_time(nbytes: float, chips: int, bandwidth: float,
                            latency_s: float) -> float:
    """Reduce-scatter then all-gather through peer memory: ``4·α + 2·(p − 1)/p · n / B``."""
    if chips <= 1:
        return 0.0
    return 4.0 * latency_s + 2.0 * (chips - 1) / chips * nbytes / bandwidth


def ring_allreduce_time(nbytes: float, chips: int, bandwidth: float, latency_s: float, *,
                        efficiency: float = ALLREDUCE_BUS_EFFICIENCY,
                        call_overhead_s: float = NCCL_CALL_OVERHEAD_S) -> float:
    """NCCL ring: ``c + 2·(p − 1)/p · n / (η·B) + 2·(p − 1)·α``. Inside a switched domain pass
    ``latency_s=0``: NCCL's low-latency protocol pipelines the steps, and ``c`` (fitted) holds
    what they cost."""
    if chips <= 1:
        return 0.0
    steps = chips - 1
    return (call_overhead_s + 2.0 * steps / chips * nbytes / (bandwidth * efficiency)
            + 2.0 * steps * latency_s)


def tree_allreduce_time(nbytes: float, chips: int, bandwidth: float, latency_s: float, *,
                        efficiency: float = ALLREDUCE_BUS_EFFICIENCY,
                        call_overhead_s: float = NCCL_CALL_OVERHEAD_S) -> float:
    """NCCL double binary tree: ``c + 2·n / (η·B) + 2·⌈log₂ p⌉·α`` (reduce up, broadcast down;
    the two trees each carry half the message)."""
    if chips <= 1:
        return 0.0
    depth = math.ceil(math.log2(chips))
    return call_overhead_s + 2.0 * nbytes / (bandwidth * efficiency) + 2.0 * depth * latency_s


def torus_dimensions(chips: int) -> tuple[int, int]:
    """The most nearly square ``a × b = chips`` (16 → 4 × 4, 8 → 2 × 4, 2 → 1 × 2)."""
    a = math.isqrt(chips)
    while chips % a:
        a -= 1
    return a, chips // a


def torus_allreduce_time(nbytes: float, chips: int, bandwidth: float, latency_s: float, *,
                         efficiency: float = ALLREDUCE_BUS_EFFICIENCY) -> float:
    """Ring along each torus dimension in turn: one ring's bytes, ``2·Σ(dᵢ − 1)`` latency steps."""
    if chips <= 1:
        return 0.0
    a, b = torus_dimensions(chips)
    steps = (a - 1) + (b - 1)
    return 2.0 * (chips - 1) / chips * nbytes / (bandwidth * efficiency) + 2.0 * steps * latency_s


def allreduce_time(nbytes: float, chips: int, fabric: Fabric) -> float:
    """Seconds for an all-reduce of ``nbytes`` over ``chips`` chips on ``fabric``, by the
    algorithm a serving engine picks there (module docstring); 0 for one chip."""
    if chips <= 1:
        return 0.0
    bw, lat = fabric.bandwidth, fabric.latency_s
    if fabric.topology == "torus":
        return torus_allreduce_time(nbytes, chips, bw, lat, efficiency=fabric.efficiency)
    if fabric.topology == "ethernet":
        # NCCL over the data-centre network: ring or tree, whichever is faster.
        return min(ring_allreduce_time(nbytes, chips, bw, lat, efficiency=fabric.efficiency,
                                       call_overhead_s=fabric.call_overhead_s),
                   tree_allreduce_time(nbytes, chips, bw, lat, efficiency=fabric.efficiency,
                                       call_overhead_s=fabric.call_overhead_s))
    # The fitted call cost holds the ring's step latencies; ideal mode drops the fit and keeps
    # the textbook 2(p-1) link latencies.
    nccl = ring_allreduce_time(nbytes, chips, bw, lat if fabric.ideal else 0.0,
                               efficiency=fabric.efficiency, call_overhead_s=fabric.call_overhead_s)
    if nbytes > CUSTOM_ALLREDUCE_MAX_BYTES:
        return nccl
    return min(one_shot_allreduce_time(nbytes, chips, bw, lat),
               two_shot_allreduce_time(nbytes, chips, bw, lat), nccl)


def send_recv_time(nbytes: float, bandwidth: float, latency_s: float) -> float:
    """Seconds to send ``nbytes`` to the next pipeline stage: one latency plus the bytes."""
    return latency_s + nbytes / bandwidth


def kv_transfer_time(nbytes: float, bandwidth: float, latency_s: float) -> float:
    """Seconds to ship ``nbytes`` of KV cache over a link of ``bandwidth`` B/s and ``latency_s``.

    One latency plus serialisation at the link's bandwidth; the engine queues transfers that
    share a link, so contention is not modelled here.
    """
    if not (bandwidth > 0 and math.isfinite(bandwidth)):
        raise InfersimError(field="bandwidth", expected="a positive finite B/s", given=bandwidth)
    if latency_s < 0 or not math.isfinite(latency_s):
        raise InfersimError(field="latency_s", expected="a time >= 0 s", given=latency_s)
    if nbytes < 0:
        raise InfersimError(field="nbytes", expected="a byte count >= 0", given=nbytes)
    return send_recv_time(nbytes, bandwidth, latency_s)
