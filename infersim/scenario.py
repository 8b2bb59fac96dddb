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

from __future__ import annotations

import contextlib
import copy
import difflib
import hashlib
import json
import logging
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from infersim.errors import InfersimError
from infersim.paths import find_data_file, list_names
from infersim.precision import PRECISIONS
from infersim.units import parse_quantity
from infersim.workload.config import WorkloadConfig
from infersim.yamlfile import read_yaml

# Router policy names a scenario may use -> the engine's registry (infersim.sim.router.POLICIES).
# ``policy`` routes a new request to an instance of its first pool (prefill or mixed);
# ``decode_policy`` picks the decode instance that receives a finished prefill's KV cache.
ROUTER_POLICIES: dict[str, str] = {
    "least_loaded": "least_outstanding_tokens",   # least work queued or running, in tokens
    "least_outstanding_tokens": "least_outstanding_tokens",
    "shortest_queue": "join_shortest_queue",      # fewest requests queued or running
    "join_shortest_queue": "join_shortest_queue",
    "round_robin": "round_robin",                 # instances in turn
    "power_of_two": "power_of_two",               # the less loaded of two drawn at random
    "prefix_affinity": "prefix_affinity",         # the instance holding the longest cached prefix
    "kv_aware": "kv_aware",                       # the most free KV memory
}
DECODE_POLICIES: dict[str, str] = dict(ROUTER_POLICIES)

_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)

_log = logging.getLogger("infersim.scenario")


# --------------------------------------------------------------------------------------------
# Field types
# --------------------------------------------------------------------------------------------

def _quantity(kind: str, example: str) -> Any:
    """A float in SI units that users may write with a unit, e.g. ``50 GB/s``."""

    def parse(value: Any) -> Any:
        try:
            # 15 significant digits: '10 us' is 1e-05, not 10 × 1e-6 = 9.999999999999999e-06,
            # so the resolved scenario (and its hash) does not depend on how a unit was written.
            return float(f"{parse_quantity(value, kind):.15g}")
        except InfersimError as err:
            raise PydanticCustomError("infersim", "{expected}",
                                      {"expected": err.expected or f"a {kind} quantity"}) from None

    return Annotated[
        float,
        BeforeValidator(parse),
        WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "string"}],
                        "description": f"a {kind} with a unit, e.g. {example!r}; "
                                       "a bare number is in SI units"}),
    ]


Bandwidth = Annotated[_quantity("bandwidth", "50 GB/s"), Field(gt=0)]
Duration = Annotated[_quantity("time", "10 us"), Field(ge=0)]
PositiveDuration = Annotated[_quantity("time", "60 s"), Field(gt=0)]
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]


def _check_precision(value: str | None) -> str | None:
    if value is not None and value not in PRECISIONS:
        raise PydanticCustomError("infersim", "{expected}",
                                  {"expected": "one of " + ", ".join(PRECISIONS)})
    return value


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------

class PoolConfig(BaseModel):
    """A pool of identical instances; each instance is ``tp × pp`` chips serving one model copy."""

    model_config = _STRICT

    role: Literal["prefill", "decode", "mixed"] = Field(
        description="prefill: prompts to KV cache; decode: tokens from KV cache; mixed: both")
    hardware: str = Field(min_length=1, description="a shipped chip name or a hardware YAML path")
    instances: int = Field(1, ge=1, description="model replicas in the pool")
    tp: int = Field(1, ge=1, description="tensor-parallel degree (chips per stage)")
    pp: int = Field(1, ge=1, description="pipeline-parallel degree (stages)")
    precision: str | None = Field(None, description="weights/compute precision; default: the "
                                                    "scenario's precision")
    kv_precision: str | None = Field(None, description="KV-cache precision; default: precision")
    max_batch_tokens: int = Field(8192, ge=1, description="token budget of one step "
                                                          "(vLLM max_num_batched_tokens)")
    max_batch_size: int = Field(256, ge=1, description="sequences in one step (vLLM max_num_seqs)")
    chunked_prefill: bool = Field(True, description="mixed pools: chunked prefill (vLLM), "
                                                    "else prefill-first")
    block_size: int = Field(16, ge=1, description="tokens per KV-cache block")
    memory_fraction: float = Field(0.9, gt=0, le=1, description="share of chip memory for weights"
                                                                " + KV (vLLM gpu_memory_utilization)")
    preemption: Literal["recompute", "swap"] = Field(
        "recompute", description="what happens to a sequence evicted when KV cache runs out")
    scaleup_domain: Name | None = Field(
        None, description="pools naming the same domain exchange KV over the scale-up fabric "
                          "(e.g. NVLink in one NVL72 rack)")
    host_bandwidth: Bandwidth = Field(64e9, description="per chip, to host memory, used by "
                                                        "preemption: swap (default PCIe 5.0 x16)")
    step_overhead: Duration | None = Field(
        None, description="the serving framework's fixed host time per step (scheduling, launch, "
                          "sampling), e.g. '5.5 ms' for vLLM 0.6 at TP4; none: the chip's "
                          "calibrated step_overhead (TensorRT-LLM-like)")
    kv_reservation: Literal["on_demand", "full"] = Field(
        "on_demand", description="decode and mixed pools: on_demand takes KV blocks as sequences "
                                 "grow and preempts when memory runs out (vLLM); full admits a "
                                 "request only when KV for its prompt and all its output tokens "
                                 "is free, and never preempts (TensorRT-LLM GUARANTEED_NO_EVICT)")

    _v_precision = field_validator("precision", "kv_precision")(_check_precision)


