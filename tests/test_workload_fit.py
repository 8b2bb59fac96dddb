"""The fit tool: its output is a loadable mix that reproduces the trace it was fitted to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from infersim.workload import MixSpec, load_trace
from infersim.workload.fit import QUANTILE_PROBS, describe, lognormal_fit, main, quantile_points

FIXTURES = Path(__file__).parent / "fixtures" / "traces"


def test_quantile_points_span_min_to_max_and_never_decrease():
    values = np.random.default_rng(0).lognormal(6, 1, 5000)
    points = quantile_points(values)
    probs, tokens = np.array(points).T
    assert probs.tolist() == list(QUANTILE_PROBS)
    assert tokens[0] == np.rint(values.min()) and tokens[-1] == np.rint(values.max())
    assert np.all(np.diff(tokens) >= 0)


def test_lognormal_fit_recovers_its_parameters():
    values = np.random.default_rng(1).lognormal(np.log(800) - 0.5, 1.0, 200_000)
    mean, sigma = lognormal_fit(values)
    assert mean == pytest.approx(800, rel=0.01) and sigma == pytest.approx(1.0, rel=0.01)


def test_fitted_yaml_is_a_valid_mix_with_the_trace_statistics():
    text = describe(str(FIXTURES / "mooncake.jsonl"), "mooncake", "tiny")
    spec = MixSpec.model_validate(yaml.safe_load(text))
    trace = load_trace(FIXTURES / "mooncake.jsonl", "mooncake")
    sampled = spec.prompt_tokens.sample(100_000, np.random.default_rng(2))
    assert sampled.min() == trace.prompt_tokens.min()
    assert sampled.max() == trace.prompt_tokens.max()
    assert spec.prompt_tokens.nominal_mean() == pytest.approx(trace.prompt_tokens.mean(), rel=0.1)


def test_command_line_reports_bad_input_in_one_line(capsys):
    assert main([str(FIXTURES / "nope.csv"), "--format", "azure"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no such file" in err
