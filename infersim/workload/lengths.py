"""Length distributions: how many prompt tokens a request brings and how many it generates.

Prompt length drives prefill (compute, TTFT) and the KV cache a request occupies; output length
drives how many decode steps it stays in a batch. The two are drawn separately, each from one of:

``fixed``      every request the same: ``{dist: fixed, value: 256}``
``uniform``    whole numbers ``low..high`` inclusive, equally likely: ``{dist: uniform, low: 1, high: 512}``
``normal``     ``{dist: normal, mean: 1000, std: 200}``, rounded
``lognormal``  ``{dist: lognormal, mean: 1024, sigma: 0.6}``, rounded. ``mean`` is the mean token
               count (the mean of the lognormal itself, not of the underlying normal): the
               underlying normal has ``mu = ln(mean) - sigma**2 / 2``. ``sigma`` is the standard
               deviation of ``ln(tokens)``; the CV is ``sqrt(exp(sigma**2) - 1)`` (0.6 -> 0.66).
               ``median`` may be given instead of ``mean`` (then ``mu = ln(median)``).
``quantiles``  a piecewise-linear inverse CDF through ``[[probability, tokens], ...]`` from
               probability 0 to 1: how the shipped mixes carry real traces without copying them.
``empirical``  resampled (with replacement) from ``values`` (optionally ``weights``) or from a
               column of a CSV file (``path``, ``column``, optional ``weight_column``).

Every distribution takes ``min`` (default 1: a request has at least one token each way) and an
optional cap ``max``. Draws outside ``[min, max]`` are clipped to it, not redrawn: a server
truncates a prompt to its context window and stops a generation at ``max_tokens``, so the mass
piles up at the cap just as it does in production. The nominal ``mean`` is that of the
distribution before rounding and clipping; a tight cap lowers the realised mean. A ``mean``,
``median``, ``value`` or ``low``/``high`` outside ``[min, max]`` is an error: the spec would
contradict itself.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

from infersim import limits
from infersim.errors import InfersimError
from infersim.workload.tracefile import open_text, reading_errors

Tokens = Annotated[float, Field(gt=0, le=limits.MAX_TOKENS)]


class _LengthBase(BaseModel, ABC):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    min: int = Field(1, ge=1, le=limits.MAX_TOKENS, description="Smallest token count; draws below are raised to it.")
    max: int | None = Field(None, ge=1, le=limits.MAX_TOKENS, description="Cap: draws above are clipped to it "
                            "(context window for prompts, max_tokens for outputs). None: no cap.")

    @model_validator(mode="after")
    def _min_below_max(self):
        if self.max is not None and self.max < self.min:
            raise ValueError(f"expected max >= min ({self.min}), got max={self.max}")
        return self

    def _centre(self) -> tuple[tuple[str, float], ...]:
        """The figures the user wrote that must lie inside ``[min, max]``; none by default."""
        return ()

    def _finish(self, raw: np.ndarray) -> np.ndarray:
        """Round continuous draws to whole tokens and clip them into ``[min, max]``."""
        upper = self.max if self.max is not None else np.iinfo(np.int64).max // 4
        # Clip before the integer cast: a heavy tail can overflow int64 otherwise.
        clipped = np.clip(np.rint(raw), self.min, upper)
        return clipped.astype(np.int64)

    @abstractmethod
    def sample(self, n: int, rng: np.random.Generator, *,
               base_dir: Path | None = None) -> np.ndarray:
        """``n`` whole token counts in ``[min, max]`` drawn from ``rng``."""

    @abstractmethod
    def nominal_mean(self, *, base_dir: Path | None = None) -> float:
        """Mean token count before rounding and clipping (for sanity checks and token shares)."""


def check_centre_within_bounds(dist: _LengthBase, field: str) -> None:
    """ValueError when the mean, median, value or low/high the user wrote lies outside the
    distribution's own ``[min, max]``.

    Such a spec contradicts itself: clipping would silently replace the figure written with the
    bound (``{dist: lognormal, mean: 1024, max: 512}`` simulates ~490 tokens on average). The
    workload configuration calls this on every user-written distribution; the classes themselves
    accept any combination, so property tests may still probe clipping with arbitrary bounds.
    """
    for name, value in dist._centre():
        if value < dist.min or (dist.max is not None and value > dist.max):
            bounds = f"[{dist.min}, {dist.max if dist.max is not None else 'no cap'}]"
            raise ValueError(f"{field}: expected {name} within [min, max] = {bounds} (draws are "
                             f"clipped to it), got {value:g}")


class Fixed(_LengthBase):
    """Every request has ``value`` tokens."""

    dist: Literal["fixed"] = "fixed"
    value: int = Field(ge=1, le=limits.MAX_TOKENS, description="Token count of every request.")

    def _centre(self):
        return (("value", self.value),)

    def sample(self, n, rng, *, base_dir=None):
        return self._finish(np.full(n, self.value, dtype=np.float64))

    def nominal_mean(self, *, base_dir=None):
        return float(self.value)


class Uniform(_LengthBase):
    """Whole numbers from ``low`` to ``high`` inclusive, equally likely."""

    dist: Literal["uniform"] = "uniform"
    low: int = Field(ge=1, le=limits.MAX_TOKENS, description="Smallest token count (inclusive).")
    high: int = Field(ge=1, le=limits.MAX_TOKENS, description="Largest token count (inclusive).")

    @model_validator(mode="after")
    def _ordered(self):
        if self.high < self.low:
            raise ValueError(f"expected high >= low ({self.low}), got high={self.high}")
        return self

    def _centre(self):
        return (("low", self.low), ("high", self.high))

    def sample(self, n, rng, *, base_dir=None):
        return self._finish(rng.integers(self.low, self.high, size=n, endpoint=True)
                            .astype(np.float64))

    def nominal_mean(self, *, base_dir=None):
        return 0.5 * (self.low + self.high)


class Normal(_LengthBase):
    """A normal distribution of token counts, rounded; the left tail is clipped at ``min``."""

    dist: Literal["normal"] = "normal"
    mean: Tokens = Field(description="Mean token count.")
    std: float = Field(ge=0, le=limits.MAX_TOKENS, description="Standard deviation in tokens.")

    def _centre(self):
        return (("mean", self.mean),)

    def sample(self, n, rng, *, base_dir=None):
        return self._finish(rng.normal(self.mean, self.std, size=n))

    def nominal_mean(self, *, base_dir=None):
        return float(self.mean)


class LogNormal(_LengthBase):
    """A lognormal token count: ``mean`` (or ``median``) in tokens, ``sigma`` of ln(tokens)."""

    dist: Literal["lognormal"] = "lognormal"
    mean: Tokens | None = Field(None, description="Mean token count (of the lognormal "
                                       "itself, not of the underlying normal).")
    median: Tokens | None = Field(None, description="Median token count, instead of mean.")
    sigma: float = Field(ge=0, le=5, description="Standard deviation of ln(tokens).")

    @model_validator(mode="after")
    def _one_centre(self):
        if (self.mean is None) == (self.median is None):
            raise ValueError("expected exactly one of mean or median, got "
                             + ("both" if self.mean is not None else "neither"))
        return self

    def _centre(self):
        if self.median is not None:
            return (("median", self.median),)
        return (("mean", self.mean),) if self.mean is not None else ()

    @property
    def mu(self) -> float:
        """Mean of the underlying normal, ln-tokens."""
        if self.median is not None:
            return math.log(self.median)
        return math.log(self.mean) - 0.5 * self.sigma**2

    def sample(self, n, rng, *, base_dir=None):
        return self._finish(rng.lognormal(self.mu, self.sigma, size=n))

    def nominal_mean(self, *, base_dir=None):
        return math.exp(self.mu + 0.5 * self.sigma**2)


class Quantiles(_LengthBase):
    """A piecewise-linear inverse CDF: ``points`` are ``[probability, tokens]`` pairs.

    Probabilities run from 0 to 1 and increase; token counts never decrease. A uniform draw ``u``
    becomes the token count interpolated at ``u``. The shipped mixes use this to reproduce a real
    trace's length distribution (body and tail) from ~20 numbers.
    """

    dist: Literal["quantiles"] = "quantiles"
    points: list[Annotated[list[Annotated[float, Field(ge=0, le=limits.MAX_TOKENS)]],
                           Field(min_length=2, max_length=2)]] = Field(
        min_length=2, max_length=100_000, description=(
        "[probability, tokens] pairs; first probability 0, last 1, tokens non-decreasing."))

    @model_validator(mode="after")
    def _monotone(self):
        probs = [p for p, _ in self.points]
        tokens = [t for _, t in self.points]
        if probs[0] != 0.0 or probs[-1] != 1.0:
            raise ValueError(f"expected probabilities from 0 to 1, got {probs[0]} to {probs[-1]}")
        for i in range(1, len(probs)):
            if probs[i] <= probs[i - 1]:
                raise ValueError(f"expected increasing probabilities, got {probs[i]} after "
                                 f"{probs[i - 1]} at points[{i}]")
            if tokens[i] < tokens[i - 1]:
                raise ValueError(f"expected non-decreasing tokens, got {tokens[i]} after "
                                 f"{tokens[i - 1]} at points[{i}]")
        if tokens[0] < 0:
            raise ValueError(f"expected tokens >= 0, got {tokens[0]} at points[0]")
        return self

    def sample(self, n, rng, *, base_dir=None):
        probs, tokens = np.asarray(self.points, dtype=np.float64).T
        return self._finish(np.interp(rng.random(n), probs, tokens))

    def nominal_mean(self, *, base_dir=None):
        probs, tokens = np.asarray(self.points, dtype=np.float64).T
        # Mean of a piecewise-linear inverse CDF: the trapezoid rule is exact.
        return float(np.sum(np.diff(probs) * 0.5 * (tokens[1:] + tokens[:-1])))


class Empirical(_LengthBase):
    """Resample observed token counts: inline ``values`` or a CSV ``path`` + ``column``."""

    dist: Literal["empirical"] = "empirical"
    values: list[Annotated[float, Field(ge=0, le=limits.MAX_TOKENS)]] | None = Field(
        None, min_length=1, max_length=limits.MAX_REQUESTS, description="Observed token counts.")
    weights: list[Annotated[float, Field(ge=0, le=1e12)]] | None = Field(None, description="Relative weight of each value.")
    path: str | None = Field(None, description="CSV file (relative paths: to the scenario "
                             "file's folder); gzip is read as is.")
    column: str | None = Field(None, description="CSV column with the token counts.")
    weight_column: str | None = Field(None, description="CSV column with each row's weight.")

    @model_validator(mode="after")
    def _one_source(self):
        if (self.values is None) == (self.path is None):
            raise ValueError("expected exactly one of values or path, got "
                             + ("both" if self.values is not None else "neither"))
        if self.path is not None and self.column is None:
            raise ValueError("expected column (the CSV column to sample) with path, got none")
        if self.values is not None and (self.column or self.weight_column):
            raise ValueError("expected column/weight_column only with path, got them with values")
        if self.weights is not None:
            if self.values is None:
                raise ValueError("expected weights only with values (use weight_column with path)")
            if len(self.weights) != len(self.values):
                raise ValueError(f"expected {len(self.values)} weights (one per value), "
                                 f"got {len(self.weights)}")
        return self

    def table(self, *, base_dir: Path | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The observed values and their probabilities (None: equally likely)."""
        if self.values is not None:
            values = np.asarray(self.values, dtype=np.float64)
            weights = None if self.weights is None else np.asarray(self.weights, dtype=np.float64)
            where, field = None, "values"
        else:
            path = resolve_path(self.path, base_dir)
            values, weights = _read_columns(path, self.column, self.weight_column)
            where, field = path, self.column
        fine = (values >= 0) & (values <= limits.MAX_TOKENS)  # NaN is not fine either
        if not fine.all():
            bad = float(values[~fine][0])
            raise InfersimError(file=where, field=field, given=bad, expected=(
                f"token counts <= {limits.MAX_TOKENS:,}" if bad > 0 else "token counts >= 0"))
        if weights is None:
            return values, None
        wfield = "weights" if self.values is not None else self.weight_column
        if not np.all(np.isfinite(weights)) or np.any(weights < 0) or weights.sum() <= 0:
            raise InfersimError(file=where, field=wfield,
                                expected="finite weights >= 0 with a positive sum",
                                given=f"sum {weights.sum()}, min {weights.min()}")
        return values, weights / weights.sum()

    def sample(self, n, rng, *, base_dir=None):
        values, probs = self.table(base_dir=base_dir)
        return self._finish(values[rng.choice(len(values), size=n, p=probs)])

    def nominal_mean(self, *, base_dir=None):
        values, probs = self.table(base_dir=base_dir)
        return float(values.mean() if probs is None else values @ probs)


