"""The decode batch's O(1) bookkeeping against brute force; the epoch step-time algebra."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.sim.batch import (
    DecodeBatch,
    boundary_at_or_after,
    epoch_span,
    steps_completed_by,
)
from infersim.sim.records import Epoch, EpochLog, step_end_times


def brute_blocks(lens: list[int], block: int) -> int:
    return sum(math.ceil(length / block) for length in lens)


@settings(max_examples=60, deadline=None)
@given(block=st.sampled_from([1, 3, 16]),
       events=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 200), st.integers(1, 50)),
                       min_size=1, max_size=12))
def test_blocks_kv_and_finishes_match_brute_force(block, events):
    """Joins at arbitrary steps: block count, KV sum and departures equal a per-sequence tally."""
    batch = DecodeBatch(block, capacity_blocks=10**9)
    lens: dict[int, int] = {}
    left: dict[int, int] = {}
    for rid, (advance, kv_len, remaining) in enumerate(events):
        # run `advance` steps one at a time, retiring finished sequences at each boundary
        for _ in range(advance):
            if not lens:
                break
            batch.advance(1)
            for r in list(lens):
                lens[r] += 1
                left[r] -= 1
            done = {r for r, k in left.items() if k == 0}
            assert {r for r, _ in batch.pop_finished()} == done
            for r in done:
                del lens[r], left[r]
        batch.join(rid, kv_len, remaining)
        lens[rid], left[rid] = kv_len, remaining
        assert batch.kv_tokens() == sum(lens.values())
        assert batch.blocks() == brute_blocks(list(lens.values()), block)
        for ahead in (1, 5, 17):
            future = [length + ahead for length in lens.values()]
            assert batch.blocks(batch.steps_done + ahead) == brute_blocks(future, block)
        assert batch.next_finish_step() - batch.steps_done == min(left.values())


@settings(max_examples=60, deadline=None)
@given(block=st.sampled_from([1, 4, 16]),
       lens=st.lists(st.integers(1, 300), min_size=1, max_size=8),
       spare=st.integers(0, 40), limit=st.integers(1, 200))
def test_steps_that_fit_is_the_last_step_within_capacity(block, lens, spare, limit):
    capacity = brute_blocks(lens, block) + spare
    batch = DecodeBatch(block, capacity)
    for rid, length in enumerate(lens):
        batch.join(rid, length, 10**6)
    fit = batch.steps_that_fit(limit)
    assert 0 <= fit <= limit
    for j in range(fit):
        assert brute_blocks([x + j for x in lens], block) <= capacity
    if fit < limit:
        assert brute_blocks([x + fit for x in lens], block) > capacity


def test_preempted_sequence_leaves_the_finish_heap():
    batch = DecodeBatch(16, 100)
    batch.join(1, 10, 3)
    batch.join(2, 10, 5)
    batch.leave(1)
    assert batch.next_finish_step() == 5
    assert batch.last_joined() == 2
    batch.advance(5)
    assert batch.pop_finished() == [(2, 0)]
    assert batch.n == 0 and batch.kv_tokens() == 0 and batch.blocks() == 0


@settings(max_examples=80, deadline=None)
@given(a=st.floats(1e-4, 5e-2), b=st.floats(0, 1e-6), k0=st.integers(1, 10**6),
       n=st.integers(1, 512), steps=st.integers(1, 3000), frac=st.floats(0, 1.2))
def test_boundary_solver_matches_a_scan(a, b, k0, n, steps, frac):
    k0 = max(k0, n)  # every sequence attends at least one token
    spans = [epoch_span(k, a, b, k0, n) for k in range(steps + 1)]
    elapsed = frac * spans[-1]
    k = boundary_at_or_after(elapsed, a, b, k0, n, steps)
    expected = next((i for i, t in enumerate(spans) if t >= elapsed), steps)
    assert k == expected
    done = steps_completed_by(elapsed, a, b, k0, n, steps)
    assert done == max(i for i, t in enumerate(spans) if t <= elapsed or i == 0)


def test_epoch_span_is_the_sum_of_its_steps():
    a, b, k0, n = 0.007, 3e-8, 5000, 12
    steps = [a + b * (k0 + j * n) for j in range(40)]
    assert math.isclose(epoch_span(40, a, b, k0, n), sum(steps), rel_tol=1e-12)


def test_step_end_times_rebuild_every_step():
    log = EpochLog()
    log.append(Epoch(1.0, 0, 3, 0.01, 1e-6, 100, 2), 3)
    log.append(Epoch(2.0, 3, 9, 0.02, 0.0, 50, 1), 2)
    ends = step_end_times(log.arrays())
    expected = [1.0 + 0.01 + 1e-6 * 100, 1.0 + 0.02 + 1e-6 * 202, 1.0 + 0.03 + 1e-6 * 306,
                2.02, 2.04]
    np.testing.assert_allclose(ends, expected, rtol=0, atol=1e-15)
