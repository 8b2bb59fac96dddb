"""Request mixes: named, sourced descriptions of what a service's requests look like.

"Cost per token" means nothing without a workload mix: a coding agent that writes long answers
to short prompts spends its time in decode, a summariser that reads long documents and answers
briefly spends it in prefill. A mix fixes the prompt and output length distributions of one kind
of traffic, or weights several such *classes* (each may carry its own latency SLO).

Shipped mixes live in ``workloads/<name>.yaml`` (more can be added through
``INFERSIM_WORKLOADS_PATH``); each records where its numbers come from (``sources``) and how they
were derived (``derivation``). A class may refer to another mix by name; nesting is resolved
here into a flat list of :class:`RequestClass` leaves with their shares of the requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from pydantic import ValidationError

from infersim.errors import InfersimError
from infersim.paths import find_data_file, list_names
from infersim.schema_errors import error_from_validation
from infersim.workload.config import MixSpec
from infersim.workload.lengths import LengthDist
from infersim.yamlfile import read_yaml

_MAX_DEPTH = 8


@dataclass(frozen=True)
class RequestClass:
    """One leaf class of a resolved mix."""

    name: str
    share: float  # fraction of all requests, the shares of a mix sum to 1
    prompt_tokens: LengthDist
    output_tokens: LengthDist
    slo: Mapping[str, float]  # e.g. {"ttft_ms": 500.0}; empty: the scenario-wide SLO applies
    base_dir: Path | None  # where relative paths of empirical distributions are taken from


def list_mixes() -> list[str]:
    """Names of the shipped and user mixes."""
    return list_names("workloads")


def load_mix(name: str, *, base_dir: Path | None = None) -> tuple[MixSpec, Path]:
    """The named mix (or a YAML file path, relative to ``base_dir``) and the file it came from."""
    path = None
    if base_dir is not None and (Path(base_dir) / name).is_file():
        path = Path(base_dir) / name
    if path is None:
        path = find_data_file("workloads", name)
    if path is None:
        known = ", ".join(list_mixes()) or "none found"
        raise InfersimError(field="mix", expected=f"a shipped mix ({known}) or a YAML file",
                            given=name)
    data = read_yaml(path, what="mix file")
    if not isinstance(data, dict):
        raise InfersimError(file=path, expected="a mapping with prompt_tokens and "
                            "output_tokens, or classes", given=type(data).__name__)
    data = {k: v for k, v in data.items() if k != "name"}  # the file stem is the name
    try:
        return MixSpec.model_validate(data), path
    except ValidationError as exc:
        raise error_from_validation(exc, data, str(path), root=MixSpec) from None


def resolve_mix(mix: str | MixSpec, *, name: str | None = None,
                base_dir: Path | None = None, slo: Mapping[str, float] | None = None,
                _stack: tuple[str, ...] = ()) -> tuple[RequestClass, ...]:
    """Flatten ``mix`` into leaf classes whose shares sum to 1.

    SLO targets are merged key by key from the outside in: ``slo`` (the workload-wide
    targets), then the mix's own ``slo``, then a class's ``slo``, which also overrides the
    targets of the mix the class names.
    """
    if isinstance(mix, str):
        if mix in _stack or len(_stack) >= _MAX_DEPTH:
            raise InfersimError(field="mix", expected="mixes that do not include themselves",
                                given=" -> ".join((*_stack, mix)))
        spec, path = load_mix(mix, base_dir=base_dir)
        return resolve_mix(spec, name=name or Path(mix).stem, base_dir=path.parent,
                           slo=slo, _stack=(*_stack, mix))
    inherited = {**(slo or {}), **(mix.slo.targets() if mix.slo else {})}
    if mix.classes is None:
        return (RequestClass(name=name or "default", share=1.0, prompt_tokens=mix.prompt_tokens,
                             output_tokens=mix.output_tokens,
                             slo=MappingProxyType(dict(inherited)), base_dir=base_dir),)
    total = sum(c.weight for c in mix.classes)
    leaves: list[RequestClass] = []
    for cls in mix.classes:
        own = cls.slo.targets() if cls.slo else {}
        share = cls.weight / total
        if cls.mix is not None:
            children = resolve_mix(cls.mix, name=cls.name, base_dir=base_dir, slo=inherited,
                                   _stack=_stack)
            for child in children:
                child_name = cls.name if len(children) == 1 else f"{cls.name}/{child.name}"
                leaves.append(RequestClass(
                    name=child_name, share=share * child.share,
                    prompt_tokens=child.prompt_tokens, output_tokens=child.output_tokens,
                    slo=MappingProxyType({**child.slo, **own}), base_dir=child.base_dir))
        else:
            leaves.append(RequestClass(
                name=cls.name, share=share, prompt_tokens=cls.prompt_tokens,
                output_tokens=cls.output_tokens, slo=MappingProxyType({**inherited, **own}),
                base_dir=base_dir))
    return tuple(leaves)
