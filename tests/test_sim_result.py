"""infersim.sim.result: the token-clock readings (stable sort of the gap multiset, cached reads)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import pd_cluster, table

from infersim.sim.result import stable_sort


@given(st.lists(st.one_of(st.sampled_from([0.0, 1e-3, 2e-3, 5.0, float("nan")]),
                          st.floats(0, 10)), max_size=60))
def test_stable_sort_is_numpys_stable_argsort(values):
    v = np.array(values, dtype=float)
    order, ordered = stable_sort(v)
    expected = np.argsort(v, kind="stable")
    assert order.tolist() == expected.tolist()
    assert np.array_equal(ordered, v[expected], equal_nan=True)
    parts = [v[:len(v) // 3], v[len(v) // 3:]]  # a list is sorted as its concatenation, then emptied
    order_of_parts, ordered_parts = stable_sort(parts)
    assert order_of_parts.tolist() == expected.tolist() and parts == []
    assert np.array_equal(ordered_parts, ordered, equal_nan=True)


@pytest.fixture(scope="module")
def preempting():
    # 40 requests at once into a decode cache of 6,000 tokens: preempted requests decode in
    # several runs
    from infersim.sim import simulate_cluster

    rng = np.random.default_rng(3)
    requests = table(np.zeros(40), rng.integers(100, 400, 40), rng.integers(1, 300, 40))
    return simulate_cluster(pd_cluster(kv_tokens=6000), requests, seed=1)


def test_max_token_gap_is_computed_once_and_read_only(preempting):
    first = preempting.max_token_gap()
    assert preempting.max_token_gap() is first
    with pytest.raises(ValueError):
        first[0] = 1.0


def test_every_gap_of_every_request_is_in_the_multiset(preempting):
    done = preempting.requests["completed"].to_numpy()
    gaps = np.concatenate([np.diff(preempting.token_times(r)) for r in np.flatnonzero(done)])
    assert np.array_equal(np.sort(gaps), preempting.token_gaps())
    def largest_gap(request: int) -> float:
        gaps = np.diff(preempting.token_times(request))
        return float(gaps.max()) if len(gaps) else float("nan")

    assert (preempting.requests["preemptions"] > 0).any()  # runs after a preemption included
    biggest = np.array([largest_gap(r) if done[r] else np.nan for r in range(len(done))])
    largest = preempting.max_token_gap()
    assert np.array_equal(largest[done], biggest[done], equal_nan=True)
