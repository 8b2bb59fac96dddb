"""Model files: shipped model YAMLs, a ``config.json`` or a checkpoint folder, found by name.

A shipped model is a YAML file in ``models/``: the model's ``name``, the ``source`` URL of its
``config.json``, the ``reported_params`` of its model card with their source, and ``hf_config``,
the config's keys verbatim. Names are looked up in ``INFERSIM_MODELS_PATH`` folders first.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infersim.errors import InfersimError
from infersim.model.hf import from_hf_config
from infersim.model.spec import ModelSpec
from infersim.paths import find_data_file, list_names, search_dirs
from infersim.yamlfile import read_json, read_yaml

# Keys of a model YAML file; anything else is a typo the user should hear about.
_YAML_KEYS = ("name", "description", "source", "reported_params", "hf_config", "notes")
_REPORTED_KEYS = ("total", "active", "source")

def _read_json(path: Path) -> Any:
    return read_json(path, what="config.json")


def _read_yaml(path: Path) -> Any:
    return read_yaml(path, what="model YAML")


def _reported(doc: Mapping[str, Any], path: Path) -> tuple[float | None, float | None]:
    rep = doc.get("reported_params")
    if rep is None:
        return None, None
    if not isinstance(rep, Mapping):
        raise InfersimError(file=path, field="reported_params",
                            expected="a mapping with total, active (MoE) and source", given=rep)
    unknown = sorted(set(rep) - set(_REPORTED_KEYS))
    if unknown:
        raise InfersimError(file=path, field=f"reported_params.{unknown[0]}",
                            expected="one of " + ", ".join(_REPORTED_KEYS), given=unknown[0])
    out: list[float | None] = []
    for key in ("total", "active"):
        value = rep.get(key)
        if isinstance(value, str):
            # YAML 1.1 reads 8.03e9 (no exponent sign) as a string; take it as the number meant
            with contextlib.suppress(ValueError):
                value = float(value)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or value <= 0):
            raise InfersimError(file=path, field=f"reported_params.{key}",
                                expected="a positive parameter count such as 8.03e9", given=value)
        out.append(float(value) if value is not None else None)
    return out[0], out[1]


def load_model_yaml(path: str | Path) -> ModelSpec:
    """Read a model YAML (``name``, ``source``, ``reported_params``, ``hf_config``)."""
    path = Path(path)
    doc = _read_yaml(path)
    if not isinstance(doc, Mapping):
        raise InfersimError(file=path, expected="a mapping with name, source and hf_config",
                            given=doc)
    unknown = sorted(set(doc) - set(_YAML_KEYS))
    if unknown:
        raise InfersimError(file=path, field=str(unknown[0]),
                            expected="one of " + ", ".join(_YAML_KEYS), given=unknown[0])
    if "hf_config" not in doc:
        raise InfersimError(file=path, field="hf_config",
                            expected="the model's Hugging Face config.json keys (required)",
                            given=None)
    name = doc.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise InfersimError(file=path, field="name", expected="a non-empty string", given=name)
    total, active = _reported(doc, path)
    return from_hf_config(doc["hf_config"], name=name, file=path, field_prefix="hf_config.",
                          reported_params_total=total, reported_params_active=active)


def load_hf_config(path: str | Path, *, name: str | None = None) -> ModelSpec:
    """Read a Hugging Face ``config.json``; the model is named after its folder by default."""
    path = Path(path)
    return from_hf_config(_read_json(path), name=name or path.resolve().parent.name, file=path)


def load_model(name_or_path: str | Path, *, field: str = "model") -> ModelSpec:
    """Load a model by shipped/user name, model YAML path, ``config.json`` path or folder.

    Names are looked up in ``INFERSIM_MODELS_PATH`` folders, then in the shipped ``models/``.
    ``field`` names the setting that held ``name_or_path``, for the error when nothing matches.
    """
    if not isinstance(name_or_path, (str, Path)) or not str(name_or_path):
        raise InfersimError(field=field, expected="a model name or the path to a config.json or "
                            "model YAML", given=name_or_path)
    text = str(name_or_path)
    direct = Path(text).expanduser()
    if direct.is_dir():
        config = direct / "config.json"
        if not config.is_file():
            raise InfersimError(file=direct, field=field,
                                expected="a folder containing config.json", given=text)
        return load_hf_config(config, name=direct.resolve().name)
    if direct.is_file() and direct.suffix == ".json":
        return load_hf_config(direct)
    found = find_data_file("models", text)
    if found is None:
        found = find_data_file("models", text, suffixes=(".json", "/config.json"))
    if found is None:
        raise InfersimError(
            field=field,
            expected="a model name (one of " + ", ".join(list_models())
            + ") or a path to a model YAML, a config.json or a folder containing one",
            given=text)
    if found.name == "config.json":
        return load_hf_config(found, name=text)
    if found.suffix == ".json":
        return load_hf_config(found, name=found.stem)
    return load_model_yaml(found)


def list_models() -> list[str]:
    """Names of all models: YAML specs, ``<name>.json`` configs and ``<name>/config.json``
    checkpoint folders found in user folders and the shipped ``models/``, sorted."""
    names = dict.fromkeys(list_names("models"))
    names.update(dict.fromkeys(list_names("models", suffixes=(".json",))))
    for folder in search_dirs("models"):
        if folder.is_dir():
            names.update(dict.fromkeys(
                sub.name for sub in folder.iterdir()
                if (sub / "config.json").is_file() and not sub.name.startswith("_")))
    return sorted(names)
