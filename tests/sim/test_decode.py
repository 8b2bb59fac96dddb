"""A decode instance alone: built from a RunContext of a few lists and callables, no engine."""

from __future__ import annotations

import pytest

from infersim.sim.clock import Clock, call_later, run_until
from infersim.sim.costs import StepCosts
from infersim.sim.decode import DecodeInstance
from infersim.sim.ports import RunContext
from infersim.sim.records import RequestRecords, RunLog, Timeseries
from infersim.sim.router import InstanceLoads
from tests.strategies import pd_cluster


def decode_alone(prompt: list[int], output: list[int]):
    env = Clock()
    finished: list[tuple[int, float]] = []
    ctx = RunContext(prompt=prompt, output=output, prefix_hashes=None,
                     records=RequestRecords(len(prompt)), runs=RunLog(), timeseries=Timeseries(1.0),
                     prefilled=lambda *a: None, prefill_started=None,
                     finished=lambda rid, now: finished.append((rid, now)),
                     new_prefix_cache=lambda: None,
                     decode_admitted=lambda rid, now: None)
    pool = pd_cluster().pools[1]
    costs = StepCosts(pool.deployment, pool.memory_fraction, field="pool")
    loads = InstanceLoads([costs.kv_capacity_tokens // pool.block_size])
    inst = DecodeInstance(env, ctx, pool, costs, 0, 0, loads, 0)
    return env, inst, costs, finished


def test_one_request_decodes_its_tokens_back_to_back():
    env, inst, costs, finished = decode_alone([100], [4])
    inst.assign(0)
    assert inst.loads.outstanding_tokens[0] == 3
    call_later(env, 1.0, lambda _: inst.deliver(0))
    done = env.event()
    call_later(env, 10.0, lambda _: done.succeed())
    run_until(env, done)
    a, b = costs.decode_coefficients(1)
    # three steps attending 101, 102 and 103 tokens, from the delivery on
    assert finished == [(0, pytest.approx(1.0 + 3 * a + b * (101 + 102 + 103), rel=1e-12))]
    assert inst.loads.outstanding_tokens[0] == 0
    assert inst.ctx.records.decode_start_at[0] == 1.0
    assert list(inst.ctx.runs.rows) == [0, 0, 0, 3]


def test_a_request_delivered_mid_epoch_joins_at_the_next_boundary():
    env, inst, costs, finished = decode_alone([100, 50], [50, 2])
    for rid in (0, 1):
        inst.assign(rid)
    a1, b1 = costs.decode_coefficients(1)
    first_step = a1 + b1 * 101
    call_later(env, 0.0, lambda _: inst.deliver(0))
    call_later(env, first_step * 2.5, lambda _: inst.deliver(1))  # mid-way through step 3
    done = env.event()
    call_later(env, 10.0, lambda _: done.succeed())
    run_until(env, done)
    joined = inst.ctx.records.decode_start_at[1]
    steps = [a1 + b1 * (101 + j) for j in range(3)]
    assert joined == pytest.approx(sum(steps), rel=1e-12)
    assert [rid for rid, _ in finished] == [1, 0]
