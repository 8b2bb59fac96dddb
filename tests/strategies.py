"""Shared hypothesis strategies (add yours; do not rewrite others')."""

from __future__ import annotations

import copy
import functools

import numpy as np
from hypothesis import strategies as st

from infersim.workload.lengths import Fixed, LogNormal, Normal, Quantiles, Uniform

# ---------------------------------------------------------------------------------------------
# workload: length distributions with random parameters, caps and floors


@st.composite
def length_dists(draw):
    """Any length distribution, with a random floor and (sometimes) a cap above it."""
    low = draw(st.integers(1, 64))
    cap = draw(st.one_of(st.none(), st.integers(low, 100_000)))
    kind = draw(st.sampled_from(["fixed", "uniform", "normal", "lognormal", "quantiles"]))
    bounds = {"min": low, "max": cap}
    if kind == "fixed":
        return Fixed(value=draw(st.integers(1, 200_000)), **bounds)
    if kind == "uniform":
        a, b = sorted(draw(st.lists(st.integers(1, 200_000), min_size=2, max_size=2)))
        return Uniform(low=a, high=b, **bounds)
    if kind == "normal":
        return Normal(mean=draw(st.floats(1, 1e5)), std=draw(st.floats(0, 1e5)), **bounds)
    if kind == "lognormal":
        return LogNormal(mean=draw(st.floats(1, 1e5)), sigma=draw(st.floats(0, 3)), **bounds)
    tokens = sorted(draw(st.lists(st.floats(0, 1e6), min_size=3, max_size=3)))
    return Quantiles(points=[[0.0, tokens[0]], [0.5, tokens[1]], [1.0, tokens[2]]], **bounds)


# ---------------------------------------------------------------------------------------------
# hardware: physically plausible chips, from an LPU-sized SRAM die to a wafer


@st.composite
def hardware_profiles(draw, memory_kind=None):
    """A random but physical HardwareProfile (SI units; dense bf16 peak, often an fp8 one)."""
    from infersim.hardware import HardwareProfile

    kind = memory_kind or draw(st.sampled_from(["hbm", "sram"]))
    bf16 = draw(st.floats(1e13, 2e16))
    peaks = {"bf16": bf16}
    if draw(st.booleans()):
        peaks["fp8"] = 2 * bf16
    sram = draw(st.floats(1e7, 5e10))
    capacity = draw(st.floats(1e6, sram)) if kind == "sram" else draw(st.floats(1e10, 3e11))
    tdp = draw(st.floats(100.0, 25_000.0))
    return HardwareProfile(
        name="random-chip", description="hypothesis chip", memory_kind=kind, peak_flops=peaks,
        memory_capacity_bytes=capacity, memory_bandwidth=draw(st.floats(5e11, 3e16)),
        sram_bytes=sram, sram_bandwidth=draw(st.floats(1e12, 3e16)),
        scaleup_domain_chips=draw(st.integers(1, 1024)),
        scaleup_bandwidth=draw(st.floats(1e10, 2e12)),
        scaleup_latency_s=draw(st.floats(1e-7, 2e-5)),
        scaleout_bandwidth=draw(st.floats(1e9, 2e11)),
        scaleout_latency_s=draw(st.floats(1e-6, 5e-5)),
        tdp_watts=tdp, idle_watts=draw(st.floats(0.05, 0.5)) * tdp,
        price_per_chip_hour=draw(st.floats(0.1, 200.0)),
        compute_efficiency=draw(st.floats(0.05, 1.0)),
        memory_efficiency=draw(st.floats(0.05, 1.0)),
        step_overhead_s=draw(st.floats(0.0, 5e-3)),
        layer_latency_s=draw(st.floats(0.0, 1e-4)) if kind == "sram" else 0.0,
        hop_latency_s=draw(st.floats(0.0, 5e-4)),
        sources={}, price_date="2026-01",
    )


