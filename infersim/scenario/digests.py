"""What a run depends on, digested: the scenario hash saved with every result.

The hash is the first 16 hex digits of the SHA-256 of the canonical JSON of the resolved scenario
(after overrides and the seed, quantities in SI units) together with the SHA-256 of every data
file it names. The scenario names chips, a model, workload mixes and trace files by name or path;
editing one of those files (a recalibrated knob, a new price, another trace) changes the
results, so their contents are part of the hash. Without that a resumed sweep or a plan baseline
would silently reuse runs made with the old figures.

These functions work on the resolved data (plain JSON) and the folder relative paths are taken
from, so that the schema can call them without this module knowing the schema.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from infersim.errors import InfersimError
from infersim.paths import find_data_file
from infersim.yamlfile import read_yaml


def resolved_hash(resolved: Mapping[str, Any], base_dir: Path) -> str:
    """First 16 hex digits of the SHA-256 of the resolved scenario and its inputs' digests."""
    payload = {"scenario": resolved, "inputs": input_digests(resolved, base_dir)}
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                           allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_digests(resolved: Mapping[str, Any], base_dir: Path) -> dict[str, str]:
    """SHA-256 of every data file a resolved scenario reads, keyed by a stable label.

    Covers each pool's hardware profile (and engine profile, when it names one), the model
    spec, and in the workload every named mix (recursively, mixes name mixes) and every
    ``path`` (traces, empirical length tables).
    Names that resolve to no file are left out: validation reports those.
    """
    from infersim import __version__

    digests: dict[str, str] = {"infersim": __version__}

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

    for _, pool in sorted(resolved["pools"].items()):
        add(f"hardware:{pool['hardware']}", local_or_shipped("hardware", pool["hardware"],
                                                            base_dir))
        if pool.get("engine"):
            add(f"engine:{pool['engine']}", local_or_shipped("engines", pool["engine"], base_dir))
    add(f"model:{resolved['model']}", local_or_shipped("models", resolved["model"], base_dir))

    seen: set[Path] = set()

    def walk(node: Any, folder: Path) -> None:
        if isinstance(node, dict):
            for key, value in sorted(node.items()):
                if key == "mix" and isinstance(value, str):
                    path = add(f"mix:{value}", local_or_shipped("workloads", value, folder))
                    if path is not None and path.resolve() not in seen:
                        seen.add(path.resolve())
                        # a malformed mix is reported, with its line, by the workload loader
                        with contextlib.suppress(InfersimError):
                            walk(read_yaml(path), path.parent)
                elif key == "path" and isinstance(value, str):
                    add(f"file:{value}", folder / value)
                else:
                    walk(value, folder)
        elif isinstance(node, list):
            for item in node:
                walk(item, folder)

    walk(resolved.get("workload"), base_dir)
    return digests
