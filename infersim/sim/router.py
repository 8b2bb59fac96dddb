"""Routing policies: which instance serves a request.

The router makes two decisions per request: on arrival, which prefill (or mixed) instance
computes its prompt; after prefill, which decode instance generates its tokens. Each policy is a
short class registered by name; a scenario picks one for each decision. Policies read the load
the instances report into shared numpy arrays (:class:`InstanceLoads`), so one decision over
dozens of instances is a single vectorised ``argmin``.

- ``round_robin``: instances in turn.
- ``least_outstanding_tokens``: the least work assigned and not yet done, in tokens (prompt
  tokens not yet prefilled; output tokens not yet generated).
- ``join_shortest_queue``: the fewest requests assigned and not yet done.
- ``power_of_two``: two instances drawn at random (the run's seeded generator), the one with fewer
  outstanding tokens wins: nearly the quality of a full scan at a fraction of the information.
- ``kv_aware``: the lowest fraction of KV memory committed (blocks in use plus blocks promised to
  requests on their way): what decides whether a decode instance can take a request.
- ``prefix_affinity``: the instance whose prefix cache (:mod:`infersim.sim.prefix`) already holds
  the longest run of this request's leading prompt blocks, so that it computes the fewest
  tokens; with no match anywhere, least outstanding tokens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from infersim.errors import InfersimError
from infersim.sim.prefix import PrefixCache


class InstanceLoads:
    """Load figures of a group of candidate instances, kept current by the instances."""

    __slots__ = ("kv_capacity_blocks", "kv_committed_fraction", "outstanding_requests",
                 "outstanding_tokens", "prefix_caches", "size")

    def __init__(self, kv_capacity_blocks: list[int]) -> None:
        # per instance (None: an instance without one), when prompts share prefixes
        self.prefix_caches: list[PrefixCache | None] | None = None
        self.size = len(kv_capacity_blocks)
        self.outstanding_tokens = np.zeros(self.size, dtype=np.int64)
        self.outstanding_requests = np.zeros(self.size, dtype=np.int64)
        # KV blocks in use plus promised to requests on their way, over capacity
        self.kv_committed_fraction = np.zeros(self.size)
        self.kv_capacity_blocks = np.asarray(kv_capacity_blocks, dtype=np.int64)


class RoutingPolicy(ABC):
    """Chooses one of ``loads.size`` candidate instances for a request."""

    name: ClassVar[str] = ""

    def __init__(self, loads: InstanceLoads, rng: np.random.Generator, *,
                 prefix_hashes: tuple[np.ndarray, ...] | None = None) -> None:
        self.loads = loads
        self.rng = rng

    @abstractmethod
    def choose(self, rid: int) -> int:
        """Index (into the candidate group) of the instance that takes request ``rid``."""


POLICIES: dict[str, type[RoutingPolicy]] = {}


def register(cls: type[RoutingPolicy]) -> type[RoutingPolicy]:
    POLICIES[cls.name] = cls
    return cls


@register
class RoundRobin(RoutingPolicy):
    name = "round_robin"

    def __init__(self, loads: InstanceLoads, rng: np.random.Generator, **kw: object) -> None:
        super().__init__(loads, rng)
        self._next = 0

    def choose(self, rid: int) -> int:
        i = self._next
        self._next = (i + 1) % self.loads.size
        return i


@register
class LeastOutstandingTokens(RoutingPolicy):
    name = "least_outstanding_tokens"

    def choose(self, rid: int) -> int:
        return int(self.loads.outstanding_tokens.argmin())


@register
class JoinShortestQueue(RoutingPolicy):
    name = "join_shortest_queue"

    def choose(self, rid: int) -> int:
        return int(self.loads.outstanding_requests.argmin())


@register
class PowerOfTwo(RoutingPolicy):
    name = "power_of_two"

    def choose(self, rid: int) -> int:
        size = self.loads.size
        if size == 1:
            return 0
        i, j = self.rng.choice(size, 2, replace=False)
        tokens = self.loads.outstanding_tokens
        return int(i if tokens[i] <= tokens[j] else j)


@register
class KVAware(RoutingPolicy):
    name = "kv_aware"

    def choose(self, rid: int) -> int:
        return int(self.loads.kv_committed_fraction.argmin())


@register
class PrefixAffinity(RoutingPolicy):
    name = "prefix_affinity"

    def __init__(self, loads: InstanceLoads, rng: np.random.Generator, *,
                 prefix_hashes: tuple[np.ndarray, ...] | None = None) -> None:
        super().__init__(loads, rng)
        self._hashes = prefix_hashes

    def choose(self, rid: int) -> int:
        fallback = int(self.loads.outstanding_tokens.argmin())
        caches = self.loads.prefix_caches
        if self._hashes is None or caches is None:
            return fallback
        blocks = self._hashes[rid]
        best, best_count = fallback, 0
        for i, cache in enumerate(caches):
            if cache is None:
                continue
            count = cache.match(blocks)
            if count > best_count:
                best, best_count = i, count
        return best


def make_policy(name: str, loads: InstanceLoads, rng: np.random.Generator, *, field: str,
                prefix_hashes: tuple[np.ndarray, ...] | None = None) -> RoutingPolicy:
    """The policy registered as ``name``; an unknown name lists the known ones."""
    cls = POLICIES.get(name)
    if cls is None:
        raise InfersimError(field=field, expected="one of " + ", ".join(sorted(POLICIES)),
                            given=name)
    return cls(loads, rng, prefix_hashes=prefix_hashes)