# ---------------------------------------------------------------------------------------------
# sim: tiny clusters and workloads on the real cost model (Llama-3.1-8B on H100, one chip per
# instance); KV memory is made small on purpose (memory_fraction_for) so that tiny workloads
# still fill it and exercise waiting, preemption and paging.


@functools.cache
def llama8b_h100():
    from infersim.cost import Deployment
    from infersim.hardware import load_hardware
    from infersim.model import load_model

    return Deployment(model=load_model("llama-3.1-8b"), hardware=load_hardware("h100"))


def memory_fraction_for(dep, kv_tokens: int) -> float:
    """The memory fraction that leaves room for about ``kv_tokens`` tokens of KV per instance."""
    from infersim.cost import kv_cache_bytes, placement

    weights = dep.model.weight_bytes(dep.precision) / dep.chips
    per_token = kv_cache_bytes(dep, 1) / dep.chips
    fraction = (weights + (kv_tokens + 0.5) * per_token) / dep.hardware.memory_capacity_bytes
    assert abs(placement(dep, fraction).kv_capacity_tokens - kv_tokens) <= 1
    return fraction


def pd_cluster(*, prefill: int = 1, decode: int = 1, kv_tokens: int | None = None,
               bandwidth: float = 50e9, latency_s: float = 0.0, max_batch_tokens: int = 8192,
               prefill_batch_size: int = 64, decode_batch_size: int = 256,
               preemption: str = "recompute", policy: str = "round_robin",
               decode_policy: str = "round_robin", queue_limit: int | None = None,
               layerwise: bool = False, prefill_kv_tokens: int | None = None):
    """A prefill pool and a decode pool joined by one link."""
    from infersim.sim import ClusterSpec, LinkSpec, PoolSpec, RouterSpec

    dep = llama8b_h100()
    fraction = memory_fraction_for(dep, kv_tokens) if kv_tokens else 0.9
    prefill_fraction = memory_fraction_for(dep, prefill_kv_tokens) if prefill_kv_tokens else 0.9
    return ClusterSpec(
        pools=(PoolSpec("prefill", "prefill", dep, prefill, max_batch_tokens=max_batch_tokens,
                        max_batch_size=prefill_batch_size, memory_fraction=prefill_fraction),
               PoolSpec("decode", "decode", dep, decode, max_batch_tokens=max_batch_tokens,
                        max_batch_size=decode_batch_size, memory_fraction=fraction,
                        preemption=preemption)),
        links=(LinkSpec("prefill", "decode", bandwidth=bandwidth, latency_s=latency_s),),
        router=RouterSpec(policy=policy, decode_policy=decode_policy, queue_limit=queue_limit),
        layerwise_kv_overlap=layerwise)


def mixed_cluster(*, instances: int = 1, kv_tokens: int | None = None,
                  max_batch_tokens: int = 512, max_batch_size: int = 64, chunked: bool = True,
                  preemption: str = "recompute", policy: str = "round_robin"):
    """One colocated pool."""
    from infersim.sim import ClusterSpec, PoolSpec, RouterSpec

    dep = llama8b_h100()
    fraction = memory_fraction_for(dep, kv_tokens) if kv_tokens else 0.9
    return ClusterSpec(
        pools=(PoolSpec("mixed", "mixed", dep, instances, max_batch_tokens=max_batch_tokens,
                        max_batch_size=max_batch_size, chunked_prefill=chunked,
                        memory_fraction=fraction, preemption=preemption),),
        router=RouterSpec(policy=policy, decode_policy=policy))


def table(arrivals, prompts, outputs, prefix_hashes=None, prefix_block_tokens=512):
    from infersim.workload.table import RequestTable

    return RequestTable(arrival_s=np.asarray(arrivals, dtype=float),
                        prompt_tokens=np.asarray(prompts), output_tokens=np.asarray(outputs),
                        prefix_hashes=prefix_hashes, prefix_block_tokens=prefix_block_tokens)


