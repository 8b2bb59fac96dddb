"""From a checked scenario to what the engine runs: its frozen
:class:`~infersim.sim.ClusterSpec` and the workload.

:func:`prepare_run` is everything ``infersim run`` does before the clock starts, and all that
``infersim validate`` does: the two share it, so a scenario that validates runs (no check is
made only once the simulation is under way).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infersim.scenario.preflight import (
    Resolved,
    beyond_context_requests,
    beyond_context_warning,
    build_workload_for,
    check_scenario,
)
from infersim.scenario.schema import DECODE_POLICIES, ROUTER_POLICIES, Scenario
from infersim.scenario.seeds import run_streams


@dataclass(frozen=True)
class Prepared:
    """A scenario ready to simulate: checked, its cluster spec built, its workload drawn."""

    scenario: Scenario
    resolved: Resolved
    cluster: Any  # ClusterSpec
    workload: Any  # RequestTable or ClosedLoop
    engine_seed: int
    beyond_context: int  # requests longer than the model's context window (served, warned)
    warnings: tuple[str, ...]


def prepare_run(scenario: Scenario) -> Prepared:
    """Every check and every input of a run, short of starting the engine."""
    resolved = check_scenario(scenario)
    cluster = build_cluster(scenario, resolved)
    workload_rng, engine_seed = run_streams(scenario.seed)
    workload = build_workload_for(scenario, workload_rng)
    # Served as if the model had no window: counted in the summary and warned about, not refused.
    beyond = beyond_context_requests(resolved, workload)
    warnings = (beyond_context_warning(resolved, beyond, len(workload)),) if beyond else ()
    return Prepared(scenario=scenario, resolved=resolved, cluster=cluster, workload=workload,
                    engine_seed=engine_seed, beyond_context=beyond, warnings=warnings)


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
