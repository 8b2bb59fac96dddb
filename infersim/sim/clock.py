"""The engine's clock: SimPy's event queue, driven with as little per-event overhead as possible.

A million simulated requests make several million events, so the cost of one event matters as
much as the cost of the modelling around it. The engine therefore keeps SimPy's environment (its
clock and its priority queue, ordered by time, then priority, then creation order) but schedules
most of its events as plain callbacks instead of resuming generator processes:

- :func:`call_later` puts a :class:`Call` on the queue: a minimal event that, when its time
  comes, calls one function with itself (its ``value`` carries the payload). It takes its place in
  the queue exactly as ``env.timeout(delay)`` with that callback appended would, so the order of
  simultaneous events is the one SimPy would give;
- :func:`run_until` steps the queue like ``Environment.run(until=event)``, with the loop inlined.

Both use three attributes SimPy has kept stable since version 3 (``_queue``, ``_eid``, ``_now``);
:func:`check_simpy` fails loudly, once per run, should a future SimPy rename them.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

import simpy
from simpy.core import StopSimulation
from simpy.events import NORMAL, URGENT

__all__ = ["NORMAL", "URGENT", "Call", "call_later", "check_simpy", "run_until"]


class Call:
    """A SimPy-compatible event that runs one callback (``callback(event)``) when processed."""

    __slots__ = ("_ok", "_value", "callbacks")

    def __init__(self, callback: Callable[[Call], None], value: Any) -> None:
        self.callbacks = [callback]
        self._value = value
        self._ok = True

    @property
    def value(self) -> Any:
        return self._value


def call_later(env: simpy.Environment, delay: float, callback: Callable[[Call], None],
               value: Any = None, priority: int = NORMAL) -> Call:
    """Run ``callback(event)`` ``delay`` seconds from now; the same queue slot as a timeout."""
    event = Call(callback, value)
    heappush(env._queue, (env._now + delay, priority, next(env._eid), event))
    return event


def check_simpy(env: simpy.Environment) -> None:
    """The SimPy internals the clock relies on are there."""
    for name in ("_queue", "_eid", "_now"):
        if not hasattr(env, name):
            raise RuntimeError(f"simpy {simpy.__version__}: Environment.{name} is gone; the "
                               f"engine's clock (infersim.sim.clock) needs updating")


def run_until(env: simpy.Environment, stop: simpy.Event) -> None:
    """Process events until ``stop`` has been processed (``env.run(until=stop)``)."""
    if stop.callbacks is None:
        return
    stop.callbacks.append(StopSimulation.callback)
    queue = env._queue
    try:
        while queue:
            env._now, _, _, event = heappop(queue)
            callbacks, event.callbacks = event.callbacks, None
            for callback in callbacks:
                callback(event)
            if not event._ok and not hasattr(event, "_defused"):
                exc = type(event._value)(*event._value.args)
                exc.__cause__ = event._value
                raise exc
    except StopSimulation:
        return
    raise RuntimeError("no scheduled events left but the run's stop event was not triggered")
