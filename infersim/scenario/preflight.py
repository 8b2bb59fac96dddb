"""Pre-flight: every check short of running, and the loaded chips, model and deployments.

:func:`check_scenario` adds the cross-field physics to a validated scenario: the pools' roles
and links make a KV path from every prefill pool to a decode pool, the model fits each
instance, the TP/PP layout is one an engine can run, a scale-up domain holds no more chips than
the rack has. Sizing that runs but cannot meet the ITL SLO is a warning, not an error.
``infersim validate`` and ``infersim run`` both call it before anything is simulated.

Then the workload, drawn exactly as a run draws it (:func:`build_scenario_workload`): how many
of its requests no decode instance can hold (:func:`oversized_requests`, the engine rejects
them) and how many are longer than the model's context window (:func:`beyond_context_requests`,
served all the same, and warned about).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from infersim.errors import InfersimError
from infersim.paths import find_data_file
from infersim.scenario.loading import attributed
from infersim.scenario.schema import Scenario
from infersim.scenario.seeds import workload_rng

# The logger keeps the name it had when the scenario was one module: users filter on it.
_log = logging.getLogger("infersim.scenario")

@dataclass(frozen=True)
class Resolved:
    """A scenario's loaded chips, model and per-pool deployments (what the engine needs)."""

    model: Any  # ModelSpec
    hardware: Mapping[str, Any]  # pool name -> HardwareProfile
    deployments: Mapping[str, Any]  # pool name -> Deployment
    placements: Mapping[str, Any]  # pool name -> Placement


def _load_model(scenario: Scenario) -> Any:
    """The scenario's model: a path (to a model YAML, a config.json or a folder holding one),
    taken from the scenario file's folder, or a shipped/user model name."""
    from infersim.model import list_models, load_model

    name = scenario.model
    candidate = scenario.base_dir / name
    if candidate.exists():
        target = str(candidate)
    elif "/" in name or name.endswith((".json", ".yaml", ".yml")):
        raise InfersimError(file=scenario.source, field="model",
                            expected="an existing model file or folder (a relative path is taken "
                                     "from the scenario file's folder)", given=str(candidate))
    elif find_data_file("models", name, (".yaml", ".yml", ".json")) is None:
        raise InfersimError(file=scenario.source, field="model",
                            expected="a shipped model (" + ", ".join(list_models()) +
                                     ") or a path to a config.json", given=name)
    else:
        target = name
    try:
        return load_model(target)
    except InfersimError as err:
        raise attributed(err, scenario.source) from None


def _load_hardware(scenario: Scenario, pool_name: str, name: str) -> Any:
    from infersim.hardware import list_hardware, load_hardware

    candidate = scenario.base_dir / name
    target = str(candidate) if candidate.is_file() else name
    if not candidate.is_file() and find_data_file("hardware", name) is None:
        raise InfersimError(file=scenario.source, field=f"pools.{pool_name}.hardware",
                            expected="a shipped chip (" + ", ".join(list_hardware()) +
                                     ") or a path to a hardware YAML", given=name)
    try:
        return load_hardware(target)
    except InfersimError as err:
        raise attributed(err, target) from None


def check_layout(scenario: Scenario, name: str, model: Any, chip: Any) -> None:
    """A pool's tensor/pipeline layout must be one a serving engine can run.

    Tensor parallelism splits every layer's attention heads over the chips of one scale-up
    domain (its all-reduces ride that fabric), so ``tp`` must divide the query heads, divide or be
    a multiple of the KV heads (KV heads are replicated beyond their count, as in vLLM), and fit in
    one domain. Pipeline parallelism gives each stage at least one layer. The rules live in
    :func:`infersim.cost.layout.check_layout`, which also bounds the layouts ``check_fits``
    advises when a model does not fit.
    """
    from infersim.cost.layout import check_layout as check_engine_layout

    pool = scenario.pools[name]
    check_engine_layout(model, chip, pool.tp, pool.pp, tp_field=f"pools.{name}.tp",
                        pp_field=f"pools.{name}.pp", file=scenario.source)


