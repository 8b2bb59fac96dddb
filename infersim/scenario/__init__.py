"""The scenario file: one YAML that fixes a whole experiment.

A scenario names the model and its precision, the pools of identical instances that serve it
(each pool has a role: ``prefill`` pools turn prompts into KV cache, ``decode`` pools generate
tokens from it, ``mixed`` pools do both, vLLM-style), the links that carry KV cache from prefill
to decode pools, the router, the workload, the service-level objectives and the seed::

    name: disagg-h100-llama31-8b
    seed: 1
    model: llama-3.1-8b          # a shipped spec, or a path to a HF config.json
    precision: bf16
    pools:
      prefill: {role: prefill, hardware: h100, instances: 2, tp: 1, max_batch_tokens: 8192}
      decode:  {role: decode,  hardware: h100, instances: 4, tp: 1, max_batch_size: 256}
    links:
      - {between: [prefill, decode], bandwidth: 50 GB/s, latency: 10 us}
    router: {policy: least_loaded}
    workload: {...}              # infersim.workload.WorkloadConfig
    slo: {ttft_ms: 1000, itl_ms: 50, percentile: 99}

The file is checked at the edge, once: unknown keys are refused everywhere, quantities with units
go through :func:`infersim.units.parse_quantity`, and every mistake becomes one
:class:`~infersim.errors.InfersimError` line naming the file, the field path, what was expected
and what was given. ``--set key.path=value`` overrides any field before validation. A validated
:class:`Scenario` turns into the engine's frozen specs with :func:`build_cluster`;
:func:`check_scenario` adds the cross-field physics (the model fits each instance, the TP/PP
layout is one an engine can run, every prefill pool reaches a decode pool, a scale-up domain
holds no more chips than the rack has).

The package follows that flow, one concern per module: :mod:`~infersim.scenario.schema` (the
models), :mod:`~infersim.scenario.loading` (files, names, ``--set`` overrides, the seed),
:mod:`~infersim.scenario.preflight` (the cross-field checks and the loaded chips and model),
:mod:`~infersim.scenario.build` (the engine's specs), :mod:`~infersim.scenario.digests` (the
hash) and :mod:`~infersim.scenario.seeds` (every seed derivation). Pydantic's errors are worded
by :mod:`infersim.schema_errors`, which serves every loader.

Relative paths inside a scenario (a model's ``config.json``, a trace file) are relative to the
scenario file. The resolved scenario (after overrides and the seed) has a hash: the first 16 hex
digits of the SHA-256 of its canonical JSON, saved with every result.

Router policies (``router.policy`` for a new request's first pool, ``router.decode_policy`` for
the decode instance that receives its KV cache) take these names, mapped onto the engine's
registry (``ROUTER_POLICIES``):

=========================  ===============================================================
``least_loaded``           least work queued or running, in tokens (the engine's
                           ``least_outstanding_tokens``); the default for ``policy``
``shortest_queue``         fewest requests queued or running (``join_shortest_queue``)
``round_robin``            instances in turn
``power_of_two``           the less loaded of two instances drawn at random
``prefix_affinity``        the instance whose prefix cache holds the longest run of the
                           prompt's leading blocks (traces with prefix hashes)
``kv_aware``               the most free KV memory; the default for ``decode_policy``
=========================  ===============================================================

The engine's own names are accepted too. A link's ``bandwidth`` is one direction. With
``per: pool`` (the default) it is the whole link's, shared fairly by all transfers in flight on it
from every instance of the sending pool; with ``per: instance`` it is each sending instance's
egress (its chips' scale-out NICs), shared fairly by that instance's transfers only.
"""

from infersim.scenario.build import build_cluster
from infersim.scenario.loading import (
    apply_overrides,
    attributed,
    find_scenario,
    load_scenario,
    validate_data,
)
from infersim.scenario.preflight import (
    Resolved,
    check_layout,
    check_scaleup_domains,
    check_scenario,
    check_topology,
    decode_slo_warnings,
    resolve,
)
from infersim.scenario.schema import (
    DECODE_POLICIES,
    ROUTER_POLICIES,
    Bandwidth,
    Duration,
    LinkConfig,
    Name,
    PoolConfig,
    PositiveDuration,
    RouterConfig,
    Scenario,
    ScenarioSLO,
    input_digests,
    json_schema,
    scenario_hash,
)
from infersim.scenario.seeds import derive_seed, run_streams, workload_rng

__all__ = [
    "DECODE_POLICIES", "ROUTER_POLICIES", "Bandwidth", "Duration", "LinkConfig", "Name",
    "PoolConfig", "PositiveDuration", "Resolved", "RouterConfig", "Scenario", "ScenarioSLO",
    "apply_overrides", "attributed", "build_cluster", "check_layout", "check_scaleup_domains",
    "check_scenario", "check_topology", "decode_slo_warnings", "derive_seed", "find_scenario",
    "input_digests", "json_schema", "load_scenario", "resolve", "run_streams", "scenario_hash",
    "validate_data", "workload_rng",
]