# Fields added after scenarios were first hashed, and the value at which resolved() leaves each
# out (see Scenario.resolved): pool fields, then link fields.
_OMITTED_WHEN_UNSET = ("step_overhead",)
_POOL_OMITTED_AT = {"kv_reservation": "on_demand"}
_LINK_OMITTED_AT = {"per": "pool"}


class LinkConfig(BaseModel):
    """A KV-cache link between two pools (both directions), e.g. RDMA over the scale-out NICs."""

    model_config = _STRICT

    between: list[str] = Field(min_length=2, max_length=2,
                               description="the two pool names this link joins")
    bandwidth: Bandwidth = Field(description="one direction, shared fairly by every transfer in "
                                             "flight on this link, e.g. '50 GB/s'")
    latency: Duration = Field(0.0, description="one-way latency, e.g. '10 us'")
    per: Literal["pool", "instance"] = Field(
        "pool", description="pool: one path for the pool pair, bandwidth shared by every sending "
                            "instance; instance: each sending instance has its own path of this "
                            "bandwidth (its NICs), shared by its transfers only")


class RouterConfig(BaseModel):
    """How requests find instances. Policy names: see ``infersim.scenario.ROUTER_POLICIES``."""

    model_config = _STRICT

    policy: str = Field("least_loaded", description="first-pool routing: " +
                        ", ".join(ROUTER_POLICIES))
    decode_policy: str = Field("kv_aware", description="decode-instance choice after prefill: " +
                               ", ".join(DECODE_POLICIES))
    queue_limit: int | None = Field(None, ge=0, description="requests waiting per instance before "
                                                            "new ones are refused; none: unbounded")
    prefix_cache_blocks: int = Field(4096, ge=1, description="prefix_affinity: prefix blocks "
                                                             "each instance remembers (LRU)")

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, value: str) -> str:
        if value not in ROUTER_POLICIES:
            raise PydanticCustomError("infersim", "{expected}",
                                      {"expected": "one of " + ", ".join(ROUTER_POLICIES)})
        return value

    @field_validator("decode_policy")
    @classmethod
    def _known_decode_policy(cls, value: str) -> str:
        if value not in DECODE_POLICIES:
            raise PydanticCustomError("infersim", "{expected}",
                                      {"expected": "one of " + ", ".join(DECODE_POLICIES)})
        return value


class ScenarioSLO(BaseModel):
    """Service-level objectives. A request meets them when each named latency is within its bound
    (``<=``); goodput counts such requests. The percentile is the one the SLO is stated at."""

    model_config = _STRICT

    ttft_ms: float | None = Field(None, gt=0, description="time to first token bound, ms")
    itl_ms: float | None = Field(None, gt=0, description="inter-token latency bound, ms")
    tpot_ms: float | None = Field(None, gt=0, description="time per output token bound, ms")
    e2el_ms: float | None = Field(None, gt=0, description="end-to-end latency bound, ms")
    percentile: float = Field(99.0, gt=0, le=100, description="percentile the SLO is stated at, "
                                                              "in (0, 100]")


