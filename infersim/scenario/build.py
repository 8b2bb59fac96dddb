"""From a checked scenario to the engine's frozen :class:`~infersim.sim.ClusterSpec`."""

from __future__ import annotations

from typing import Any

from infersim.scenario.preflight import Resolved, check_scenario
from infersim.scenario.schema import DECODE_POLICIES, ROUTER_POLICIES, Scenario


def build_cluster(scenario: Scenario, resolved: Resolved | None = None) -> Any:
    """The engine's frozen :class:`~infersim.sim.ClusterSpec` for a checked scenario."""
    from infersim.sim import ClusterSpec, LinkSpec, PoolSpec, RouterSpec

    resolved = resolved or check_scenario(scenario)
    pools = tuple(
        PoolSpec(name=name, role=pool.role, deployment=resolved.deployments[name],
                 instances=pool.instances, max_batch_tokens=pool.max_batch_tokens,
                 max_batch_size=pool.max_batch_size, chunked_prefill=pool.chunked_prefill,
                 block_size=pool.block_size, memory_fraction=pool.memory_fraction,
                 preemption=pool.preemption, scaleup_domain=pool.scaleup_domain,
                 host_bandwidth=pool.host_bandwidth, kv_reservation=pool.kv_reservation,
                 first_token_from=pool.first_token_from)
        for name, pool in scenario.pools.items())
    links = tuple(LinkSpec(a=link.between[0], b=link.between[1], bandwidth=link.bandwidth,
                           latency_s=link.latency, per_sender_instance=link.per == "instance")
                  for link in scenario.links)
    router = RouterSpec(policy=ROUTER_POLICIES[scenario.router.policy],
                        decode_policy=DECODE_POLICIES[scenario.router.decode_policy],
                        queue_limit=scenario.router.queue_limit,
                        prefix_cache_blocks=scenario.router.prefix_cache_blocks)
    return ClusterSpec(pools=pools, links=links, router=router,
                       layerwise_kv_overlap=scenario.layerwise_kv_overlap)
