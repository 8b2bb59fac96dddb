"""Serving-engine profiles: what vLLM, SGLang, TensorRT-LLM or Dynamo do by default, as data.

A chip is a YAML file (:mod:`infersim.hardware`); so is a serving engine. ``engines/<name>.yaml``
holds the scheduler semantics that change latency, each value beside its source:

- ``pool_defaults``: values for a pool's scheduler fields that this engine uses unless the pool
  says otherwise: ``chunked_prefill`` (decode-first steps with prompt chunks, vs prefill-first),
  ``max_batch_tokens`` (the step's token budget, vLLM ``max_num_batched_tokens``),
  ``max_batch_size`` (``max_num_seqs``), ``block_size`` (tokens per KV block), ``preemption``
  (recompute or swap), ``kv_reservation`` (on-demand blocks, or TensorRT-LLM's guaranteed-no-evict
  admission), ``memory_fraction``, ``first_token_from`` (disaggregated: whether the client's
  first token comes from the decode side, after the KV moved and decode admitted the request,
  or as prefill ends) and ``step_overhead``, the host time per step, either one
  quantity or a table by tensor-parallel degree (``{1: 3 ms, 4: 5.5 ms}``: a pool takes the entry
  of the largest degree not above its ``tp``; below the smallest, the chip's calibrated value);
- ``disaggregation``: whether the engine serves split prefill and decode pools at all.

A pool names its engine (``engine: sglang``) as it names its chip; fields the pool sets itself,
and ``--set pools.<name>.<field>=...``, win over the profile. A pool with no ``engine`` gets the
schema's defaults, which are vLLM V1's (``engines/vllm-v1.yaml``; a test keeps the two equal).
What a profile cannot express (prefix-cache eviction policy, CUDA-graph capture sizes, speculative
decoding) its comments say, with the engine's own default.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infersim.errors import InfersimError
from infersim.paths import find_data_file, list_names
from infersim.yamlfile import read_yaml

# Pool fields an engine profile may set (scheduler semantics, not sizing or placement).
POOL_FIELDS = ("chunked_prefill", "max_batch_tokens", "max_batch_size", "block_size",
               "preemption", "kv_reservation", "memory_fraction", "first_token_from",
               "step_overhead")
_TOP_KEYS = ("description", "pool_defaults", "disaggregation")


@dataclass(frozen=True)
class EngineProfile:
    """One serving engine's defaults (frozen; loaded from ``engines/<name>.yaml``)."""

    name: str
    description: str
    pool_defaults: Mapping[str, Any]  # field -> value as a scenario writes it ("5.5 ms", 8192)
    disaggregation: bool
    sources: Mapping[str, str]  # field -> source
    path: str

    def pool_values(self, tp: int) -> dict[str, Any]:
        """The pool fields this engine sets for a pool of tensor-parallel degree ``tp``."""
        out = dict(self.pool_defaults)
        overhead = out.get("step_overhead")
        if isinstance(overhead, Mapping):
            degrees = sorted(overhead)
            below = [d for d in degrees if d <= tp]
            if below:
                out["step_overhead"] = overhead[below[-1]]
            else:  # no figure at or below this degree: the chip's calibrated value holds
                del out["step_overhead"]
        return out


def list_engines() -> list[str]:
    """Names of every engine profile found (user folders first, then the shipped ones)."""
    return list_names("engines")


def find_engine(name: str, base_dir: Path | None = None) -> Path | None:
    """An engine file: a path (relative to ``base_dir`` when given), else a shipped/user name."""
    if base_dir is not None and (base_dir / name).is_file():
        return base_dir / name
    return find_data_file("engines", name)