class Scenario(BaseModel):
    """One experiment: model, pools, links, router, workload, SLOs and seed."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True,
                              title="infersim scenario")

    name: Name = Field(description="short name; default output folder runs/<name>/")
    description: str = Field("", description="the question this scenario asks")
    seed: int = Field(0, ge=0, description="seed of the run's random generator")
    model: str = Field(min_length=1, description="a shipped model name or a path to a Hugging "
                                                 "Face config.json (relative to this file)")
    precision: str = Field("bf16", description="weights and compute precision of every pool")
    pools: dict[Name, PoolConfig] = Field(min_length=1, description="pools by name")
    links: list[LinkConfig] = Field(default_factory=list, description="KV-cache links")
    router: RouterConfig = Field(default_factory=RouterConfig)
    workload: WorkloadConfig
    slo: ScenarioSLO = Field(default_factory=ScenarioSLO)
    time_limit: PositiveDuration | None = Field(None, description="stop the clock here, e.g. "
                                                                  "'10 min'; none: run to the end")
    ideal: bool = Field(False, description="every efficiency 1, no overheads: the roofline bound")
    layerwise_kv_overlap: bool = Field(False, description="ship KV layer by layer while prefill "
                                                          "runs, hiding most transfer time")

    _base_dir: Path | None = PrivateAttr(default=None)
    _source: str | None = PrivateAttr(default=None)

    _v_precision = field_validator("precision")(_check_precision)

    @property
    def base_dir(self) -> Path:
        """The folder relative paths in this scenario are resolved against."""
        return self._base_dir if self._base_dir is not None else Path.cwd()

    @property
    def source(self) -> str | None:
        """The file this scenario came from (named in error messages); None for a dict."""
        return self._source

    def resolved(self) -> dict:
        """The scenario as plain JSON data, quantities in SI units.

        Optional pool and link fields added after scenarios were first hashed are left out
        while unset or at their default, so a scenario that does not use them keeps the hash
        (and the sweep cache and plan baselines) it had.
        """
        data = self.model_dump(mode="json")
        for pool in data["pools"].values():
            for key in _OMITTED_WHEN_UNSET:
                if pool.get(key) is None:
                    pool.pop(key, None)
            for key, default in _POOL_OMITTED_AT.items():
                if key in pool and pool[key] == default:
                    del pool[key]
        for link in data["links"]:
            for key, default in _LINK_OMITTED_AT.items():
                if key in link and link[key] == default:
                    del link[key]
        return data

    @property
    def hash(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON of :meth:`resolved`."""
        return scenario_hash(self)


def scenario_hash(scenario: Scenario) -> str:
    """What a run depends on, digested: the resolved scenario and the inputs it names.

    The scenario names chips, a model, workload mixes and trace files by name or path; editing
    one of those files (a recalibrated knob, a new price, another trace) changes the results, so
    their contents are part of the hash. Without that a resumed sweep or a plan baseline would
    silently reuse runs made with the old figures.
    """
    payload = {"scenario": scenario.resolved(), "inputs": input_digests(scenario)}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                           allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_digests(scenario: Scenario) -> dict[str, str]:
    """SHA-256 of every data file the scenario reads, keyed by a stable label.

    Covers each pool's hardware profile, the model spec, and in the workload every named mix
    (recursively, mixes name mixes) and every ``path`` (traces, empirical length tables).
    Names that resolve to no file are left out: validation reports those.
    """
    from infersim import __version__

    digests: dict[str, str] = {"infersim": __version__}
    base = scenario.base_dir

    def add(label: str, path: Path | None) -> Path | None:
        if path is not None and path.is_file():
            digests[label] = _file_digest(path)
            return path
        return None

    def local_or_shipped(kind: str, name: str, folder: Path) -> Path | None:
        candidate = folder / name
        if candidate.is_file():
            return candidate
        if kind == "models" and candidate.is_dir() and (candidate / "config.json").is_file():
            return candidate / "config.json"
        return find_data_file(kind, name, (".yaml", ".yml", ".json"))

    for _, pool in sorted(scenario.pools.items()):
        add(f"hardware:{pool.hardware}", local_or_shipped("hardware", pool.hardware, base))
    add(f"model:{scenario.model}", local_or_shipped("models", scenario.model, base))

    seen: set[Path] = set()

    def walk(node: Any, folder: Path) -> None:
        if isinstance(node, dict):
            for key, value in sorted(node.items()):
                if key == "mix" and isinstance(value, str):
                    path = add(f"mix:{value}", local_or_shipped("workloads", value, folder))
                    if path is not None and path.resolve() not in seen:
                        seen.add(path.resolve())
                        # a malformed mix is reported, with its line, by the workload loader
                        with contextlib.suppress(yaml.YAMLError):
                            walk(yaml.safe_load(path.read_text(encoding="utf-8")), path.parent)
                elif key == "path" and isinstance(value, str):
                    add(f"file:{value}", folder / value)
                else:
                    walk(value, folder)
        elif isinstance(node, list):
            for item in node:
                walk(item, folder)

    walk(scenario.resolved().get("workload"), base)
    return digests


