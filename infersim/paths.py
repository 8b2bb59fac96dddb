"""Where infersim finds its data folders (hardware, models, workloads, scenarios, engines).

A checkout keeps them at the top of the repository; an installed wheel carries them inside the
package as ``infersim/_data/<kind>``. Users may add their own folders with the environment
variables ``INFERSIM_HARDWARE_PATH``, ``INFERSIM_MODELS_PATH``, ``INFERSIM_WORKLOADS_PATH``,
``INFERSIM_SCENARIOS_PATH`` and ``INFERSIM_ENGINES_PATH`` (``os.pathsep``-separated), searched
before the shipped ones, or pass a path to a file directly wherever a name is accepted. A checkout-relative path such as
``scenarios/default.yaml`` (as the README writes it) names the shipped file when no file of that
path exists in the current folder, so the README's commands work from anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_KINDS = ("hardware", "models", "workloads", "scenarios", "engines")

_PACKAGE = Path(__file__).resolve().parent


def shipped_dir(kind: str) -> Path:
    """The folder of shipped ``kind`` data: the wheel's copy, else the checkout's."""
    if kind not in DATA_KINDS:
        raise ValueError(f"unknown data kind {kind!r}")
    installed = _PACKAGE / "_data" / kind
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / kind


def search_dirs(kind: str) -> list[Path]:
    """User folders (from the environment) first, then the shipped folder."""
    extra = os.environ.get(f"INFERSIM_{kind.upper()}_PATH", "")
    dirs = [Path(p).expanduser() for p in extra.split(os.pathsep) if p]
    dirs.append(shipped_dir(kind))
    return dirs


def find_data_file(kind: str, name: str, suffixes: tuple[str, ...] = (".yaml", ".yml")) -> Path | None:
    """Resolve ``name`` (a path, or a shipped/user name without suffix) to a file, or None."""
    direct = Path(name).expanduser()
    if direct.is_file():
        return direct
    for folder in search_dirs(kind):
        for suffix in ("", *suffixes):
            candidate = folder / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    # The README writes shipped data as checkout paths ("scenarios/default.yaml"); from any other
    # folder they name the shipped file (a file of that path where the user stands won above).
    parts = direct.parts
    if len(parts) == 2 and parts[0] == kind:
        for suffix in ("", *suffixes):
            candidate = shipped_dir(kind) / f"{parts[1]}{suffix}"
            if candidate.is_file():
                return candidate
    return None


def list_names(kind: str, suffixes: tuple[str, ...] = (".yaml", ".yml")) -> list[str]:
    """Names of every ``kind`` file found, user folders first, without duplicates."""
    seen: dict[str, None] = {}
    for folder in search_dirs(kind):
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                if path.suffix in suffixes and not path.name.startswith("_"):
                    seen.setdefault(path.stem, None)
    return list(seen)