POLICY_NAMES = ("round_robin", "least_outstanding_tokens", "join_shortest_queue",
                "power_of_two", "kv_aware")


@st.composite
def request_tables(draw, *, max_requests: int = 25, max_prompt: int = 700,
                   max_output: int = 60):
    """Small open-loop workloads: bursts and gaps, prompts and outputs of any length >= 1."""
    n = draw(st.integers(1, max_requests))
    gaps = draw(st.lists(st.sampled_from([0.0, 0.0005, 0.003, 0.02, 0.2]), min_size=n,
                         max_size=n))
    prompts = draw(st.lists(st.integers(1, max_prompt), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, max_output), min_size=n, max_size=n))
    if not draw(st.booleans()):
        return table(np.cumsum(gaps), prompts, outputs)
    # shared prefixes: each request continues one of three conversations (chained block ids,
    # one per 64 prompt tokens, equal ids = equal prefix)
    topics = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    hashes = tuple(np.arange(-(-p // 64), dtype=np.int64) + 1000 * t
                   for p, t in zip(prompts, topics, strict=True))
    return table(np.cumsum(gaps), prompts, outputs, prefix_hashes=hashes, prefix_block_tokens=64)


@st.composite
def clusters(draw):
    """Small clusters: disaggregated (any link speed, optional layer-wise overlap) or mixed,
    with KV memory from roomy down to a couple of requests' worth."""
    kv_tokens = draw(st.sampled_from([None, 400, 800, 1500, 4000]))
    preemption = draw(st.sampled_from(["recompute", "swap"]))
    policy = draw(st.sampled_from((*POLICY_NAMES, "prefix_affinity")))
    if draw(st.booleans()):
        return pd_cluster(prefill=draw(st.integers(1, 2)), decode=draw(st.integers(1, 3)),
                          kv_tokens=kv_tokens, bandwidth=draw(st.sampled_from([5e9, 50e9])),
                          latency_s=draw(st.sampled_from([0.0, 1e-4])),
                          max_batch_tokens=draw(st.sampled_from([256, 2048])),
                          prefill_batch_size=draw(st.integers(1, 8)),
                          decode_batch_size=draw(st.integers(1, 16)), preemption=preemption,
                          policy=policy, decode_policy=draw(st.sampled_from(POLICY_NAMES)),
                          layerwise=draw(st.booleans()),
                          queue_limit=draw(st.sampled_from([None, None, 1, 4])))
    return mixed_cluster(instances=draw(st.integers(1, 2)), kv_tokens=kv_tokens,
                         max_batch_tokens=draw(st.sampled_from([64, 256, 2048])),
                         max_batch_size=draw(st.integers(1, 16)),
                         chunked=draw(st.booleans()), preemption=preemption, policy=policy)


@st.composite
def workloads(draw):
    """Open-loop tables, or closed loops of a few users over such a table."""
    from infersim.workload.table import ClosedLoop

    requests = draw(request_tables(max_prompt=draw(st.sampled_from([700, 150])),
                                   max_output=draw(st.sampled_from([60, 400]))))
    if draw(st.booleans()):
        return requests
    return ClosedLoop(users=draw(st.integers(1, 4)), requests=requests,
                      think_time_s=draw(st.sampled_from([0.0, 0.01])),
                      think_dist=draw(st.sampled_from(["fixed", "exponential"])))


# ---------------------------------------------------------------------------------------------
# scenario: small valid scenario files (as dicts), disaggregated or colocated, on shipped chips


@st.composite
def scenario_dicts(draw, *, max_requests: int = 40):
    """A small valid scenario: Llama-3.1-8B on H100/B200/H200, one mixed pool or a
    prefill/decode pair (linked, or sharing a scale-up domain), a short Poisson workload."""
    chip = draw(st.sampled_from(["h100", "h200", "b200"]))
    requests = draw(st.integers(1, max_requests))
    workload = {
        "arrival": {"process": "poisson", "rate": draw(st.sampled_from([2.0, 20.0, 200.0]))},
        "requests": requests,
        "prompt_tokens": {"dist": "uniform", "low": 1, "high": draw(st.sampled_from([64, 2048]))},
        "output_tokens": {"dist": "uniform", "low": 1, "high": draw(st.sampled_from([4, 64]))},
    }
    base = {"name": "hypothesis", "seed": draw(st.integers(0, 2**31)), "model": "llama-3.1-8b",
            "workload": workload,
            "slo": {"ttft_ms": draw(st.sampled_from([50.0, 1000.0])), "itl_ms": 50.0}}
    if draw(st.booleans()):
        base["pools"] = {"all": {"role": "mixed", "hardware": chip,
                                 "instances": draw(st.integers(1, 3)),
                                 "max_batch_tokens": draw(st.sampled_from([256, 2048])),
                                 "chunked_prefill": draw(st.booleans())}}
        return base
    pools = {"prefill": {"role": "prefill", "hardware": chip,
                         "instances": draw(st.integers(1, 2))},
             "decode": {"role": "decode", "hardware": chip, "instances": draw(st.integers(1, 3)),
                        "max_batch_size": draw(st.sampled_from([4, 64]))}}
    if draw(st.booleans()):
        for pool in pools.values():
            pool["scaleup_domain"] = "node"
        base["links"] = []
    else:
        base["links"] = [{"between": ["prefill", "decode"],
                          "bandwidth": draw(st.sampled_from(["10 GB/s", "400 Gbit/s"])),
                          "latency": draw(st.sampled_from(["0 s", "20 us"]))}]
    base["pools"] = pools
    return base


@st.composite
def crowded_runs(draw):
    """A cluster whose KV memory holds only a few of the requests that arrive together: the
    engine must queue, page and preempt."""
    kv_tokens = draw(st.sampled_from([600, 1200]))
    preemption = draw(st.sampled_from(["recompute", "swap"]))
    if draw(st.booleans()):
        cluster = pd_cluster(decode=draw(st.integers(1, 2)), kv_tokens=kv_tokens,
                             decode_batch_size=draw(st.integers(2, 32)), preemption=preemption,
                             decode_policy=draw(st.sampled_from(POLICY_NAMES)))
    else:
        cluster = mixed_cluster(kv_tokens=kv_tokens, max_batch_tokens=draw(st.sampled_from(
            [64, 512])), max_batch_size=draw(st.integers(2, 32)), chunked=draw(st.booleans()),
            preemption=preemption)
    n = draw(st.integers(4, 20))
    arrivals = np.cumsum(draw(st.lists(st.sampled_from([0.0, 0.001, 0.05]), min_size=n,
                                       max_size=n)))
    prompts = draw(st.lists(st.integers(1, 150), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(100, 400), min_size=n, max_size=n))
    return cluster, table(arrivals, prompts, outputs)


# ---------------------------------------------------------------------------------------------
# planner: the load and latency targets a capacity plan is asked to meet


@st.composite
def plan_targets(draw):
    """(rate req/s, p99 TTFT target ms, p99 ITL target ms), from a trickle to a busy service and
    from interactive to relaxed SLOs."""
    rate = draw(st.floats(0.5, 200.0, allow_nan=False))
    ttft_ms = draw(st.floats(100.0, 5000.0, allow_nan=False))
    itl_ms = draw(st.floats(8.0, 200.0, allow_nan=False))
    return rate, ttft_ms, itl_ms


# ---------------------------------------------------------------------------------------------
# scenario dicts: one field replaced, for tables of bad or hostile values


def with_value(data: dict, path: str, value) -> dict:
    """A deep copy of ``data`` with the field at dotted ``path`` (list indices as digits) set."""
    out = copy.deepcopy(data)
    node = out
    keys = [int(k) if k.isdigit() else k for k in path.split(".")]
    for key in keys[:-1]:
        node = node[key]
    node[keys[-1]] = value
    return out
