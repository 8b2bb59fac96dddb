"""The calibration overlay: fitted knobs as a small YAML file a user commits beside a scenario.

``infersim calibrate`` writes it; ``infersim run SCENARIO --overlay FILE`` applies it. It is a
list of scenario field paths and values, exactly what ``--set`` takes, plus a record of what it
was fitted on and how well it predicted the held-out runs::

    # infersim calibration overlay (infersim calibrate); apply: infersim run S --overlay FILE
    overlay: calibration
    scenario: a100-vllm
    fitted_on: [results/c4.json]
    held_out: [results/c32.json]
    set:
      pools.vllm.step_overhead: 0.00451
      pools.vllm.compute_efficiency: 0.48
      pools.vllm.memory_efficiency: 0.79
    held_out_median_abs_error: {median_ttft_ms: 0.031, median_e2el_ms: 0.012}

Values are in SI units (seconds for ``step_overhead``). ``--set`` given on the same command
line is applied after the overlay, so it wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from infersim.errors import InfersimError
from infersim.yamlfile import read_yaml

MARKER = "calibration"


def overlay_document(scenario_name: str, sets: Mapping[str, float], *, fitted_on: list[str],
                     held_out: list[str], errors: Mapping[str, float]) -> str:
    """The overlay file's text."""
    body: dict[str, Any] = {"overlay": MARKER, "scenario": scenario_name,
                            "fitted_on": fitted_on, "held_out": held_out, "set": dict(sets)}
    if errors:
        body["held_out_median_abs_error"] = {k: round(v, 4) for k, v in errors.items()}
    header = ("# infersim calibration overlay, written by `infersim calibrate`.\n"
              "# Apply it: infersim run SCENARIO --overlay THIS_FILE (values in SI units).\n")
    return header + yaml.safe_dump(body, sort_keys=False, default_flow_style=False, width=100)


def read_overlay(path: str | Path) -> list[str]:
    """The overlay's ``key.path=value`` overrides, in file order."""
    file = str(path)
    data = read_yaml(path, file, what="overlay file")
    if not isinstance(data, Mapping) or data.get("overlay") != MARKER:
        raise InfersimError(file=file, field="overlay", expected=f"'{MARKER}' (a file written "
                            "by infersim calibrate)", given=data.get("overlay", ...)
                            if isinstance(data, Mapping) else type(data).__name__)
    sets = data.get("set")
    if not isinstance(sets, Mapping) or not sets:
        raise InfersimError(file=file, field="set", expected="a mapping of scenario field paths "
                            "to values, e.g. pools.vllm.step_overhead: 0.004",
                            given=sets if sets is not None else ...)
    out = []
    for key, value in sets.items():
        if not isinstance(key, str) or isinstance(value, (Mapping, list)):
            raise InfersimError(file=file, field=f"set.{key}", expected="a field path mapped to "
                                "one value", given=value)
        out.append(f"{key}={yaml.safe_dump(value, default_flow_style=True).strip()}"
                   .removesuffix("\n..."))
    return out
