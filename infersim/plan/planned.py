"""The scenario data of a candidate: the base scenario with the candidate's pools, links and
rate, and how a planned scenario is named and described."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infersim.errors import InfersimError
from infersim.hardware import load_hardware
from infersim.plan.candidate import Candidate
from infersim.scenario import Scenario, find_scenario, load_scenario
from infersim.slo import SLO
from infersim.yamlfile import read_yaml

POOL_FIELDS_SET = ("role", "hardware", "instances", "tp", "pp", "max_batch_size",
                   "max_batch_tokens", "scaleup_domain")


def _template_name(base) -> str:
    """The base pool whose settings every planned pool inherits (memory fraction, block size,
    precision, preemption ...): the base scenario's first decode or mixed pool, else its first."""
    return next((name for name, p in base.pools.items() if p.role in ("decode", "mixed")),
                next(iter(base.pools)))


def template_pool(base) -> dict:
    """The template pool's validated settings (defaults filled in): what sizing assumes."""
    chosen = base.pools[_template_name(base)]
    return {k: v for k, v in chosen.model_dump(mode="json").items()
            if k not in POOL_FIELDS_SET and v is not None}


def _template_written(base, base_data: Mapping[str, Any]) -> dict:
    """The template pool's settings as the user wrote them: what a planned scenario repeats."""
    raw = (base_data.get("pools") or {}).get(_template_name(base)) or {}
    return {k: v for k, v in raw.items() if k not in POOL_FIELDS_SET}


def batch_limits(base) -> tuple[int, int]:
    """The base scenario's batching limits, kept as caps: the largest ``max_batch_size`` of its
    decode/mixed pools and the largest ``max_batch_tokens`` of its prefill/mixed pools."""
    pools = list(base.pools.values())
    sizes = [p.max_batch_size for p in pools if p.role in ("decode", "mixed")] or \
        [p.max_batch_size for p in pools]
    tokens = [p.max_batch_tokens for p in pools if p.role in ("prefill", "mixed")] or \
        [p.max_batch_tokens for p in pools]
    return max(sizes), max(tokens)


def candidate_data(base_data: Mapping[str, Any], base, candidate: Candidate,
                   rate: float | None) -> dict:
    """The base scenario's data with the candidate's pools and links and the planned rate."""

    data = copy.deepcopy(dict(base_data))
    template = _template_written(base, base_data)
    pools: dict[str, dict] = {}
    for pool in candidate.pools:
        entry = {"role": pool.role, "hardware": pool.hardware, "instances": pool.instances,
                 "tp": pool.tp}
        if pool.pp > 1:
            entry["pp"] = pool.pp
        if pool.precision:
            entry["precision"] = pool.precision
        entry["max_batch_size"] = pool.max_batch_size
        entry["max_batch_tokens"] = pool.max_batch_tokens
        for key, value in template.items():
            entry.setdefault(key, value)
        pools[pool.name] = entry
    data["pools"] = pools
    if candidate.layout == "disaggregated":
        pre, dec = candidate.pools
        chips = [load_hardware(pre.hardware), load_hardware(dec.hardware)]
        if pre.hardware == dec.hardware and candidate.chips <= chips[0].scaleup_domain_chips:
            # The whole cluster fits one scale-up domain (an HGX node, an NVL72 rack): prefill
            # and decode share it and the KV cache crosses NVLink-class links, as deployed.
            for name in pools:
                pools[name]["scaleup_domain"] = "node0"
            data["links"] = []
            return _with_rate(data, base, rate)
        # KV goes NIC to NIC (RDMA over the scale-out network). An instance has one NIC per
        # chip, so each prefill instance has its own egress (``per: instance``): its chips' NICs,
        # capped at one decode instance's, since each transfer lands on one receiver whose
        # ingress the engine does not model.
        bandwidth = min(chips[0].scaleout_bandwidth * pre.tp * pre.pp,
                        chips[1].scaleout_bandwidth * dec.tp * dec.pp)
        latency = max(chips[0].scaleout_latency_s, chips[1].scaleout_latency_s)
        data["links"] = [{"between": ["prefill", "decode"], "bandwidth": float(bandwidth),
                          "latency": float(latency), "per": "instance"}]
    else:
        data["links"] = []
    return _with_rate(data, base, rate)


