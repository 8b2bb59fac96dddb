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