def load_engine(name_or_path: str | os.PathLike[str], *, base_dir: Path | None = None
                ) -> EngineProfile:
    """Load an engine profile by name (``"vllm-v1"``) or path; unknown names list the known."""
    given = os.fspath(name_or_path)
    path = find_engine(given, base_dir) if given else None
    if path is None:
        raise InfersimError(expected="a shipped engine (" + ", ".join(list_engines()) +
                            ") or a path to an engine YAML", given=given)
    resolved = path.resolve()
    return _load_cached(str(resolved), resolved.stat().st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _load_cached(path: str, _mtime_ns: int) -> EngineProfile:
    data = read_yaml(path, path, what="engine profile")
    if not isinstance(data, Mapping):
        raise InfersimError(file=path, expected="a mapping with " + ", ".join(_TOP_KEYS),
                            given=type(data).__name__)
    for key in data:
        if key not in _TOP_KEYS:
            raise InfersimError("unknown key", file=path, field=str(key),
                                expected="one of the keys " + ", ".join(_TOP_KEYS))
    sources: dict[str, str] = {}
    defaults_raw = data.get("pool_defaults") or {}
    if not isinstance(defaults_raw, Mapping):
        raise InfersimError(file=path, field="pool_defaults", expected="a mapping of pool fields",
                            given=defaults_raw)
    defaults: dict[str, Any] = {}
    for key, entry in defaults_raw.items():
        if key not in POOL_FIELDS:
            raise InfersimError("unknown key", file=path, field=f"pool_defaults.{key}",
                                expected="one of the keys " + ", ".join(POOL_FIELDS))
        defaults[key] = _sourced(path, f"pool_defaults.{key}", entry, sources)
    _check_pool_values(path, defaults)
    disaggregation = _sourced(path, "disaggregation", data.get("disaggregation"), sources)
    if not isinstance(disaggregation, bool):
        raise InfersimError(file=path, field="disaggregation.value", expected="true or false",
                            given=disaggregation)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise InfersimError(file=path, field="description", expected="a string", given=description)
    return EngineProfile(name=Path(path).stem, description=description, pool_defaults=defaults,
                         disaggregation=disaggregation, sources=sources, path=path)


def _sourced(path: str, field: str, entry: Any, sources: dict[str, str]) -> Any:
    """The ``value`` of a ``{value, source}`` entry; every figure carries its source."""
    if not isinstance(entry, Mapping) or set(entry) != {"value", "source"} \
            or not isinstance(entry["source"], str) or not entry["source"].strip():
        raise InfersimError(file=path, field=field, expected="{value: ..., source: '...'} (every "
                            "engine default names where it comes from)", given=entry
                            if entry is not None else ...)
    sources[field] = entry["source"]
    return entry["value"]


def _check_pool_values(path: str, defaults: Mapping[str, Any]) -> None:
    """The profile's values must be ones a pool accepts: checked with the pool schema itself,
    once per step-overhead entry, errors naming the engine file."""
    from pydantic import ValidationError

    from infersim.scenario.schema import PoolConfig
    from infersim.schema_errors import error_from_validation

    overhead = defaults.get("step_overhead")
    variants: list[tuple[str, Any]] = [("", overhead)]
    if isinstance(overhead, Mapping):
        if not overhead or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 1
                                   for k in overhead):
            raise InfersimError(file=path, field="pool_defaults.step_overhead.value",
                                expected="a time, or a table of times by tensor-parallel degree "
                                         "(integer keys >= 1)", given=dict(overhead))
        variants = [(f".{k}", v) for k, v in overhead.items()]
    for suffix, value in variants:
        values = {**defaults, "step_overhead": value}
        if overhead is None:
            values.pop("step_overhead")
        data = {"role": "mixed", "hardware": "any", **values}
        try:
            PoolConfig.model_validate(data)
        except ValidationError as err:
            line = error_from_validation(err, data, path, root=PoolConfig)
            field = line.field or ""
            where = f"pool_defaults.{field}.value" + (suffix if field == "step_overhead" else "")
            raise InfersimError(line.detail, file=path, field=where, expected=line.expected,
                                given=line.given) from None
