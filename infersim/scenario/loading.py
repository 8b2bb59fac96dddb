"""Loading a scenario: find the file, read it, apply ``--set`` overrides and the seed, validate.

``load_scenario`` takes a file path, a shipped scenario name, a mapping or a :class:`Scenario`;
``--set key.path=value`` overrides any field before validation (the value parsed as YAML, the
path checked against the schema so a typo is named rather than silently added), and every mistake
becomes one :class:`~infersim.errors.InfersimError` line naming the file, the field path, what
was expected and what was given.
"""

from __future__ import annotations

import copy
import difflib
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from infersim.errors import InfersimError
from infersim.paths import find_data_file, list_names
from infersim.scenario.schema import Scenario
from infersim.schema_errors import annotations_at, dotted, error_from_validation, keys_at, unwrap
from infersim.yamlfile import parse_yaml, read_yaml


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
        value = parse_yaml(raw, "--set") if raw.strip() else ""
    except InfersimError:
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
            anns = annotations_at(Scenario, path[:depth])
            alts = [alt for ann in anns for alt in unwrap(ann)]
            known_fields = keys_at(Scenario, path[:depth])
            is_pool_map = any(typing.get_origin(a) in (dict, Mapping) for a in alts)
            if isinstance(node, list):
                if not isinstance(key, int) or not 0 <= key < len(node):
                    raise InfersimError(file=file, field=f"--set {dotted(here)}",
                                        expected=f"a list index 0..{len(node) - 1}", given=key)
            elif isinstance(node, dict):
                if is_pool_map and key not in node:
                    raise InfersimError(file=file, field=f"--set {dotted(here)}",
                                        expected="one of " + (", ".join(map(str, node)) or
                                                              "the existing names"),
                                        given=str(key))
                if known_fields and key not in known_fields:
                    close = difflib.get_close_matches(str(key), known_fields, n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise InfersimError("unknown path", file=file, field=f"--set {dotted(here)}",
                                        expected="one of the keys " + ", ".join(known_fields)
                                        + hint, given=str(key))
                if not known_fields and not is_pool_map and key not in node and alts:
                    raise InfersimError("unknown path", file=file, field=f"--set {dotted(here)}",
                                        expected="a path into a mapping", given=str(key))
            else:
                raise InfersimError("unknown path", file=file, field=f"--set {dotted(here)}",
                                    expected=f"a path into a mapping, but {dotted(path[:depth])} "
                                             "is a single value", given=str(key))
            if last:
                node[key] = value
            else:
                if isinstance(node, dict) and not isinstance(node.get(key), (dict, list)):
                    node[key] = {}
                node = node[key]
    return out


def apply_engine_profiles(data: Mapping[str, Any], file: str | Path | None,
                          base_dir: Path | None) -> Mapping[str, Any]:
    """``data`` with each pool's ``engine`` profile filling the scheduler fields the pool leaves
    unset (see :mod:`infersim.engines`). A prefill pool holds no decoding sequences, so an
    engine's ``kv_reservation`` is not applied to it. Shapes the schema would refuse are left
    for it to report."""
    from infersim.engines import load_engine

    pools = data.get("pools")
    if not isinstance(pools, Mapping) or not any(
            isinstance(p, Mapping) and "engine" in p for p in pools.values()):
        return data
    filled: dict[str, Any] = {}
    for name, pool in pools.items():
        engine = pool.get("engine") if isinstance(pool, Mapping) else None
        if not isinstance(engine, str) or not engine:
            filled[name] = pool
            continue
        try:
            profile = load_engine(engine, base_dir=base_dir)
        except InfersimError as err:
            if err.file is not None:  # the profile itself is malformed: its own line
                raise
            raise InfersimError(file=file, field=f"pools.{name}.engine", expected=err.expected,
                                given=engine) from None
        tp = pool.get("tp", 1)
        values = profile.pool_values(tp if isinstance(tp, int) and not isinstance(tp, bool)
                                     else 1)
        if pool.get("role") == "prefill":
            values.pop("kv_reservation", None)
        filled[name] = {**values, **pool}
    return {**data, "pools": filled}


def _override_list(overrides: Any) -> list[str]:
    """``overrides`` as a list of ``key.path=value`` strings; one string is one override (not
    a sequence of one-character overrides)."""
    if isinstance(overrides, str):
        return [overrides]
    if isinstance(overrides, (bytes, Mapping)) or not isinstance(overrides, Sequence):
        raise InfersimError(field="overrides", expected="a list of 'key.path=value' strings",
                            given=overrides)
    for item in overrides:
        if not isinstance(item, str):
            raise InfersimError(field="overrides", expected="'key.path=value' strings",
                                given=item)
    return list(overrides)


def validate_data(data: Any, *, file: str | Path | None = None,
                  base_dir: Path | None = None) -> Scenario:
    """A :class:`Scenario` from already-parsed data; errors are one InfersimError line."""
    if not isinstance(data, Mapping):
        raise InfersimError(file=file, expected="a mapping of scenario fields (name, model, pools, "
                            "workload, ...)", given=type(data).__name__ if data is not None
                            else "an empty file")
    data = apply_engine_profiles(data, file, base_dir)
    try:
        scenario = Scenario.model_validate(dict(data))
    except ValidationError as err:
        raise error_from_validation(err, data, file, root=Scenario) from None
    except InfersimError as err:  # raised by a nested validator (e.g. the workload's own checks)
        raise attributed(err, file) from None
    scenario._base_dir = base_dir
    scenario._source = str(file) if file is not None else None
    return scenario


def load_scenario(source: Scenario | str | Path | Mapping[str, Any], *,
                  overrides: Sequence[str] = (), seed: int | None = None) -> Scenario:
    """Load, override and validate a scenario from a file, a name, a dict or a Scenario."""
    overrides = _override_list(overrides)
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