def json_schema() -> dict:
    """The JSON Schema of scenario files (what ``infersim schema`` prints)."""
    schema = Scenario.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


# --------------------------------------------------------------------------------------------
# Turning pydantic's errors into one line
# --------------------------------------------------------------------------------------------

def _unwrap(annotation: Any) -> list[Any]:
    """The concrete alternatives of an annotation (Optional/Union/Annotated peeled off)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                out.extend(_unwrap(arg))
        return out
    return [annotation]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _step(annotation: Any, key: Any) -> list[Any]:
    """Annotations reached from ``annotation`` by following ``key`` (a field, dict key, index)."""
    out: list[Any] = []
    for alt in _unwrap(annotation):
        origin = typing.get_origin(alt)
        if _is_model(alt):
            field = alt.model_fields.get(key) if isinstance(key, str) else None
            if field is not None:
                out.append(field.annotation if not field.metadata
                           else Annotated[(field.annotation, *field.metadata)])
        elif origin in (dict, Mapping) and isinstance(key, str):
            out.append(typing.get_args(alt)[1])
        elif origin in (list, tuple, Sequence) and isinstance(key, int):
            out.append(typing.get_args(alt)[0])
    return out


def _annotations_at(path: Sequence[Any]) -> list[Any]:
    current: list[Any] = [Scenario]
    for key in path:
        current = [nxt for ann in current for nxt in _step(ann, key)]
    return current


def _keys_at(path: Sequence[Any]) -> list[str]:
    """Field names accepted at ``path`` (the union of all alternatives), for hints."""
    keys: dict[str, None] = {}
    for ann in _annotations_at(path):
        for alt in _unwrap(ann):
            if _is_model(alt):
                for name, field in alt.model_fields.items():
                    keys.setdefault(field.alias or name, None)
    return list(keys)


def _kind_at(path: Sequence[Any]) -> str:
    """'an integer' or 'a number' for a numeric field (for '>= 1' style messages)."""
    alts = [alt for ann in _annotations_at(path) for alt in _unwrap(ann)]
    if alts and all(alt is int for alt in alts):
        return "an integer"
    return "a number"


def _clean_path(loc: Sequence[Any], data: Any) -> tuple[list[Any], list[Any]]:
    """Split pydantic's ``loc`` into the user's field path and the union branches it went through.

    Pydantic puts the name of a union member (or a discriminator's tag) into ``loc``; the user's
    file has no such key, so we drop any component the data does not have, except the last
    (a missing field is, by definition, not in the data).
    """
    path: list[Any] = []
    branches: list[Any] = []
    node = data
    for i, comp in enumerate(loc):
        in_mapping = isinstance(node, Mapping) and comp in node
        in_list = isinstance(node, list) and isinstance(comp, int) and 0 <= comp < len(node)
        if in_mapping or in_list:
            path.append(comp)
            node = node[comp]
        elif i == len(loc) - 1:
            path.append(comp)
        else:
            branches.append(comp)
    return path, branches


def _pick(errors: list[dict], data: Any) -> dict:
    """The error most worth showing. Among the branches of an undiscriminated union, skip the
    ones that failed only because a literal (a 'kind' tag) did not match: they are the branches
    the user did not mean."""
    wrong_branches = set()
    for err in errors:
        _, branches = _clean_path(err["loc"], data)
        if err["type"] == "literal_error" and branches:
            wrong_branches.add(tuple(branches))
    for err in errors:
        _, branches = _clean_path(err["loc"], data)
        if not branches or tuple(branches) not in wrong_branches:
            return err
    return errors[0]


def _dotted(path: Sequence[Any]) -> str:
    return ".".join(str(p) for p in path)


def _expected(err: dict, path: list[Any]) -> tuple[str, str | None]:
    """(expected, detail) in words for one pydantic error."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    simple = {
        "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
        "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
        "bool_type": "true or false", "bool_parsing": "true or false",
        "string_type": "a string", "dict_type": "a mapping (key: value)",
        "model_type": "a mapping (key: value)", "model_attributes_type": "a mapping (key: value)",
        "list_type": "a list", "tuple_type": "a list",
    }
    if kind in simple:
        return simple[kind], None
    if kind == "missing":
        return "a value (this field is required)", None
    if kind == "extra_forbidden":
        allowed = _keys_at(path[:-1])
        key = str(path[-1]) if path else ""
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        what = ("one of the keys " + ", ".join(allowed)) if allowed else "a known key"
        return what + hint, "unknown key"
    if kind == "literal_error":
        return "one of " + str(ctx.get("expected", "")), None
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
              "less_than_equal": "<="}
    if kind in bounds:
        bound = next(iter(ctx.values()))
        return f"{_kind_at(path)} {bounds[kind]} {bound:g}", None
    if kind in ("too_short", "too_long"):
        lo, hi = _length_bounds(path)
        if lo is not None and lo == hi:
            return f"exactly {lo} items", None
        bound = ctx["min_length"] if kind == "too_short" else ctx["max_length"]
        noun = "item" if bound == 1 else "items"
        return (f"at least {bound} {noun}" if kind == "too_short"
                else f"at most {bound} {noun}"), None
    if kind == "string_too_short":
        return "a non-empty string", None
    if kind == "string_pattern_mismatch":
        return "a name of letters, digits, '_', '-' or '.'", None
    if kind == "union_tag_invalid":
        return f"one of {ctx.get('expected_tags')}", None
    if kind == "union_tag_not_found":
        return f"a {ctx.get('discriminator')} key", None
    if kind == "infersim":
        return str(ctx.get("expected")), None
    return "", str(err.get("msg", "invalid value")).removeprefix("Value error, ").removeprefix(
        "Assertion failed, ")


