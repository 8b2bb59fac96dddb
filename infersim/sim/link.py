"""A KV link: a network path KV caches cross, shared fairly by every transfer on it.

What one link stands for is decided by :meth:`~infersim.sim.spec.ClusterSpec.link_between`: an
explicit link is the one path between a prefill pool and a decode pool, used by all the sending
pool's instances; over a scale-up fabric each prefill instance has a link of its own, its egress
ports, so transfers from different instances do not slow one another.

A link is a processor-sharing server. With k transfers in flight each gets ``bandwidth / k``; a
burst of transfers therefore slows every one of them. This is computed exactly and event-driven
with *virtual time*: all active transfers advance at the same rate, so the link keeps a single
counter V of bytes each active transfer has received so far (``dV/dt = bandwidth / k``). A
transfer of N bytes started when the counter read V0 completes when V reaches V0 + N; the heap of
those targets gives the next completion, and the only event the link schedules is that one,
recomputed whenever a transfer starts or ends.

After its bytes are through, a transfer still waits the link latency before the KV is usable at
the other end. With layer-wise overlap (the prefill streams each layer's KV as soon as it is
computed) a transfer starts with the prefill, but cannot complete before the prefill ends plus the
time the last layer's share takes at the link's full bandwidth.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import Any

from infersim.sim.clock import NORMAL, Clock, call_later, heappush


class KVLink:
    """Fair-shared bandwidth of one path; delivers each transfer to a callback."""

    __slots__ = ("_active", "_heap", "_last_at", "_seq", "_timer", "_virtual", "bandwidth",
                 "busy_s", "bytes_moved", "env", "latency_s", "name", "on_ready",
                 "peak_concurrency", "transfers")

    def __init__(self, env: Clock, name: str, bandwidth: float, latency_s: float,
                 on_ready: Callable[[int, Any, float], None]) -> None:
        self.env = env
        self.on_ready = on_ready  # called (request, destination, ready_at) per finished transfer
        self.name = name
        self.bandwidth = bandwidth
        self.latency_s = latency_s
        self._virtual = 0.0
        self._last_at = 0.0
        self._active = 0
        self._heap: list[tuple[float, int, float, int, object]] = []
        self._seq = 0
        self._timer = 0  # token of the pending completion call; calls with older ones are stale
        self.bytes_moved = 0.0
        self.busy_s = 0.0
        self.transfers = 0
        self.peak_concurrency = 0

    def _catch_up(self, now: float) -> None:
        if self._active:
            elapsed = now - self._last_at
            self._virtual += elapsed * self.bandwidth / self._active
            self.busy_s += elapsed
        self._last_at = now

    def transfer(self, nbytes: float, rid: int, destination: object,
                 not_before_at: float = 0.0) -> None:
        """Start moving ``nbytes`` of request ``rid``'s KV now, towards ``destination``."""
        now = self.env.now
        active = self._active
        if active:  # self._catch_up(now), written out: once per request
            elapsed = now - self._last_at
            self._virtual += elapsed * self.bandwidth / active
            self.busy_s += elapsed
        self._last_at = now
        self._seq += 1
        heapq.heappush(self._heap, (self._virtual + nbytes, self._seq, not_before_at, rid,
                                    destination))
        self._active += 1
        self.transfers += 1
        self.bytes_moved += nbytes
        if self._active > self.peak_concurrency:
            self.peak_concurrency = self._active
        # self._reschedule(now), written out: once per request
        self._timer = timer = self._timer + 1
        env = self.env
        # call_later(env, delay, self._complete, timer), written out: once per request
        heappush(env.queue, (now + max(0.0, (self._heap[0][0] - self._virtual) * self._active
                                       / self.bandwidth),
                             NORMAL, next(env.sequence), self._complete, timer))

    def _reschedule(self, now: float) -> None:
        self._timer += 1
        if not self._heap:
            return
        delay = max(0.0, (self._heap[0][0] - self._virtual) * self._active / self.bandwidth)
        call_later(self.env, delay, self._complete, self._timer)

    def _complete(self, token: int) -> None:
        if token != self._timer:
            return  # superseded by a later start or completion
        now = self.env.now
        # self._catch_up(now), written out: once per request (a completion always finds the
        # link busy)
        elapsed = now - self._last_at
        self._virtual += elapsed * self.bandwidth / self._active
        self.busy_s += elapsed
        self._last_at = now
        heap = self._heap
        target, _, not_before_at, rid, destination = heapq.heappop(heap)
        # the timer was aimed at this target; absorb float rounding so no transfer lingers
        if target > self._virtual:
            self._virtual = target
        self._active -= 1
        ready = self.on_ready
        if not heap:  # the usual case: the link falls idle
            self._timer += 1
            ready(rid, destination, max(now, not_before_at) + self.latency_s)
            return
        if heap[0][0] > self._virtual:  # one transfer done, others still moving
            self._reschedule(now)
            ready(rid, destination, max(now, not_before_at) + self.latency_s)
            return
        finished = [(not_before_at, rid, destination)]
        while heap and heap[0][0] <= self._virtual:
            _, _, not_before_at, rid, destination = heapq.heappop(heap)
            self._active -= 1
            finished.append((not_before_at, rid, destination))
        self._reschedule(now)
        for not_before_at, rid, destination in finished:
            ready(rid, destination, max(now, not_before_at) + self.latency_s)

    def record(self) -> dict[str, float | int | str]:
        """This link's row of the run's link table."""
        return {"link": self.name, "bandwidth": self.bandwidth, "latency_s": self.latency_s,
                "bytes_moved": self.bytes_moved, "busy_s": self.busy_s,
                "transfers": self.transfers, "peak_concurrency": self.peak_concurrency}

    def finish(self, stop_at: float) -> None:
        """The run stopped: bring the busy-time counter up to ``stop_at``."""
        self._catch_up(stop_at)