def _with_rate(data: dict, base, rate: float | None) -> dict:
    if rate is not None:
        data["workload"] = copy.deepcopy(dict(data["workload"]))
        data["workload"]["arrival"] = {**data["workload"]["arrival"], "rate": float(rate)}
    data["name"] = f"{base.name}-plan"
    return data


def plan_name(base_name: str, candidate: Candidate) -> str:
    """A scenario name that says what the plan is: ``<base>-plan-<layout>-<pools>``, e.g.
    ``chat-plan-disaggregated-prefill-2xh100-decode-3xmi300xtp2``."""
    pools = "-".join(f"{p.role}-{p.instances}x{p.hardware}"
                     + (f"tp{p.tp}" if p.tp > 1 else "") + (f"pp{p.pp}" if p.pp > 1 else "")
                     for p in candidate.pools)
    return f"{base_name}-plan-{candidate.layout}-{pools}"


def plan_description(candidate: Candidate, *, rate: float | None, slo: SLO, source: str,
                     requests: int, max_rate: float | None = None,
                     budget: float | None = None) -> str:
    """What a planned scenario is, in words: its pools and chips, the load and price it was
    planned for, the SLOs simulation confirmed it against, and where it came from (no date, so
    the same plan is always described by the same bytes)."""
    pools = ", ".join(f"{p.role} {p.describe()}" + (f" (max {p.max_batch_size} sequences"
                                                     f" and {p.max_batch_tokens} tokens a step)")
                      for p in candidate.pools)
    targets = ", ".join(f"{slo.summary_key(m).split('_')[0]} {m.upper()} <= {v:g} ms"
                        for m, v in slo.targets().items())
    load = (f"at {rate:g} req/s" if rate is not None else
            f"for the most goodput per $ under {budget:g} $/h, at {max_rate:.4g} req/s")
    chips = f"{candidate.chips} chip" + ("s" if candidate.chips != 1 else "")
    text = (f"A {candidate.layout} plan of {chips}: {pools}; "
            f"{candidate.cost_per_hour:.2f} $/h {load}. Confirmed by simulation of {requests} "
            f"requests against {targets}, every request completed and at least "
            f"{slo.attainment:.0%} of requests within every target")
    if rate is not None and max_rate:
        text += f"; held the SLOs up to {max_rate:.4g} req/s"
    return text + f"; planned by infersim plan from {source}."


def base_document(source: str | Path | Scenario | Mapping[str, Any]) -> tuple[Any, dict]:
    """The base scenario (validated) and its raw data with relative paths made absolute, so the
    planned scenario can be written anywhere.

    ``source`` is a scenario file (or a shipped scenario's name), a :class:`Scenario`, or a
    mapping of scenario fields. For a Scenario the data is what its author set (defaults stay
    implicit, as in a file); a mapping's relative paths are read from the working directory.
    """
    if isinstance(source, Scenario):
        scenario = source
        data = scenario.model_dump(mode="json", exclude_unset=True)
    elif isinstance(source, Mapping):
        data = copy.deepcopy(dict(source))
        scenario = load_scenario(data)
    elif isinstance(source, (str, Path)):
        scenario = load_scenario(source)
        file = find_scenario(source)
        data = read_yaml(file, str(source))
    else:
        raise InfersimError(field="scenario", expected="a scenario file, a Scenario or a "
                            "mapping of scenario fields", given=source)
    base_dir = scenario.base_dir.resolve()
    model = data.get("model")
    if isinstance(model, str) and (base_dir / model).is_file():
        data["model"] = str((base_dir / model).resolve())
    trace = (data.get("workload") or {}).get("trace")
    if isinstance(trace, dict) and isinstance(trace.get("path"), str) and \
            (base_dir / trace["path"]).exists():
        trace["path"] = str((base_dir / trace["path"]).resolve())
    return scenario, data


def source_label(base) -> str:
    """How a planned scenario names its base: the file it came from, else the scenario's name."""
    return str(base.source) if base.source is not None else f"scenario '{base.name}'"