def _length_bounds(path: Sequence[Any]) -> tuple[int | None, int | None]:
    parent = path[:-1]
    key = path[-1] if path else None
    for ann in _annotations_at(parent):
        for alt in _unwrap(ann):
            if _is_model(alt) and isinstance(key, str) and key in alt.model_fields:
                lo = hi = None
                for meta in alt.model_fields[key].metadata:
                    lo = getattr(meta, "min_length", lo)
                    hi = getattr(meta, "max_length", hi)
                return lo, hi
    return None, None


def error_from_validation(err: ValidationError, data: Any, file: str | Path | None,
                          prefix: Sequence[Any] = ()) -> InfersimError:
    """One :class:`InfersimError` line for a pydantic ``ValidationError`` over ``data``."""
    errors = err.errors(include_url=False)
    chosen = _pick(errors, data)
    path, _ = _clean_path(chosen["loc"], data)
    expected, detail = _expected(chosen, [*prefix, *path])
    if chosen["type"] == "union_tag_invalid":
        # Point at the tag key itself: 'workload.arrival.process', not the whole mapping.
        path = [*path, str((chosen.get("ctx") or {}).get("discriminator", "")).strip("'")]
        given: Any = (chosen.get("ctx") or {}).get("tag", ...)
    elif chosen["type"] in ("missing", "extra_forbidden") or not expected:
        given = ...
    else:
        given = chosen.get("input", ...)
    return InfersimError(detail, file=file, field=_dotted([*prefix, *path]) or None,
                         expected=expected or None, given=given)


# --------------------------------------------------------------------------------------------
# Loading, overrides, the seed
# --------------------------------------------------------------------------------------------

def attributed(err: InfersimError, file: str | Path | None) -> InfersimError:
    """``err`` naming ``file`` unless it already names one (or there is none to name)."""
    return err.with_file(file) if file is not None else err


def find_scenario(name_or_path: str | Path) -> Path:
    """A scenario file from a path or a shipped/user scenario name (``default``)."""
    found = find_data_file("scenarios", str(name_or_path))
    if found is None:
        shipped = ", ".join(list_names("scenarios")) or "none found"
        raise InfersimError(file=str(name_or_path),
                            expected=f"an existing scenario file or a scenario name ({shipped})",
                            given=str(name_or_path))
    return found


def _parse_override(item: str) -> tuple[list[Any], Any]:
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise InfersimError(field="--set", expected="key.path=value, e.g. pools.decode.instances=8",
                            given=item)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw  # not a YAML scalar: keep the text (e.g. '50 GB/s: x'), validation judges it
    path: list[Any] = [int(p) if p.lstrip("-").isdigit() else p for p in key.split(".")]
    return path, value


