"""The epoch engine against the step-by-step reference (tests/sim/oracle.py), token by token.

Random small workloads on one decode instance (behind one prefill instance and a link) and on one
mixed instance, with KV memory small enough that requests wait, preempt (recompute and swap) or
wait for reservations (full), arrivals landing in the middle of epochs, chunked prefill and
prefill-first. Every token instant of every request must agree to float rounding, and so must
each request's decode start, prefill start, preemption count and rejection.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from infersim.sim import ClusterSpec, RouterSpec, simulate_cluster
from tests.sim.oracle import Instance
from tests.strategies import llama8b_h100, memory_fraction_for, pd_cluster, table

REL = 1e-9  # the engine sums steps in closed form, the reference one by one
# examples per test; raise it for a deeper search (INFERSIM_ORACLE_EXAMPLES=5000)
EXAMPLES = int(os.environ.get("INFERSIM_ORACLE_EXAMPLES", "150"))


@st.composite
def workloads(draw, *, max_requests: int = 14, max_prompt: int = 700, max_output: int = 150):
    n = draw(st.integers(1, max_requests))
    # arrivals in bursts, within a decode step (~7 ms) and across several
    gaps = draw(st.lists(st.one_of(st.sampled_from([0.0, 0.0]), st.floats(1e-4, 0.08)),
                         min_size=n, max_size=n))
    prompts = draw(st.lists(st.integers(1, max_prompt), min_size=n, max_size=n))
    outputs = draw(st.lists(st.integers(1, max_output), min_size=n, max_size=n))
    return table(np.cumsum(gaps), prompts, outputs)


def assert_agrees(result, ref, rids) -> None:
    req = result.requests
    event(f"preempted: {sum(ref.preemptions.values()) > 0}")
    for rid in rids:
        assert result.token_times(rid) == pytest.approx(ref.tokens[rid], rel=REL, abs=1e-12), rid
        assert req["preemptions"][rid] == ref.preemptions.get(rid, 0), rid
        if rid in ref.decode_start_at:
            assert req["decode_start_at"][rid] == pytest.approx(ref.decode_start_at[rid],
                                                                rel=REL), rid


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(work=workloads(), kv_tokens=st.integers(300, 3000), batch=st.integers(1, 12),
       block=st.sampled_from([1, 16, 64]), mode=st.sampled_from(["recompute", "swap", "full"]))
def test_decode_instance_matches_the_step_by_step_reference(work, kv_tokens, batch, block,
                                                            mode):
    base = pd_cluster(kv_tokens=kv_tokens, decode_batch_size=batch,
                      preemption="swap" if mode == "swap" else "recompute", bandwidth=20e9)
    decode = dataclasses.replace(base.pools[1], block_size=block,
                                 kv_reservation="full" if mode == "full" else "on_demand")
    cluster = dataclasses.replace(base, pools=(base.pools[0], decode))
    result = simulate_cluster(cluster, work, seed=0)
    req = result.requests
    assert req["completed"].all() or req["rejected"].any()
    served = [rid for rid in range(len(req)) if req["completed"][rid]
              and req["output_tokens"][rid] > 1]
    arrivals = [(float(req["kv_transfer_end_at"][rid]), rid) for rid in served]
    ref = Instance(decode, work.prompt_tokens, work.output_tokens,
                   first_token_at={rid: float(req["first_token_at"][rid]) for rid in served})
    ref.run_decode(arrivals)
    assert_agrees(result, ref.out, served)
    busy = result.instances.set_index("instance")["busy_s"]["decode.0"]
    assert busy == pytest.approx(ref.out.busy_s, rel=REL)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(work=workloads(), kv_tokens=st.integers(300, 3000), batch=st.integers(1, 12),
       budget=st.integers(32, 1024), block=st.sampled_from([1, 16, 64]),
       chunked=st.booleans(), mode=st.sampled_from(["recompute", "swap", "full"]))
def test_mixed_instance_matches_the_step_by_step_reference(work, kv_tokens, batch, budget, block,
                                                           chunked, mode):
    from infersim.sim import PoolSpec

    dep = llama8b_h100()
    pool = PoolSpec("mixed", "mixed", dep, 1, max_batch_tokens=budget, max_batch_size=batch,
                    chunked_prefill=chunked, block_size=block,
                    memory_fraction=memory_fraction_for(dep, kv_tokens),
                    preemption="swap" if mode == "swap" else "recompute",
                    kv_reservation="full" if mode == "full" else "on_demand")
    result = simulate_cluster(ClusterSpec(pools=(pool,), router=RouterSpec("round_robin")),
                              work, seed=0)
    ref = Instance(pool, work.prompt_tokens, work.output_tokens)
    ref.run_mixed([(float(at), rid) for rid, at in enumerate(work.arrival_s)])
    req = result.requests
    assert set(np.flatnonzero(req["rejected"])) == ref.out.rejected
    served = [rid for rid in range(len(req)) if rid not in ref.out.rejected]
    assert req["completed"][served].all()
    assert_agrees(result, ref.out, served)
    for rid in served:
        assert req["prefill_start_at"][rid] == pytest.approx(ref.out.prefill_start_at[rid],
                                                             rel=REL), rid
    assert result.instances["busy_s"][0] == pytest.approx(ref.out.busy_s, rel=REL)
