"""QA: a trace replay tells the user when it drops rows (failed requests with 0 tokens).

The rows are dropped on purpose (the simulator's requests carry at least one token each way),
but a user replaying BurstGPT must learn that the replay has fewer requests than the file: at
INFO level nothing is shown, since infersim configures no logging handler; a WARNING reaches
stderr through Python's last-resort handler.
"""

from __future__ import annotations

import logging

from infersim.workload.traces import load_burstgpt


def test_dropped_rows_are_reported_as_a_warning(tmp_path, caplog):
    path = tmp_path / "burst.csv"
    path.write_text("Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                    "0,ChatGPT,100,0,100,Conversation log\n"
                    "1.5,ChatGPT,100,20,120,Conversation log\n"
                    "2.0,ChatGPT,80,10,90,Conversation log\n")
    with caplog.at_level(logging.WARNING, logger="infersim"):
        trace = load_burstgpt(path)
    assert trace.dropped == 1 and len(trace.prompt_tokens) == 2
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert str(path) in message and "dropped 1 of 3 rows" in message


# ---- a length distribution whose centre lies outside its own [min, max] ---------------------------
# Draws are clipped into [min, max], so `{dist: lognormal, mean: 1024, max: 512}` silently yields a
# mean of ~490 tokens, and `{dist: fixed, value: 300, max: 256}` yields 256 for every request: the
# numbers the user wrote are not the numbers simulated. Such a spec contradicts itself.

import pytest  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from infersim.workload import WorkloadConfig  # noqa: E402
from infersim.workload.config import ClassConfig  # noqa: E402

FIXED = {"dist": "fixed", "value": 64}


@pytest.mark.parametrize(("spec", "expected"), [
    ({"dist": "lognormal", "mean": 1024, "sigma": 0.6, "max": 512},
     "prompt_tokens: expected mean within [min, max] = [1, 512] (draws are clipped to it), got 1024"),
    ({"dist": "lognormal", "median": 900, "sigma": 0.6, "max": 512},
     "prompt_tokens: expected median within [min, max] = [1, 512] (draws are clipped to it), got 900"),
    ({"dist": "fixed", "value": 300, "max": 256},
     "prompt_tokens: expected value within [min, max] = [1, 256] (draws are clipped to it), got 300"),
    ({"dist": "fixed", "value": 10, "min": 50},
     "prompt_tokens: expected value within [min, max] = [50, no cap] (draws are clipped to it), got 10"),
    ({"dist": "normal", "mean": 2000, "std": 100, "max": 1000},
     "prompt_tokens: expected mean within [min, max] = [1, 1000] (draws are clipped to it), got 2000"),
    ({"dist": "uniform", "low": 100, "high": 5000, "max": 4096},
     "prompt_tokens: expected high within [min, max] = [1, 4096] (draws are clipped to it), got 5000"),
])
def test_a_centre_outside_the_clip_range_is_rejected(spec, expected):
    with pytest.raises(ValidationError) as err:
        WorkloadConfig.model_validate({"arrival": {"process": "poisson", "rate": 1},
                                       "requests": 10, "prompt_tokens": spec,
                                       "output_tokens": FIXED})
    assert expected in str(err.value)


def test_a_class_of_a_mix_is_checked_too():
    with pytest.raises(ValidationError) as err:
        ClassConfig.model_validate({"name": "agent", "weight": 1.0, "prompt_tokens": FIXED,
                                    "output_tokens": {"dist": "lognormal", "mean": 4000,
                                                      "sigma": 1.0, "max": 2048}})
    assert "output_tokens: expected mean within [min, max] = [1, 2048]" in str(err.value)


@pytest.mark.parametrize("spec", [
    {"dist": "lognormal", "mean": 1024, "sigma": 0.6, "max": 8192},
    {"dist": "fixed", "value": 256, "max": 256},
    {"dist": "normal", "mean": 100, "std": 200},
    {"dist": "uniform", "low": 1, "high": 512, "max": 512},
])
def test_consistent_specs_still_load(spec):
    WorkloadConfig.model_validate({"arrival": {"process": "poisson", "rate": 1}, "requests": 10,
                                   "prompt_tokens": spec, "output_tokens": FIXED})


# ---- Mooncake: one hash id per 512-token prompt block ----------------------------------------
# A line whose hash_ids do not cover its prompt in 512-token blocks is corrupt (or from a tool
# with another block size): prefix-affinity routing would count cached tokens wrongly, silently.

from infersim.errors import InfersimError  # noqa: E402
from infersim.workload.traces import load_mooncake  # noqa: E402


@pytest.mark.parametrize(("line", "ids_given"), [
    ('{"timestamp": 5, "input_length": 1000, "output_length": 5, "hash_ids": [7]}', "[7]"),
    ('{"timestamp": 5, "input_length": 100, "output_length": 5, "hash_ids": [7, 8]}', "[7, 8]"),
])
def test_mooncake_hash_ids_must_cover_the_prompt_in_512_token_blocks(tmp_path, line, ids_given):
    path = tmp_path / "trace.jsonl"
    path.write_text('{"timestamp": 0, "input_length": 1024, "output_length": 5, '
                    '"hash_ids": [1, 2]}\n' + line + "\n")
    with pytest.raises(InfersimError) as err:
        load_mooncake(path)
    blocks = 2 if "1000" in line else 1
    assert str(err.value) == (
        f"{path}:2: hash_ids: expected ceil(input_length / 512) = {blocks} block ids, "
        f"got {ids_given}")
