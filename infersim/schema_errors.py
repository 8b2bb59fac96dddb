"""Turning pydantic's validation errors into one user-facing line.

Every file a user writes (a scenario, a workload mix, a plan, a sweep) is checked by a pydantic
model; a mistake must come back as one :class:`~infersim.errors.InfersimError` line naming the
file, the field path as the user wrote it, what was expected and what was given. Pydantic's own
errors say ``Input should be greater than 0 [type=greater_than, input_value=...]`` and carry
union-branch names (``lognormal``, ``function-after[...]``) that are in no user's file; this
module walks the schema of the *root model* that was validated to word them in the file's terms:

- the path keeps only keys the data has (plus a missing last key), so union branches vanish;
- among an undiscriminated union's branches, ones that failed only on a literal tag are skipped
  (they are the branches the user did not mean);
- bounds read "an integer >= 1" or "a number > 0" after the field's type; an unknown key lists
  the keys accepted there with a close match.

The root is a parameter, so the same translator serves every loader.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ValidationError

from infersim.errors import InfersimError


def unwrap(annotation: Any) -> list[Any]:
    """The concrete alternatives of an annotation (Optional/Union/Annotated peeled off)."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return unwrap(typing.get_args(annotation)[0])
    if origin is typing.Union or origin is types.UnionType:
        out: list[Any] = []
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                out.extend(unwrap(arg))
        return out
    return [annotation]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _step(annotation: Any, key: Any) -> list[Any]:
    """Annotations reached from ``annotation`` by following ``key`` (a field, dict key, index)."""
    out: list[Any] = []
    for alt in unwrap(annotation):
        origin = typing.get_origin(alt)
        if _is_model(alt):
            field = alt.model_fields.get(key) if isinstance(key, str) else None
            if field is not None:
                args = (field.annotation, *field.metadata)
                out.append(Annotated[args] if field.metadata else field.annotation)
        elif origin in (dict, Mapping) and isinstance(key, str):
            out.append(typing.get_args(alt)[1])
        elif origin in (list, tuple, Sequence) and isinstance(key, int):
            out.append(typing.get_args(alt)[0])
    return out


def annotations_at(root: Any, path: Sequence[Any]) -> list[Any]:
    """The annotations a value at ``path`` under ``root`` may have (several through unions)."""
    current: list[Any] = [root]
    for key in path:
        current = [nxt for ann in current for nxt in _step(ann, key)]
    return current


def keys_at(root: Any, path: Sequence[Any]) -> list[str]:
    """Field names accepted at ``path`` (the union of all alternatives), for hints."""
    keys: dict[str, None] = {}
    for ann in annotations_at(root, path):
        for alt in unwrap(ann):
            if _is_model(alt):
                for name, field in alt.model_fields.items():
                    keys.setdefault(field.alias or name, None)
    return list(keys)


def _kind_at(root: Any, path: Sequence[Any]) -> str:
    """'an integer' or 'a number' for a numeric field (for '>= 1' style messages)."""
    alts = [alt for ann in annotations_at(root, path) for alt in unwrap(ann)]
    if alts and all(alt is int for alt in alts):
        return "an integer"
    return "a number"


def _clean_path(loc: Sequence[Any], data: Any,
                missing: bool = True) -> tuple[list[Any], list[Any]]:
    """Split pydantic's ``loc`` into the user's field path and the union branches it went through.

    Pydantic puts the name of a union member (or a discriminator's tag) into ``loc``; the user's
    file has no such key, so we drop any component the data does not have, except the last of a
    ``missing`` error (a missing field is, by definition, not in the data).
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
        elif i == len(loc) - 1 and missing:
            path.append(comp)
        else:
            branches.append(comp)
    return path, branches


def _pick(errors: list[Any], data: Any) -> Any:
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


def dotted(path: Sequence[Any]) -> str:
    """A field path as users write it: ``pools.decode.instances``."""
    return ".".join(str(p) for p in path)


_SIMPLE = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "an integer",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "true or false", "bool_parsing": "true or false",
    "string_type": "a string", "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)", "model_attributes_type": "a mapping (key: value)",
    "list_type": "a list", "tuple_type": "a list",
}
_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<",
           "less_than_equal": "<="}


def _expected(root: Any, err: Any, path: list[Any]) -> tuple[str, str | None]:
    """(expected, detail) in words for one pydantic error."""
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in _SIMPLE:
        return _SIMPLE[kind], None
    if kind == "missing":
        return "a value (this field is required)", None
    if kind == "extra_forbidden":
        allowed = keys_at(root, path[:-1])
        key = str(path[-1]) if path else ""
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        what = ("one of the keys " + ", ".join(allowed)) if allowed else "a known key"
        return what + hint, "unknown key"
    if kind == "literal_error":
        return "one of " + str(ctx.get("expected", "")), None
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()))
        shown = str(bound) if isinstance(bound, int) else f"{bound:g}"
        return f"{_kind_at(root, path)} {_BOUNDS[kind]} {shown}", None
    if kind in ("too_short", "too_long"):
        lo, hi = _length_bounds(root, path)
        if lo is not None and lo == hi:
            return f"exactly {lo} items", None
        bound = ctx["min_length"] if kind == "too_short" else ctx["max_length"]
        noun = "item" if bound == 1 else "items"
        return (f"at least {bound} {noun}" if kind == "too_short"
                else f"at most {bound} {noun}"), None
    if kind == "string_too_short":
        return "a non-empty string", None
    if kind == "string_too_long":
        return f"a string of at most {ctx.get('max_length')} characters", None
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


def _length_bounds(root: Any, path: Sequence[Any]) -> tuple[int | None, int | None]:
    parent = path[:-1]
    key = path[-1] if path else None
    for ann in annotations_at(root, parent):
        for alt in unwrap(ann):
            if _is_model(alt) and isinstance(key, str) and key in alt.model_fields:
                lo = hi = None
                for meta in alt.model_fields[key].metadata:
                    lo = getattr(meta, "min_length", lo)
                    hi = getattr(meta, "max_length", hi)
                return lo, hi
    return None, None


def error_from_validation(err: ValidationError, data: Any, file: str | Path | None = None, *,
                          root: type[BaseModel], prefix: Sequence[Any] = ()) -> InfersimError:
    """One :class:`InfersimError` line for a pydantic ``ValidationError`` of ``root`` over
    ``data``; ``prefix`` is put in front of the field path (a mapping nested in a larger file)."""
    errors = err.errors(include_url=False)
    chosen = _pick(errors, data)
    path, _ = _clean_path(chosen["loc"], data, missing=chosen["type"] == "missing")
    expected, detail = _expected(root, chosen, path)
    if chosen["type"] == "union_tag_invalid":
        # Point at the tag key itself: 'workload.arrival.process', not the whole mapping.
        path = [*path, str((chosen.get("ctx") or {}).get("discriminator", "")).strip("'")]
        given: Any = (chosen.get("ctx") or {}).get("tag", ...)
    elif chosen["type"] in ("missing", "extra_forbidden") or not expected:
        given = ...
    else:
        given = chosen.get("input", ...)
    return InfersimError(detail, file=file, field=dotted([*prefix, *path]) or None,
                         expected=expected or None, given=given)