def resolve(scenario: Scenario) -> Resolved:
    """Load the model and chips and check that the model fits each pool's instance."""
    from infersim.cost import Deployment, check_fits

    model = _load_model(scenario)
    hardware: dict[str, Any] = {}
    deployments: dict[str, Any] = {}
    placements: dict[str, Any] = {}
    for name, pool in scenario.pools.items():
        chip = _load_hardware(scenario, name, pool.hardware)
        knobs = {k: getattr(pool, k) for k in ("compute_efficiency", "memory_efficiency")
                 if getattr(pool, k) is not None}
        if knobs:  # a calibrated deployment's own efficiencies replace the chip's
            chip = dataclasses.replace(chip, **knobs)
        precision = pool.precision or scenario.precision
        field = f"pools.{name}"
        try:
            chip.flops(precision)
        except InfersimError:
            raise InfersimError(file=scenario.source,
                                field=f"{field}.precision" if pool.precision else "precision",
                                expected="a precision " + chip.name + " computes in (" +
                                         ", ".join(chip.peak_flops) + ")",
                                given=precision) from None
        check_layout(scenario, name, model, chip)
        dep = Deployment(model=model, hardware=chip, precision=precision,
                         kv_precision=pool.kv_precision, tp=pool.tp, pp=pool.pp,
                         ideal=scenario.ideal, step_overhead_s=pool.step_overhead)
        try:
            placements[name] = check_fits(dep, pool.memory_fraction, field=field)
        except InfersimError as err:
            raise attributed(err, scenario.source) from None
        hardware[name], deployments[name] = chip, dep
    return Resolved(model=model, hardware=hardware, deployments=deployments,
                    placements=placements)


def check_topology(scenario: Scenario) -> None:
    """Roles that make sense, links that exist, KV paths from every prefill to every decode pool."""
    file = scenario.source
    roles = {name: pool.role for name, pool in scenario.pools.items()}
    prefill = [n for n, r in roles.items() if r == "prefill"]
    decode = [n for n, r in roles.items() if r == "decode"]
    if prefill and not decode:
        raise InfersimError(file=file, field=f"pools.{prefill[0]}.role",
                            expected="a decode pool to receive this prefill pool's KV cache "
                                     "(or role: mixed)", given="prefill")
    if decode and not prefill:
        raise InfersimError(file=file, field=f"pools.{decode[0]}.role",
                            expected="a prefill pool to fill this decode pool's KV cache "
                                     "(or role: mixed)", given="decode")
    for name, pool in scenario.pools.items():
        if pool.role in ("prefill", "decode") and pool.engine is not None:
            from infersim.engines import list_engines, load_engine

            if not load_engine(pool.engine, base_dir=scenario.base_dir).disaggregation:
                able = [e for e in list_engines() if load_engine(e).disaggregation]
                raise InfersimError(file=file, field=f"pools.{name}.engine",
                                    expected=f"an engine that serves disaggregated {pool.role} "
                                             f"pools ({', '.join(able)}), or role: mixed",
                                    given=pool.engine)
        if pool.role == "prefill" and pool.kv_reservation != "on_demand":
            raise InfersimError(file=file, field=f"pools.{name}.kv_reservation",
                                expected="on_demand in a prefill pool (it holds no decoding "
                                         "sequences; set it on the decode pool)",
                                given=pool.kv_reservation)
    linked: set[frozenset[str]] = set()
    for i, link in enumerate(scenario.links):
        for j, end in enumerate(link.between):
            if end not in roles:
                raise InfersimError(file=file, field=f"links.{i}.between.{j}",
                                    expected="a pool name (" + ", ".join(roles) + ")", given=end)
        a, b = link.between
        if a == b:
            raise InfersimError(file=file, field=f"links.{i}.between",
                                expected="two different pools", given=list(link.between))
        pair = frozenset((a, b))
        if pair in linked:
            raise InfersimError(file=file, field=f"links.{i}.between",
                                expected="one link per pair of pools", given=list(link.between))
        linked.add(pair)
    for p in prefill:
        for d in decode:
            same_domain = (scenario.pools[p].scaleup_domain is not None and
                           scenario.pools[p].scaleup_domain == scenario.pools[d].scaleup_domain)
            if not same_domain and frozenset((p, d)) not in linked:
                raise InfersimError(file=file, field="links",
                                    expected=f"a link between pools {p!r} and {d!r} (or a shared "
                                             "scaleup_domain) to carry the KV cache",
                                    given=[list(link.between) for link in scenario.links])


