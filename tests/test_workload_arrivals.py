"""Arrival processes: rates, burstiness, time-varying rates, and their input checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from infersim.errors import InfersimError
from infersim.workload import arrivals as arr

N = 200_000


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def cv(x: np.ndarray) -> float:
    return float(x.std() / x.mean())


def test_poisson_rate_and_unit_cv():
    t = arr.poisson_arrivals(N, 20.0, rng())
    gaps = np.diff(t)
    assert t[0] == 0.0
    assert np.all(gaps >= 0)
    # Mean gap 1/rate within 1 % (standard error of the mean gap is 1/sqrt(N) = 0.2 %).
    assert gaps.mean() == pytest.approx(1 / 20, rel=0.01)
    assert cv(gaps) == pytest.approx(1.0, abs=0.01)
    # Counts in 1 s windows are Poisson: variance equals mean (index of dispersion 1).
    counts = np.bincount(t.astype(np.int64))[:-1]
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0])
def test_gamma_burstiness_sets_the_gap_cv_as_vllm_does(burstiness):
    gaps = np.diff(arr.gamma_arrivals(N, 10.0, burstiness, rng(1)))
    assert gaps.mean() == pytest.approx(0.1, rel=0.02)
    # vLLM: shape = burstiness, so CV = 1/sqrt(burstiness).
    assert cv(gaps) == pytest.approx(1 / math.sqrt(burstiness), rel=0.03)


def test_bursty_gamma_clusters_requests():
    bursty = np.diff(arr.gamma_arrivals(N, 10.0, 0.25, rng(2)))
    smooth = np.diff(arr.gamma_arrivals(N, 10.0, 4.0, rng(2)))
    # Burstier arrivals: more very short gaps and more long lulls than Poisson would give.
    assert np.mean(bursty < 0.01) > np.mean(smooth < 0.01) + 0.2


def test_steps_rate_per_window():
    t = arr.step_arrivals(N, [[0, 10], [60, 30], [120, 0], [180, 50]], rng(3))
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0)
    in_window = lambda a, b: int(np.sum((t >= a) & (t < b)))  # noqa: E731
    # Poisson counts: sd = sqrt(mean); allow 4 sd.
    for (a, b), rate in {(0, 60): 10, (60, 120): 30, (180, 1000): 50}.items():
        expected = rate * (b - a)
        assert abs(in_window(a, b) - expected) < 4 * math.sqrt(expected), (a, b)
    assert in_window(120, 180) == 0  # the idle spell


def test_steps_idle_first_step_starts_at_its_end():
    t = arr.step_arrivals(100, [[0, 0], [5, 10]], rng(4))
    assert t[0] == 5.0
    assert np.all(t >= 5.0)


def test_diurnal_rate_follows_the_sinusoid():
    mean_rate, amplitude, period = 50.0, 0.6, 600.0
    t = arr.diurnal_arrivals(N, mean_rate, amplitude, period, rng(5))
    assert t[0] == 0.0 and np.all(np.diff(t) >= 0)
    edges = np.arange(0.0, t[-1] - period / 10, period / 10)
    counts, _ = np.histogram(t, bins=edges)
    expected = np.diff(arr.diurnal_cumulative(edges, mean_rate, amplitude, period))
    assert np.all(np.abs(counts - expected) < 4 * np.sqrt(expected) + 1)
    # The busiest tenth of the first period is around the peak (quarter period), the quietest
    # around the trough (three quarters).
    first = counts[:10]
    assert abs(int(np.argmax(first)) - 2) <= 1 and abs(int(np.argmin(first)) - 7) <= 1


def test_diurnal_inverts_its_cumulative_rate():
    t = arr.diurnal_arrivals(1000, 5.0, 0.9, 100.0, rng(6), phase_s=30.0)
    lam = arr.diurnal_cumulative(t, 5.0, 0.9, 100.0, 30.0)
    unit = np.concatenate([[0.0], np.cumsum(rng(6).standard_exponential(999))])
    np.testing.assert_allclose(lam, unit, rtol=1e-9, atol=1e-9)


def test_offline_all_at_zero():
    assert np.array_equal(arr.offline_arrivals(5), np.zeros(5))


@settings(max_examples=40, deadline=None)
@given(n=st.integers(0, 300), seed=st.integers(0, 2**32 - 1),
       process=st.sampled_from(["poisson", "gamma", "steps", "diurnal"]))
def test_every_process_is_sorted_starts_near_zero_and_is_deterministic(n, seed, process):
    def draw():
        g = rng(seed)
        if process == "poisson":
            return arr.poisson_arrivals(n, 3.0, g)
        if process == "gamma":
            return arr.gamma_arrivals(n, 3.0, 0.3, g)
        if process == "steps":
            return arr.step_arrivals(n, [[0, 1], [10, 5]], g)
        return arr.diurnal_arrivals(n, 3.0, 0.5, 60.0, g)

    t = draw()
    assert t.dtype == np.float64 and len(t) == n
    assert np.all(np.diff(t) >= 0)
    if n:
        assert t[0] == 0.0
    assert t.tobytes() == draw().tobytes()


@pytest.mark.parametrize("call, message", [
    (lambda: arr.poisson_arrivals(5, 0, rng()),
     "arrival.rate: expected a finite number > 0, got 0"),
    (lambda: arr.poisson_arrivals(5, float("inf"), rng()),
     "arrival.rate: expected a finite number > 0, got inf"),
    (lambda: arr.gamma_arrivals(5, 1.0, -1, rng()),
     "arrival.burstiness: expected a finite number > 0, got -1"),
    (lambda: arr.poisson_arrivals(-1, 1.0, rng()),
     "requests: expected a whole number >= 0, got -1"),
    (lambda: arr.step_arrivals(5, [], rng()),
     "arrival.steps: expected at least one [start_s, rate] pair, got []"),
    (lambda: arr.step_arrivals(5, [[1, 2]], rng()),
     "arrival.steps[0]: expected the first step to start at 0 s, got [1, 2]"),
    (lambda: arr.step_arrivals(5, [[0, 2], [0, 3]], rng()),
     "arrival.steps[1]: expected start times strictly increasing, got [0, 3]"),
    (lambda: arr.step_arrivals(5, [[0, 2], [5, -3]], rng()),
     "arrival.steps[1]: expected a rate >= 0, got [5, -3]"),
    (lambda: arr.step_arrivals(5, [[0, 2], [5, 0]], rng()),
     "arrival.steps[1]: expected a last rate > 0 (it holds for the rest of the run), got [5, 0]"),
    (lambda: arr.diurnal_arrivals(5, 1.0, 1.0, 10.0, rng()),
     "arrival.amplitude: expected a number in [0, 1), got 1.0"),
])
def test_bad_parameters_raise_one_line_errors(call, message):
    with pytest.raises(InfersimError) as err:
        call()
    assert str(err.value) == message
