"""Length distributions: the mean users write is the mean they get; caps and floors hold."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
from hypothesis import given, settings
from pydantic import TypeAdapter, ValidationError
from strategies import length_dists

from infersim.errors import InfersimError
from infersim.workload.lengths import Empirical, LengthDist, LogNormal, Quantiles

N = 200_000
parse = TypeAdapter(LengthDist).validate_python


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_lognormal_mean_is_the_token_mean_not_the_underlying_normal():
    dist = parse({"dist": "lognormal", "mean": 1024, "sigma": 0.6})
    x = dist.sample(N, rng())
    assert x.dtype == np.int64
    assert x.mean() == pytest.approx(1024, rel=0.01)
    assert np.log(x).std() == pytest.approx(0.6, rel=0.02)
    assert dist.nominal_mean() == pytest.approx(1024)
    assert dist.mu == pytest.approx(math.log(1024) - 0.18)


def test_lognormal_by_median():
    x = parse({"dist": "lognormal", "median": 500, "sigma": 1.0}).sample(N, rng(1))
    assert np.median(x) == pytest.approx(500, rel=0.02)


def test_cap_and_floor_clip_rather_than_redraw():
    dist = parse({"dist": "lognormal", "mean": 1000, "sigma": 1.5, "min": 16, "max": 2048})
    x = dist.sample(N, rng(2))
    assert x.min() == 16 and x.max() == 2048
    # The clipped mass piles up at the cap: P(X > 2048) of the uncapped lognormal.
    mu = math.log(1000) - 1.5**2 / 2
    tail = 0.5 * math.erfc((math.log(2048) - mu) / (1.5 * math.sqrt(2)))
    assert np.mean(x == 2048) == pytest.approx(tail, abs=0.005)


def test_fixed_uniform_normal():
    assert np.all(parse({"dist": "fixed", "value": 256}).sample(10, rng()) == 256)
    u = parse({"dist": "uniform", "low": 3, "high": 7}).sample(N, rng(3))
    assert set(np.unique(u)) == {3, 4, 5, 6, 7}  # both ends inclusive
    assert u.mean() == pytest.approx(5, abs=0.02)
    n = parse({"dist": "normal", "mean": 1000, "std": 100}).sample(N, rng(4))
    assert n.mean() == pytest.approx(1000, abs=1.5) and n.std() == pytest.approx(100, rel=0.02)
    # A normal reaching below zero is floored at min (1), never 0 or negative.
    assert parse({"dist": "normal", "mean": 5, "std": 50}).sample(N, rng(5)).min() == 1


def test_quantile_table_reproduces_its_points_and_mean():
    points = [[0, 10], [0.5, 100], [0.9, 1000], [1, 5000]]
    dist = Quantiles(points=points)
    x = dist.sample(N, rng(6))
    # The empirical CDF passes through the table's points (sampling sd ~0.001 in probability).
    for p, tokens in points[1:-1]:
        assert np.mean(x <= tokens) == pytest.approx(p, abs=0.004)
    assert x.min() >= 10 and x.max() <= 5000
    # Trapezoids: 0.5*55 + 0.4*550 + 0.1*3000 = 547.5
    assert dist.nominal_mean() == pytest.approx(547.5)
    assert x.mean() == pytest.approx(547.5, rel=0.01)


def test_empirical_values_with_weights():
    dist = Empirical(values=[10, 20, 30], weights=[1, 0, 3])
    x = dist.sample(N, rng(7))
    assert set(np.unique(x)) == {10, 30}
    assert np.mean(x == 30) == pytest.approx(0.75, abs=0.01)
    assert dist.nominal_mean() == pytest.approx(25)


def test_empirical_from_csv_columns_gzip_and_relative_path(tmp_path):
    text = "prompt,w\n100,1\n200,1\n400,2\n"
    (tmp_path / "lens.csv.gz").write_bytes(gzip.compress(text.encode(), mtime=0))
    dist = Empirical(path="lens.csv.gz", column="prompt", weight_column="w")
    x = dist.sample(N, rng(8), base_dir=tmp_path)
    assert x.mean() == pytest.approx(275, rel=0.01)
    assert dist.nominal_mean(base_dir=tmp_path) == pytest.approx(275)


@settings(max_examples=60, deadline=None)
@given(dist=length_dists())
def test_samples_are_whole_tokens_within_min_and_max(dist):
    x = dist.sample(500, rng(9))
    assert x.dtype == np.int64 and len(x) == 500
    assert x.min() >= dist.min >= 1
    if dist.max is not None:
        assert x.max() <= dist.max
    assert np.array_equal(x, dist.sample(500, rng(9)))


@pytest.mark.parametrize("data, message", [
    ({"dist": "lognormal", "mean": 1024, "median": 900, "sigma": 0.5},
     "expected exactly one of mean or median, got both"),
    ({"dist": "lognormal", "sigma": 0.5}, "expected exactly one of mean or median, got neither"),
    ({"dist": "uniform", "low": 10, "high": 5}, "expected high >= low (10), got high=5"),
    ({"dist": "fixed", "value": 10, "min": 20, "max": 5}, "expected max >= min (20), got max=5"),
    ({"dist": "quantiles", "points": [[0, 5], [0.5, 4], [1, 9]]},
     "expected non-decreasing tokens, got 4.0 after 5.0 at points[1]"),
    ({"dist": "empirical", "values": [1], "path": "x.csv", "column": "a"},
     "expected exactly one of values or path, got both"),
    ({"dist": "empirical", "path": "x.csv"},
     "expected column (the CSV column to sample) with path, got none"),
])
def test_inconsistent_parameters_are_rejected(data, message):
    with pytest.raises(ValidationError) as err:
        parse(data)
    assert message in str(err.value)


@pytest.mark.parametrize("text, column, message", [
    ("a,b\n1,2\n", "c", "{f}:1: c: no column c; expected a header naming it, got 'a,b'"),
    ("a\n1\nx\n", "a", "{f}:3: a: expected a number, got 'x'"),
    ("a\n1\n-4\n", "a", "{f}: a: expected token counts >= 0, got -4.0"),
    ("", "a", "{f}:1: empty file; expected a CSV header row then values"),
])
def test_empirical_csv_errors_name_file_line_and_column(tmp_path, text, column, message):
    path = tmp_path / "lens.csv"
    path.write_text(text)
    with pytest.raises(InfersimError) as err:
        Empirical(path=str(path), column=column).sample(3, rng())
    assert str(err.value) == message.format(f=path)


def test_lognormal_sigma_zero_is_a_point_mass():
    assert np.all(LogNormal(mean=300, sigma=0).sample(100, rng()) == 300)
