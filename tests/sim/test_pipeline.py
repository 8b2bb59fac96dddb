"""A decode instance with pp > 1 pipelines micro-batches: every sequence advances one token per
pipeline cycle, and max_batch_size holds per stage (one micro-batch in flight per stage)."""

from __future__ import annotations

import numpy as np
import pytest

from infersim.cost import Deployment, StepBatch, decode_round_coefficients, step_time
from infersim.cost.pipeline import cycle_s, stage_plan
from infersim.hardware import load_hardware
from infersim.model import load_model
from infersim.sim import ClusterSpec, LinkSpec, PoolSpec, RouterSpec, simulate_cluster
from tests.strategies import table

PROMPT, OUTPUT = 64, 40


def _run(pp: int, requests: int, max_batch_size: int):
    decode = Deployment(model=load_model("llama-3.1-70b"), hardware=load_hardware("wse3"), pp=pp)
    prefill = Deployment(model=load_model("llama-3.1-70b"), hardware=load_hardware("h100"), tp=4)
    cluster = ClusterSpec(
        pools=(PoolSpec("prefill", "prefill", prefill, 1, max_batch_tokens=8192,
                        max_batch_size=64),
               PoolSpec("decode", "decode", decode, 1, max_batch_tokens=8192,
                        max_batch_size=max_batch_size)),
        links=(LinkSpec("prefill", "decode", bandwidth=100e9, latency_s=0.0),),
        router=RouterSpec(policy="round_robin", decode_policy="round_robin"))
    work = table([0.0] * requests, [PROMPT] * requests, [OUTPUT] * requests)
    return decode, simulate_cluster(cluster, work, seed=1)


def test_max_batch_size_holds_per_stage():
    _, result = _run(pp=4, requests=8, max_batch_size=2)
    starts = np.sort(result.requests["decode_start_at"].to_numpy())
    firsts = np.sort(result.requests["last_token_at"].to_numpy())
    # all eight decode at once (2 per stage x 4 stages): every one starts before any finishes
    assert starts[-1] < firsts[0]


def test_token_gap_is_the_pipeline_cycle():
    dep, result = _run(pp=4, requests=8, max_batch_size=2)
    a, b = decode_round_coefficients(dep, 8)
    gaps = np.diff(result.token_times(0))
    # in the rounds where all 8 decode together, a round of 4 micro-batches of 2
    contexts = PROMPT + np.arange(1, OUTPUT)
    expected = a + b * 8 * contexts
    full = gaps[-10:]
    assert full == pytest.approx(expected[-10:], rel=1e-9)
    plan = stage_plan(dep, StepBatch(decode_kv_lens=(int(contexts[-1]),) * 2))
    assert full[-1] == pytest.approx(cycle_s(plan, 4), rel=1e-9)
    # faster than walking all 8 through the four wafers in one step
    serial = step_time(dep, StepBatch(decode_kv_lens=(int(contexts[-1]),) * 8)).time_s
    assert full[-1] < serial


def test_one_stage_is_unchanged():
    from infersim.cost import decode_step_coefficients

    d = Deployment(model=load_model("llama-3.1-8b"), hardware=load_hardware("wse3"))
    assert decode_round_coefficients(d, 5) == decode_step_coefficients(d, 5)
