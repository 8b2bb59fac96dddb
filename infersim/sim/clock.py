"""The engine's clock: SimPy's event queue, driven with as little per-event overhead as possible.

A million simulated requests make several million events, so the cost of one event matters as
much as the cost of the modelling around it. The engine therefore keeps SimPy's environment (its
clock and its priority queue, ordered by time, then priority, then creation order) but schedules
most of its events as plain callbacks instead of resuming generator processes:

- :func:`call_later` puts a bare call on the queue (no event object): when its time comes,
  ``callback(value)`` runs. It takes its place in the queue exactly as ``env.timeout(delay)``
  with that callback appended would, so simultaneous events keep the order SimPy would give;
- :func:`run_until` steps the queue like ``Environment.run(until=event)``, running bare calls
  and SimPy events (the stop event, processes) alike.

``Clock.step`` and :func:`run_until` pop entries differently (one raises ``EmptySchedule``, the
other loops while the queue has entries) but process each the same way, in :func:`_dispatch`.
Inlining that body into the loop was measured at under 1 % of the engine's CPU time (100,000
requests of ``benchmarks/bench_engine.py``: 2.57-2.64 s inlined, 2.59-2.68 s shared, within the
run-to-run spread), not worth two copies to keep in step.

The few handlers that run once or more per request write :func:`call_later` out, as
``heappush(env.queue, (now + delay, NORMAL, next(env.sequence), callback, value))``, through the
Clock's public names for SimPy's queue and creation counter (a function call per event was
measured at ~5 % of the engine's CPU time, 100,000 requests of ``benchmarks/bench_engine.py``).

A bare call cannot be cancelled; a component that may supersede one (a link's next completion,
a decode epoch's end) passes a token as the value and ignores calls whose token is stale.

Both need a :class:`Clock`, the SimPy environment whose ``step`` knows bare calls. They use three
attributes SimPy has kept stable since version 3 (``_queue``, ``_eid``, ``_now``); a Clock fails
loudly when created, should a future SimPy rename them.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import EmptySchedule, StopSimulation
from simpy.events import NORMAL, URGENT

__all__ = ["NORMAL", "URGENT", "Clock", "call_later", "heappush", "run_until"]


def call_later(env: Clock, delay: float, callback: Callable[[Any], None],
               value: Any = None, priority: int = NORMAL) -> None:
    """Run ``callback(value)`` ``delay`` seconds from now, in the queue slot a timeout created
    now would take (same time, priority and creation order)."""
    heappush(env.queue, (env._now + delay, priority, next(env.sequence), callback, value))


class Clock(simpy.Environment):
    """A SimPy environment whose queue also holds bare calls (see the module docstring).

    ``step`` (hence ``run``) processes both kinds, so the usual SimPy API works on it; the
    engine drives it with the faster :func:`run_until`.
    """

    # SimPy's ``now`` is a property over ``_now``; here it is a plain attribute that
    # :func:`_dispatch` keeps equal to ``_now``, so that a read (ten per simulated request) costs
    # an attribute load, not a function call
    now: float = 0.0

    def __init__(self, initial_time: float = 0) -> None:
        super().__init__(initial_time)
        self.now = self._now
        for name in ("_queue", "_eid", "_now"):
            if not hasattr(self, name):
                raise RuntimeError(f"simpy {simpy.__version__}: Environment.{name} is gone; "
                                   f"the engine's clock (infersim.sim.clock) needs updating")
        # the queue (SimPy types its entries as events; bare calls join them) and the creation
        # counter, for handlers that write call_later out (see the module docstring)
        self.queue: list[Any] = self._queue
        self.sequence = self._eid

    def step(self) -> None:
        try:
            entry = heappop(self._queue)
        except IndexError:
            raise EmptySchedule from None
        _dispatch(self, entry)


def _dispatch(env: Clock, entry: tuple) -> None:
    """Process one entry popped off the queue: advance the clock to its time, then run the bare
    call, or the SimPy event's callbacks (re-raising a failed event no one defused, as SimPy
    does)."""
    env._now = env.now = entry[0]
    if len(entry) == 5:
        entry[3](entry[4])
        return
    event = entry[3]
    callbacks, event.callbacks = event.callbacks, None
    for callback in callbacks:
        callback(event)
    if not event._ok and not hasattr(event, "_defused"):
        exc = type(event._value)(*event._value.args)
        exc.__cause__ = event._value
        raise exc


def run_until(env: Clock, stop: simpy.Event) -> None:
    """Process events until ``stop`` has been processed (``env.run(until=stop)``).

    Queue entries are SimPy's ``(time, priority, id, event)``, or the clock's own
    ``(time, priority, id, callback, value)``: no event object, just the call.
    """
    if stop.callbacks is None:
        return
    stop.callbacks.append(StopSimulation.callback)
    queue = env._queue
    try:
        while queue:
            _dispatch(env, heappop(queue))
    except StopSimulation:
        return
    raise RuntimeError("no scheduled events left but the run's stop event was not triggered")
