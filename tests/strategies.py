"""Shared hypothesis strategies (add yours; do not rewrite others')."""

from __future__ import annotations

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
