"""Moving bytes between chips: tensor-parallel all-reduces, pipeline hops, KV-cache transfers.

A tensor-parallel layer ends in an all-reduce of the activations of every token in the step
(two per transformer layer: after attention and after the MLP). A ring all-reduce over ``p`` chips
sends ``2(p-1)/p`` of the message through each chip's link and pays a per-step latency ``p-1``
times:

    t_allreduce = 2 (p-1)/p · bytes / (link_bandwidth · η) + (p-1) · link_latency

``η`` (:data:`ALLREDUCE_BUS_EFFICIENCY`) is the fraction of the one-direction link bandwidth a
collective reaches on large messages. It was fitted to NCCL all-reduce times measured on an
8-GPU H100 DGX (``reference/vidur-profiles/h100-dgx-network/all_reduce.csv``, 2 KiB–64 MiB, 2/4/8
GPUs; see ``tests/test_calibration.py``), where the largest messages reach 65–85 % of NVLink's
450 GB/s. Below ~1 MB the measured times are flat at 20–40 µs: NCCL's launch and protocol cost,
which production engines cut with custom one-shot all-reduces; the per-hop wire latency of the
profile (``scaleup.latency``) stands for that in-engine floor, and what remains of the
launch cost is part of each chip's fitted ``step_overhead``/``layer_latency``.

A pipeline hop sends one stage's output activations to the next stage once per step. A KV-cache
transfer ships a finished prompt's cache from a prefill instance to a decode instance.
"""

from __future__ import annotations

import math

from infersim.errors import InfersimError

# Fraction of one-direction link bandwidth a ring all-reduce reaches on large messages; fitted to
# the vidur H100 NVLink measurements (64 MiB: 0.245 / 0.318 / 0.322 ms at 2 / 4 / 8 GPUs).
ALLREDUCE_BUS_EFFICIENCY = 0.70


def allreduce_time(nbytes: float, chips: int, bandwidth: float, latency_s: float,
                   *, efficiency: float = ALLREDUCE_BUS_EFFICIENCY) -> float:
    """Seconds for a ring all-reduce of ``nbytes`` over ``chips`` chips (0 for one chip)."""
    if chips <= 1:
        return 0.0
    steps = chips - 1
    return 2.0 * steps / chips * nbytes / (bandwidth * efficiency) + steps * latency_s


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
    return latency_s + nbytes / bandwidth
