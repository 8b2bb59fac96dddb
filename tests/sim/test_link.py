"""A KV link is a fair-share (processor-sharing) server: checked against a plain fluid model."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.sim.clock import Clock
from infersim.sim.link import KVLink


def fluid_finish_times(starts: list[float], sizes: list[float], bandwidth: float) -> list[float]:
    """Reference: step from event to event, giving each active transfer bandwidth / k."""
    left = {}
    done = [math.nan] * len(starts)
    order = sorted(range(len(starts)), key=lambda i: starts[i])
    now, nxt = 0.0, 0
    while nxt < len(order) or left:
        rate = bandwidth / len(left) if left else 0.0
        finish_in = min(left.values()) / rate if left else math.inf
        arrive_in = starts[order[nxt]] - now if nxt < len(order) else math.inf
        step = min(finish_in, arrive_in)
        for i in left:
            left[i] -= step * rate
        now += step
        for i in [i for i, v in left.items() if v <= 1e-9 * sizes[i]]:
            done[i] = now
            del left[i]
        while nxt < len(order) and starts[order[nxt]] <= now:
            left[order[nxt]] = sizes[order[nxt]]
            nxt += 1
    return done


def run_link(starts, sizes, bandwidth, latency_s=0.0, not_before=None):
    env = Clock()
    ready = [math.nan] * len(starts)

    def on_ready(rid, destination, at):
        assert destination == "decode.0"
        ready[rid] = at

    link = KVLink(env, "p-d", bandwidth, latency_s, on_ready)

    def start(i):
        def begin(_ev):
            link.transfer(sizes[i], i, "decode.0",
                          not_before_at=not_before[i] if not_before else 0.0)
        env.timeout(starts[i]).callbacks.append(begin)

    for i in range(len(starts)):
        start(i)
    env.run()
    return ready, link


def test_alone_a_transfer_takes_bytes_over_bandwidth_plus_latency():
    ready, link = run_link([1.0], [4e9], 50e9, latency_s=2e-5)
    assert ready[0] == pytest.approx(1.0 + 4e9 / 50e9 + 2e-5, rel=1e-12)
    assert link.bytes_moved == 4e9 and link.transfers == 1
    assert link.busy_s == pytest.approx(4e9 / 50e9)


def test_half_the_bandwidth_doubles_the_transfer_time():
    fast, _ = run_link([0.0], [1e9], 50e9)
    slow, _ = run_link([0.0], [1e9], 25e9)
    assert slow[0] == pytest.approx(2 * fast[0], rel=1e-12)


def test_two_concurrent_transfers_each_take_twice_as_long():
    alone, _ = run_link([0.0], [1e9], 50e9)
    both, link = run_link([0.0, 0.0], [1e9, 1e9], 50e9)
    assert both == pytest.approx([2 * alone[0]] * 2, rel=1e-12)
    assert link.peak_concurrency == 2


def test_a_burst_slows_a_transfer_already_in_flight():
    # 1 GB alone needs 20 ms; at 10 ms a second 1 GB arrives: the first has 0.5 GB left at
    # half rate (20 ms more), the second then runs alone for its last 0.5 GB (10 ms)
    ready, _ = run_link([0.0, 0.01], [1e9, 1e9], 50e9)
    assert ready == pytest.approx([0.03, 0.04], rel=1e-12)


def test_layerwise_floor_holds_back_delivery():
    ready, _ = run_link([0.0], [1e9], 50e9, latency_s=1e-3, not_before=[0.5])
    assert ready[0] == pytest.approx(0.501)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 0.05), st.floats(1e6, 2e9)), min_size=1, max_size=12),
       st.sampled_from([1e9, 50e9]))
def test_matches_the_fluid_model(transfers, bandwidth):
    starts = [s for s, _ in transfers]
    sizes = [b for _, b in transfers]
    ready, link = run_link(starts, sizes, bandwidth)
    expected = fluid_finish_times(starts, sizes, bandwidth)
    # abs 1e-11 s: two transfers overlapping for 1e-12 s (hypothesis found starts 0.001 and
    # 1e-12) round differently in the engine and the fluid model by ~2e-12 s
    assert ready == pytest.approx(expected, rel=1e-9, abs=1e-11)
    assert link.bytes_moved == pytest.approx(sum(sizes))
    # the link is never faster than its bandwidth
    assert max(ready) - min(starts) >= sum(sizes) / bandwidth * (1 - 1e-9)