def apply_overrides(data: Mapping[str, Any], overrides: Sequence[str],
                    file: str | None = None) -> dict:
    """A copy of scenario ``data`` with each ``key.path=value`` applied (value parsed as YAML).

    The path must name a field of the schema (or an existing pool, list item or workload key); a
    path that names nothing is an error that names the path.
    """
    out = copy.deepcopy(dict(data))
    for item in overrides:
        path, value = _parse_override(item)
        node: Any = out
        for depth, key in enumerate(path):
            here = path[: depth + 1]
            last = depth == len(path) - 1
            anns = _annotations_at(path[:depth])
            alts = [alt for ann in anns for alt in _unwrap(ann)]
            known_fields = _keys_at(path[:depth])
            is_pool_map = any(typing.get_origin(a) in (dict, Mapping) for a in alts)
            if isinstance(node, list):
                if not isinstance(key, int) or not 0 <= key < len(node):
                    raise InfersimError(file=file, field=f"--set {_dotted(here)}",
                                        expected=f"a list index 0..{len(node) - 1}", given=key)
            elif isinstance(node, dict):
                if is_pool_map and key not in node:
                    raise InfersimError(file=file, field=f"--set {_dotted(here)}",
                                        expected="one of " + (", ".join(map(str, node)) or
                                                              "the existing names"),
                                        given=str(key))
                if known_fields and key not in known_fields:
                    close = difflib.get_close_matches(str(key), known_fields, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise InfersimError("unknown path", file=file, field=f"--set {_dotted(here)}",
                                        expected="one of the keys " + ", ".join(known_fields)
                                        + hint, given=str(key))
                if not known_fields and not is_pool_map and key not in node and alts:
                    raise InfersimError("unknown path", file=file, field=f"--set {_dotted(here)}",
                                        expected="a path into a mapping", given=str(key))
            else:
                raise InfersimError("unknown path", file=file, field=f"--set {_dotted(here)}",
                                    expected=f"a path into a mapping, but {_dotted(path[:depth])} "
                                             "is a single value", given=str(key))
            if last:
                node[key] = value
            else:
                if isinstance(node, dict) and not isinstance(node.get(key), (dict, list)):
                    node[key] = {}
                node = node[key]
    return out


def validate_data(data: Any, *, file: str | Path | None = None,
                  base_dir: Path | None = None) -> Scenario:
    """A :class:`Scenario` from already-parsed data; errors are one InfersimError line."""
    if not isinstance(data, Mapping):
        raise InfersimError(file=file, expected="a mapping of scenario fields (name, model, pools, "
                            "workload, ...)", given=type(data).__name__ if data is not None
                            else "an empty file")
    try:
        scenario = Scenario.model_validate(dict(data))
    except ValidationError as err:
        raise error_from_validation(err, data, file) from None
    except InfersimError as err:  # raised by a nested validator (e.g. the workload's own checks)
        raise attributed(err, file) from None
    scenario._base_dir = base_dir
    scenario._source = str(file) if file is not None else None
    return scenario


def load_scenario(source: Scenario | str | Path | Mapping[str, Any], *,
                  overrides: Sequence[str] = (), seed: int | None = None) -> Scenario:
    """Load, override and validate a scenario from a file, a name, a dict or a Scenario."""
    if isinstance(source, Scenario):
        if not overrides and seed is None:
            return source
        data: Any = source.model_dump(mode="json")
        file, base_dir = source._source, source._base_dir
    elif isinstance(source, Mapping):
        data, file, base_dir = dict(source), None, None
    else:
        path = find_scenario(source)
        file, base_dir = str(source), path.resolve().parent
        data = read_yaml(path, file)
    if overrides:
        if not isinstance(data, Mapping):
            validate_data(data, file=file, base_dir=base_dir)  # raises the shape error
        data = apply_overrides(data, overrides, file)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise InfersimError(field="--seed", expected="an integer >= 0", given=seed)
        data = {**data, "seed": seed}
    return validate_data(data, file=file, base_dir=base_dir)


# --------------------------------------------------------------------------------------------
# From scenario to engine specs, and the cross-field checks
# --------------------------------------------------------------------------------------------

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
                 host_bandwidth=pool.host_bandwidth, kv_reservation=pool.kv_reservation)
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