LengthDist = Annotated[Fixed | Uniform | Normal | LogNormal | Quantiles | Empirical,
                       Field(discriminator="dist")]
"""One length distribution, chosen by its ``dist`` key."""


def resolve_path(path: str | Path, base_dir: Path | None) -> Path:
    """``path`` with ``~`` expanded, relative paths taken against ``base_dir`` (else the cwd)."""
    candidate = Path(path).expanduser()
    if not candidate.is_absolute() and base_dir is not None:
        candidate = Path(base_dir) / candidate
    return candidate


def _read_columns(path: Path, column: str, weight_column: str | None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    if not path.is_file():
        raise InfersimError(file=path, expected="an existing CSV file", given=str(path))
    wanted = [column] + ([weight_column] if weight_column else [])
    with open_text(path) as handle, reading_errors(path):
        try:
            frame = pd.read_csv(handle, dtype=str, keep_default_na=False, na_values=[""])
        except pd.errors.EmptyDataError:
            raise InfersimError("empty file", file=path, line=1,
                                expected="a CSV header row then values") from None
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise InfersimError(file=path, expected="a well-formed UTF-8 CSV file",
                                given=str(exc).strip().splitlines()[-1]) from None
    for name in wanted:
        if name not in frame.columns:
            raise InfersimError(f"no column {name}", file=path, line=1, field=name,
                                expected="a header naming it",
                                given=",".join(map(str, frame.columns)))
    if len(frame) == 0:
        raise InfersimError("no values", file=path, expected="at least one data row")
    out = []
    for name in wanted:
        numbers = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.nonzero(np.isnan(numbers))[0]
        if bad.size:
            given = frame[name].iloc[bad[0]]
            raise InfersimError(file=path, line=int(bad[0]) + 2, field=name,
                                expected="a number",
                                given="an empty field" if pd.isna(given) else given)
        out.append(numbers)
    return out[0], (out[1] if weight_column else None)
