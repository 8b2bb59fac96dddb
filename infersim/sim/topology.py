"""The KV paths of a cluster: which link each prefill instance's transfers take to each decode
pool.

What one link stands for is decided by :meth:`~infersim.sim.spec.ClusterSpec.link_between`:

- an explicit link between a prefill pool and a decode pool is one path, shared by every
  transfer between them (keyed ``(prefill pool, decode pool)``);
- an explicit link *per sending instance* (scale-out NICs) is copied for each prefill instance,
  towards that decode pool only, since each explicit link states its own bandwidth (keyed
  ``(prefill pool, instance number, decode pool)``, named ``prefill.3->decode``);
- over a shared scale-up domain the egress depends on the sending chips only, so each prefill
  instance has one link carrying its transfers to every decode pool it reaches over the fabric
  (keyed ``(prefill pool, instance number)``, named ``prefill.3->decode+decode2``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from infersim.sim.clock import Clock
from infersim.sim.link import KVLink
from infersim.sim.ports import FrontInstance
from infersim.sim.spec import ClusterSpec, LinkSpec, PoolSpec


@dataclass(frozen=True)
class Topology:
    """Every link of a run, and per front instance (by its slot) the link towards each decode
    pool (by name); mixed instances send nothing and have an empty map."""

    links: dict[tuple, KVLink]
    out_links: list[dict[str, KVLink]]


def build_topology(env: Clock, cluster: ClusterSpec, front: Sequence[FrontInstance],
                   back_pools: Sequence[PoolSpec],
                   on_ready: Callable[[int, Any, float], None]) -> Topology:
    """The links between ``front``'s prefill instances and the decode pools; each reports a
    finished transfer to ``on_ready``."""
    links: dict[tuple, KVLink] = {}
    out_links: list[dict[str, KVLink]] = [{} for _ in front]
    for p in cluster.pools:
        if p.role != "prefill":
            continue
        senders = [inst for inst in front if inst.pool is p]
        fabric: list[tuple[PoolSpec, LinkSpec]] = []  # decode pools reached over the fabric
        for d in back_pools:
            spec = cluster.link_between(p, d)
            if spec.per_sender_instance and not any(spec is e for e in cluster.links):
                fabric.append((d, spec))
                continue
            if spec.per_sender_instance:
                for inst in senders:
                    link = KVLink(env, f"{inst.name}->{d.name}", spec.bandwidth, spec.latency_s,
                                  on_ready)
                    links[(p.name, inst.local_index, d.name)] = link
                    out_links[inst.slot][d.name] = link
                continue
            link = KVLink(env, spec.name, spec.bandwidth, spec.latency_s, on_ready)
            links[(p.name, d.name)] = link
            for inst in senders:
                out_links[inst.slot][d.name] = link
        if fabric:
            spec = fabric[0][1]
            towards = "+".join(d.name for d, _ in fabric)
            for inst in senders:
                link = KVLink(env, f"{inst.name}->{towards}", spec.bandwidth, spec.latency_s,
                              on_ready)
                links[(p.name, inst.local_index)] = link
                for d, _ in fabric:
                    out_links[inst.slot][d.name] = link
    return Topology(links=links, out_links=out_links)
