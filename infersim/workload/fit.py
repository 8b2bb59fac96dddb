"""Fit a shippable length mix to a trace, without copying the trace.

Public traces carry their own licences and can be large, so infersim ships no trace rows. A mix
instead carries a *quantile table* per length: the token count at ~20 probabilities, dense in the
tail (p99, p99.9) where KV-cache pressure and long prefills come from. Sampling it
(``{dist: quantiles}``) interpolates linearly between the points, which reproduces the trace's
median and percentiles exactly at the table's points and its mean to within a fraction of a
percent. A lognormal fit (mean, sigma of ln tokens) is printed alongside for reference.

Usage::

    python -m infersim.workload.fit TRACE --format azure [--name chat]

prints a ``workloads/<name>.yaml`` body with the tables and the trace's summary statistics,
which is how the shipped mixes were made.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

import numpy as np

from infersim.errors import InfersimError
from infersim.workload.traces import TRACE_FORMATS, load_trace

# Every 2.5 %, and dense in the tails: the p99+ prompts set KV capacity and the longest
# prefills. 47 points keep the sampled distribution within ~0.02 (Kolmogorov-Smirnov) of the
# shipped traces'.
QUANTILE_PROBS = (0.0, 0.005, 0.01, *(round(0.025 * k, 3) for k in range(1, 40)),
                  0.98, 0.99, 0.995, 0.999, 1.0)


def quantile_points(values: np.ndarray, probs: Sequence[float] = QUANTILE_PROBS
                    ) -> list[list[float]]:
    """``[[p, tokens], ...]`` of the empirical quantiles (linear interpolation, whole tokens)."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError("quantile_points needs at least one value")
    tokens = np.quantile(values, probs)
    # Round to whole tokens; monotone because np.quantile is and rounding preserves order.
    return [[float(p), float(np.rint(t))] for p, t in zip(probs, tokens, strict=True)]


def lognormal_fit(values: np.ndarray) -> tuple[float, float]:
    """(mean tokens, sigma of ln tokens) by moments of ln(values): the ``lognormal`` form."""
    logs = np.log(np.asarray(values, dtype=np.float64))
    sigma = float(logs.std())
    return float(math.exp(logs.mean() + 0.5 * sigma**2)), sigma


def summary(values: np.ndarray) -> dict[str, float]:
    values = np.asarray(values, dtype=np.float64)
    return {"mean": round(float(values.mean()), 1), "median": float(np.median(values)),
            "p99": float(np.rint(np.quantile(values, 0.99))), "max": float(values.max())}


def _yaml_points(points: list[list[float]], indent: str = "    ") -> str:
    pairs = [f"[{p:g}, {t:g}]" for p, t in points]
    rows = [", ".join(pairs[i:i + 6]) for i in range(0, len(pairs), 6)]
    return "[\n" + ",\n".join(indent + row for row in rows) + "]"


def describe(path: str, fmt: str, name: str) -> str:
    """A YAML mix body fitted to the trace at ``path``."""
    trace = load_trace(path, fmt)
    lines = [f"# Fitted by: python -m infersim.workload.fit {path} --format {fmt} --name {name}",
             f"description: Request lengths of {name}, fitted to {len(trace)} requests.",
             "derivation: >-",
             "  Quantile tables of each length column at p = 0, 0.005, 0.01, every 0.025 to",
             "  0.975, then 0.98, 0.99, 0.995, 0.999 and 1 (numpy linear quantiles, rounded to",
             "  whole tokens); sampled by linear interpolation between them.",
             ]
    for label, values in (("prompt_tokens", trace.prompt_tokens),
                          ("output_tokens", trace.output_tokens)):
        stats = summary(values)
        mean, sigma = lognormal_fit(values)
        lines.append(f"# {label}: trace {stats}; lognormal fit mean {mean:.0f}, sigma {sigma:.3f}")
        lines.append(f"{label}:")
        lines.append("  dist: quantiles")
        lines.append(f"  points: {_yaml_points(quantile_points(values))}")
    if trace.dropped:
        lines.append(f"# {trace.dropped} rows with 0 prompt or output tokens were dropped")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infersim.workload.fit",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("trace")
    parser.add_argument("--format", required=True, choices=TRACE_FORMATS)
    parser.add_argument("--name", default="mix")
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(describe(args.trace, args.format, args.name))
    except InfersimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
