"""The engine's admission rules at the edges of KV memory."""

from __future__ import annotations

import dataclasses

import pytest

from infersim.sim import ClusterSpec, RouterSpec, simulate_cluster
from tests.strategies import llama8b_h100, memory_fraction_for, pd_cluster, table


def _full(pool):
    return dataclasses.replace(pool, kv_reservation="full", block_size=1)


@pytest.mark.parametrize("extra", [0, 1])
def test_a_full_reservation_one_token_over_memory_is_rejected_not_stuck(extra):
    """Reserving in full takes prompt + output tokens, one more than the KV ever holds: a
    request whose reservation exceeds memory by one token is rejected on arrival (it used to be
    accepted and wait forever), one that fits exactly is served."""
    from infersim.sim import PoolSpec

    dep = llama8b_h100()
    pool = _full(PoolSpec("mixed", "mixed", dep, 1, max_batch_tokens=512, max_batch_size=4,
                          memory_fraction=memory_fraction_for(dep, 300)))
    work = table([0.0], [151], [149 + extra])  # reserves 300 + extra tokens of 300
    result = simulate_cluster(ClusterSpec(pools=(pool,), router=RouterSpec("round_robin")),
                              work, seed=0)
    assert bool(result.requests["rejected"][0]) == bool(extra)
    assert bool(result.requests["completed"][0]) != bool(extra)

    base = pd_cluster(kv_tokens=300)
    cluster = dataclasses.replace(base, pools=(base.pools[0], _full(base.pools[1])))
    result = simulate_cluster(cluster, work, seed=0)
    assert bool(result.requests["rejected"][0]) == bool(extra)
    assert bool(result.requests["completed"][0]) != bool(extra)
