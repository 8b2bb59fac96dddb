"""The engine's clock: bare calls keep the places SimPy timeouts would take."""

from __future__ import annotations

import pytest

from infersim.sim.clock import URGENT, Clock, call_later, run_until


def test_bare_calls_and_simpy_events_run_in_simpy_order():
    env = Clock()
    seen = []
    env.timeout(1.0).callbacks.append(lambda _ev: seen.append("timeout a"))
    call_later(env, 1.0, seen.append, "call b")
    call_later(env, 0.5, seen.append, "call c")
    env.timeout(1.0).callbacks.append(lambda _ev: seen.append("timeout d"))
    call_later(env, 1.0, seen.append, "urgent e", priority=URGENT)
    env.run()
    # by time, then urgent before normal, then creation order
    assert seen == ["call c", "urgent e", "timeout a", "call b", "timeout d"]
    assert env.now == 1.0


def test_run_until_stops_at_the_stop_event_and_complains_when_it_never_comes():
    env = Clock()
    stop = env.event()
    seen = []
    call_later(env, 2.0, lambda _v: stop.succeed())
    call_later(env, 3.0, seen.append, "after the stop")
    run_until(env, stop)
    assert env.now == 2.0 and seen == []
    never = Clock()
    call_later(never, 1.0, seen.append, "x")
    with pytest.raises(RuntimeError, match="stop event"):
        run_until(never, never.event())


def test_processes_run_on_the_clock():
    env = Clock()
    seen = []

    def proc():
        yield env.timeout(1.5)
        seen.append(env.now)

    env.process(proc())
    call_later(env, 1.0, seen.append, "call")
    env.run()
    assert seen == ["call", 1.5]