def check_scaleup_domains(scenario: Scenario, resolved: Resolved) -> None:
    """Pools sharing a scale-up domain run on one kind of chip and fit in one domain."""
    domains: dict[str, list[str]] = {}
    for name, pool in scenario.pools.items():
        if pool.scaleup_domain is not None:
            domains.setdefault(pool.scaleup_domain, []).append(name)
    for domain, members in domains.items():
        chips = {resolved.hardware[m].name for m in members}
        if len(chips) > 1:
            raise InfersimError(file=scenario.source, field=f"pools.{members[-1]}.scaleup_domain",
                                expected=f"pools in domain {domain!r} on one kind of chip",
                                given=sorted(chips))
        capacity = resolved.hardware[members[0]].scaleup_domain_chips
        used = sum(scenario.pools[m].instances * scenario.pools[m].tp * scenario.pools[m].pp
                   for m in members)
        if used > capacity:
            raise InfersimError(file=scenario.source, field=f"pools.{members[-1]}.scaleup_domain",
                                expected=f"at most {capacity} chips in scale-up domain {domain!r}"
                                         f" ({resolved.hardware[members[0]].name})",
                                given=f"{used} chips over pools {', '.join(members)}")


def _nominal_decode_context(scenario: Scenario) -> float | None:
    """Mean KV length a decoding sequence attends to, ``E[prompt] + E[output]/2``, when the
    workload states its lengths directly (``prompt_tokens`` + ``output_tokens``); None for mixes
    and traces, whose lengths are only known once read."""
    workload = scenario.workload
    if workload.prompt_tokens is None or workload.output_tokens is None:
        return None
    base = scenario.base_dir
    return (workload.prompt_tokens.nominal_mean(base_dir=base)
            + workload.output_tokens.nominal_mean(base_dir=base) / 2.0)


def decode_slo_warnings(scenario: Scenario, resolved: Resolved) -> list[str]:
    """One line per decode (or mixed) pool whose decode step, at the largest batch the pool
    allows, is slower than the scenario's ITL SLO: a sizing mistake visible before simulating.

    Every token of every sequence in a step waits the whole step, so a step longer than the ITL
    bound breaks the SLO for the whole batch whenever the pool fills up. The batch is the pool's
    ``max_batch_size``, or fewer where its KV room cannot hold that many sequences at the
    workload's mean decode context (``E[prompt] + E[output]/2``; for mixes and traces, whose
    lengths are not known before they are read, 1 token: a lower bound on the step). The line
    names the largest ``max_batch_size`` whose step meets the SLO. A mixed pool's steps also
    carry prompt chunks, so its real steps are longer still.
    """
    from infersim.cost import decode_time

    itl_ms = scenario.slo.itl_ms
    if itl_ms is None:
        return []
    known = _nominal_decode_context(scenario)
    context = max(1, round(known)) if known is not None else 1
    where = f"{scenario.source}: " if scenario.source else ""
    lines = []
    for name, pool in scenario.pools.items():
        if pool.role == "prefill":
            continue
        dep = resolved.deployments[name]
        room = resolved.placements[name].kv_capacity_tokens // context
        batch = min(pool.max_batch_size, room)
        if batch < 1:
            continue  # not even one sequence fits: validate's KV warning says so
        step_ms = 1e3 * decode_time(dep, batch, context)
        if step_ms <= itl_ms:
            continue
        low, high = 0, batch  # largest batch whose step meets the SLO: steps grow with it
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (mid, high) if 1e3 * decode_time(dep, mid, context) <= itl_ms \
                else (low, mid)
        of = (f"{context:,} tokens of context (the workload's mean)" if known is not None
              else "1 token of context (a lower bound: the mix's lengths are read later)")
        capped = "" if batch == pool.max_batch_size else \
            f", all that its KV room holds of max_batch_size {pool.max_batch_size}"
        advice = (f"max_batch_size {low} keeps a step within it" if low else
                  "even one sequence's step is slower: use faster chips or more tp")
        lines.append(f"{where}pools.{name}: a decode step of {batch} sequences{capped} at {of} "
                     f"takes {step_ms:.1f} ms, above the ITL SLO of {itl_ms:g} ms; {advice}")
    return lines


def check_scenario(scenario: Scenario) -> Resolved:
    """Every check short of running: topology, chips, model fit, scale-up domains, workload.

    Sizing that runs but cannot meet the ITL SLO (:func:`decode_slo_warnings`) is logged as a
    warning on the ``infersim`` logger: with no logging set up, Python prints it to stderr as
    one line, which is how ``infersim validate`` and ``infersim run`` show it.
    """
    check_topology(scenario)
    resolved = resolve(scenario)
    check_scaleup_domains(scenario, resolved)
    for line in decode_slo_warnings(scenario, resolved):
        _log.warning("infersim: warning: %s", line)
    return resolved


def build_workload_for(scenario: Scenario, rng: np.random.Generator) -> Any:
    """The scenario's workload drawn from ``rng``; an error names the scenario field (or the
    trace file)."""
    from infersim.workload import build_workload

    try:
        return build_workload(scenario.workload, rng, base_dir=scenario.base_dir)
    except InfersimError as err:
        if err.field is None and scenario.workload.trace is not None:
            # The trace loader names the trace file; say which scenario field points at it.
            raise err.with_prefix("workload.trace.path") from None
        if err.file is None:
            raise attributed(err.with_prefix("workload"), scenario.source) from None
        raise


def build_scenario_workload(scenario: Scenario) -> Any:
    """The scenario's workload exactly as a run builds it (same seed stream); a trace must exist
    and have rows. The engine is not started."""
    return build_workload_for(scenario, workload_rng(scenario.seed))


def _lengths(workload: Any) -> np.ndarray:
    table = getattr(workload, "requests", workload)  # a ClosedLoop wraps its table
    return np.asarray(table.prompt_tokens) + np.asarray(table.output_tokens)


def oversized_requests(scenario: Scenario, resolved: Resolved, workload: Any) -> dict[str, int]:
    """Per decode or mixed pool, how many requests need more KV cache (prompt + output tokens)
    than one of its instances holds: the engine can only reject them."""
    lengths = _lengths(workload)
    return {name: int((lengths > resolved.placements[name].kv_capacity_tokens).sum())
            for name, pool in scenario.pools.items() if pool.role in ("decode", "mixed")}


def beyond_context_requests(resolved: Resolved, workload: Any) -> int:
    """How many requests are longer (prompt + output tokens) than the model's context window
    (``max_position_embeddings``): a serving engine refuses them (vLLM checks prompt plus
    ``max_tokens`` against ``max_model_len``), while the simulator would serve them. 0 when the
    model's config gives no window."""
    window = resolved.model.max_context_tokens
    if window <= 0:
        return 0
    return int((_lengths(workload) > window).sum())


def beyond_context_warning(resolved: Resolved, beyond: int, requests: int) -> str:
    """The one-line warning about ``beyond`` of ``requests`` requests being longer than the
    model's context window, as ``infersim validate`` and ``infersim run`` print it."""
    return (f"{beyond:,} of {requests:,} requests are longer (prompt + output) than "
            f"{resolved.model.name}'s {resolved.model.max_context_tokens:,}-token context window; "
            "a serving engine would refuse them, the simulation serves them")
