"""The engine end to end: hand-computed timelines, then invariants over random small runs."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infersim.cost import (
    StepBatch,
    decode_step_coefficients,
    kv_cache_bytes,
    prefill_time,
    step_time,
)
from infersim.errors import InfersimError
from infersim.sim import ClusterSpec, LinkSpec, PoolSpec, RouterSpec, simulate_cluster
from infersim.sim.costs import StepCosts
from infersim.workload.table import ClosedLoop
from tests.strategies import (
    clusters,
    crowded_runs,
    llama8b_h100,
    mixed_cluster,
    pd_cluster,
    table,
    workloads,
)

DEP = llama8b_h100()


# -- hand-computable timelines -----------------------------------------------------------------


def test_one_request_on_an_idle_cluster():
    prompt, output, arrival = 1000, 5, 0.5
    bandwidth, latency = 50e9, 2e-5
    result = simulate_cluster(pd_cluster(bandwidth=bandwidth, latency_s=latency),
                              table([arrival], [prompt], [output]), seed=0)
    row = result.requests.iloc[0]
    prefill = prefill_time(DEP, [prompt])
    transfer = kv_cache_bytes(DEP, prompt) / bandwidth + latency
    # the client's first token comes from the idle decode instance as its KV lands
    ttft = prefill + transfer
    a, b = decode_step_coefficients(DEP, 1)
    steps = [a + b * (prompt + 1 + j) for j in range(output - 1)]
    # the closed form is the cost model's own step time for a one-sequence decode batch
    assert steps == pytest.approx([step_time(DEP, StepBatch(decode_kv_lens=(prompt + 1 + j,)))
                                   .time_s for j in range(output - 1)], rel=1e-12)
    assert row.ttft_s == pytest.approx(ttft, rel=1e-12)
    assert row.prefill_end_at == pytest.approx(arrival + prefill, rel=1e-12)
    assert row.transfer_s == pytest.approx(transfer, rel=1e-12)
    assert row.decode_start_at == pytest.approx(arrival + prefill + transfer, rel=1e-12)
    expected = arrival + ttft + np.cumsum(steps)
    np.testing.assert_allclose(result.token_times(0),
                               np.concatenate([[arrival + ttft], expected]), rtol=1e-12)
    assert row.tpot_s == pytest.approx(sum(steps) / (output - 1), rel=1e-12)
    assert row.completed and not row.rejected and row.preemptions == 0
    assert (row.prefill_pool, row.prefill_instance) == ("prefill", 0)
    assert (row.decode_pool, row.decode_instance) == ("decode", 0)


def test_one_output_token_ends_at_prefill():
    result = simulate_cluster(pd_cluster(), table([0.0], [300], [1]), seed=0)
    row = result.requests.iloc[0]
    assert row.completed and row.last_token_at == row.first_token_at
    assert np.isnan(row.kv_transfer_start_at) and np.isnan(row.tpot_s)
    assert result.token_gaps().size == 0


def test_two_requests_queue_behind_one_another_with_batch_size_one():
    result = simulate_cluster(pd_cluster(prefill_batch_size=1), table([0, 0], [800, 800],
                                                                      [2, 2]), seed=0)
    df = result.requests
    one = prefill_time(DEP, [800])
    assert df.prefill_start_at.tolist() == [0.0, pytest.approx(one, rel=1e-12)]
    assert df.prefill_end_at.tolist() == pytest.approx([one, 2 * one], rel=1e-12)
    assert df.queue_s.iloc[1] == pytest.approx(one, rel=1e-12)


def test_two_requests_share_one_batched_prefill():
    result = simulate_cluster(pd_cluster(prefill_batch_size=2), table([0, 0], [800, 600],
                                                                      [2, 2]), seed=0)
    first = result.requests.prefill_end_at
    assert first.tolist() == pytest.approx([prefill_time(DEP, [800, 600])] * 2, rel=1e-12)


def test_a_prefill_batch_fits_the_instances_kv_memory():
    small = simulate_cluster(pd_cluster(prefill_kv_tokens=1000),
                             table([0, 0], [600, 600], [2, 2]), seed=0).requests
    one = prefill_time(DEP, [600])
    # the first prompt's KV stays until the decode instance admits it: only then the second
    assert small.prefill_start_at[1] == small.decode_start_at[0]
    assert small.prefill_end_at.tolist() == pytest.approx(
        [one, small.decode_start_at[0] + one], rel=1e-12)
    roomy = simulate_cluster(pd_cluster(), table([0, 0], [600, 600], [2, 2]), seed=0).requests
    assert roomy.prefill_end_at.tolist() == pytest.approx([prefill_time(DEP, [600, 600])] * 2)


def test_half_the_link_bandwidth_doubles_the_transfer():
    fast = simulate_cluster(pd_cluster(bandwidth=40e9), table([0], [2000], [3]), seed=0)
    slow = simulate_cluster(pd_cluster(bandwidth=20e9), table([0], [2000], [3]), seed=0)
    assert slow.requests.transfer_s[0] == pytest.approx(2 * fast.requests.transfer_s[0],
                                                        rel=1e-12)


def test_concurrent_transfers_share_the_link():
    alone = simulate_cluster(pd_cluster(bandwidth=10e9), table([0], [2000], [3]), seed=0)
    pair = simulate_cluster(pd_cluster(bandwidth=10e9, prefill_batch_size=2),
                            table([0, 0], [2000, 2000], [3, 3]), seed=0)
    assert pair.requests.transfer_s.tolist() == pytest.approx(
        [2 * alone.requests.transfer_s[0]] * 2, rel=1e-12)
    assert pair.links.peak_concurrency[0] == 2
    assert pair.links.bytes_moved[0] == pytest.approx(2 * kv_cache_bytes(DEP, 2000))


def test_layerwise_overlap_exposes_only_the_last_layer():
    prompt, bandwidth = 4000, 200e9
    result = simulate_cluster(pd_cluster(bandwidth=bandwidth, layerwise=True),
                              table([0], [prompt], [3]), seed=0)
    row = result.requests.iloc[0]
    nbytes = kv_cache_bytes(DEP, prompt)
    assert row.kv_transfer_start_at == row.prefill_start_at == 0.0
    expected = max(nbytes / bandwidth,
                   row.prefill_end_at + nbytes / DEP.model.num_layers / bandwidth)
    assert row.kv_transfer_end_at == pytest.approx(expected, rel=1e-12)


def test_decode_batches_join_at_step_boundaries():
    """A request whose KV arrives mid-step joins at the next boundary; from then on every step
    emits a token for both, timed a + b * (sum of both KV lengths)."""
    result = simulate_cluster(pd_cluster(), table([0.0, 0.05], [500, 500], [400, 20]), seed=0)
    first, second = result.token_times(0), result.token_times(1)
    start = result.requests.decode_start_at[1]
    assert start >= result.requests.kv_transfer_end_at[1]
    assert start in set(first.tolist())  # a step boundary of the running request
    shared = first[(first > start) & (first <= second[-1])]
    np.testing.assert_allclose(shared, second[1:], rtol=0, atol=1e-12)
    a, b = decode_step_coefficients(DEP, 2)
    generated = int(np.searchsorted(first, start, side="right"))  # request 0's tokens so far
    lens = (500 + generated) + (500 + 1)
    assert second[1] - start == pytest.approx(a + b * lens, rel=1e-9)


def test_mixed_chunked_prefill_caps_each_step_at_the_budget():
    budget = 256
    result = simulate_cluster(mixed_cluster(max_batch_tokens=budget), table([0], [1000], [2]),
                              seed=0)
    chunks = [(256, 0), (256, 256), (256, 512), (232, 768)]
    expected = sum(step_time(DEP, StepBatch(prefill_new_tokens=(c,), prefill_context=(d,)))
                   .time_s for c, d in chunks)
    assert result.requests.ttft_s[0] == pytest.approx(expected, rel=1e-12)


def test_mixed_chunked_prefill_leaves_room_for_running_decodes():
    """While request 0 decodes, request 1's 300-token prompt gets budget - 1 = 127 tokens per
    step (127, 127, 46), each step timed as one mixed batch with request 0's decode."""
    budget = 128
    result = simulate_cluster(mixed_cluster(max_batch_tokens=budget),
                              table([0, 0.2], [50, 300], [200, 2]), seed=0)
    start = result.requests.prefill_start_at[1]
    ends = result.token_times(0)
    assert start in set(ends.tolist())  # the prompt starts at one of request 0's boundaries
    generated = int(np.searchsorted(ends, start, side="right"))
    expect = [step_time(DEP, StepBatch(prefill_new_tokens=(c,), prefill_context=(d,),
                                       decode_kv_lens=(50 + generated + i,))).time_s
              for i, (c, d) in enumerate([(127, 0), (127, 127), (46, 254)])]
    after = ends[generated:generated + 3]
    np.testing.assert_allclose(np.diff(np.concatenate([[start], after])), expect, rtol=1e-9)
    assert result.requests.first_token_at[1] == pytest.approx(after[2], rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(chunks=st.lists(st.tuples(st.integers(1, 4096), st.integers(0, 8192)), max_size=4),
       kv_lens=st.lists(st.integers(1, 32768), max_size=64))
def test_a_mixed_steps_time_needs_only_the_count_and_sum_of_the_decodes_kv(chunks, kv_lens):
    """Decode attention is linear in the KV attended, so the engine's O(1) form (count and sum
    of the running sequences' KV lengths) is the per-sequence step time bit for bit."""
    costs = StepCosts(DEP, 0.9, field="pools.mixed")
    new, context = [c for c, _ in chunks], [d for _, d in chunks]
    assert (costs.mixed_step_s(new, context, len(kv_lens), sum(kv_lens))
            == costs.step_s(new, context, kv_lens))


def test_mixed_pool_busy_time_splits_into_prefill_and_decode_work():
    """Prompt-only steps are prefill work, decode steps decode work; a step doing both is split
    by the time its chunk and its decodes would each take as a step of their own."""
    result = simulate_cluster(mixed_cluster(max_batch_tokens=256), table([0], [1000], [2]),
                              seed=0)
    pool = result.pools["mixed"]
    chunks = [(256, 0), (256, 256), (256, 512), (232, 768)]
    prefill = sum(step_time(DEP, StepBatch(prefill_new_tokens=(c,), prefill_context=(d,)))
                  .time_s for c, d in chunks)
    a, b = decode_step_coefficients(DEP, 1)
    assert pool["prefill_busy_s"] == pytest.approx(prefill, rel=1e-12)
    assert pool["busy_s"] - pool["prefill_busy_s"] == pytest.approx(a + b * 1001, rel=1e-9)

    budget = 128  # request 1's prompt shares three steps with request 0's decode
    result = simulate_cluster(mixed_cluster(max_batch_tokens=budget),
                              table([0, 0.2], [50, 300], [200, 2]), seed=0)
    generated = int(np.searchsorted(result.token_times(0), result.requests.prefill_start_at[1],
                                    side="right"))
    expect = step_time(DEP, StepBatch(prefill_new_tokens=(50,), prefill_context=(0,))).time_s
    for i, (c, d) in enumerate([(127, 0), (127, 127), (46, 254)]):
        kv = 50 + generated + i
        both = step_time(DEP, StepBatch(prefill_new_tokens=(c,), prefill_context=(d,),
                                        decode_kv_lens=(kv,))).time_s
        alone = step_time(DEP, StepBatch(prefill_new_tokens=(c,), prefill_context=(d,))).time_s
        decode = step_time(DEP, StepBatch(decode_kv_lens=(kv,))).time_s
        expect += both * alone / (alone + decode)
    assert result.pools["mixed"]["prefill_busy_s"] == pytest.approx(expect, rel=1e-9)
    assert 0 < result.pools["mixed"]["prefill_busy_s"] < result.pools["mixed"]["busy_s"]


def test_prefill_first_mixed_pool_stalls_decodes_during_prefill():
    result = simulate_cluster(mixed_cluster(chunked=False, max_batch_tokens=4096),
                              table([0, 0.2], [50, 3000], [200, 2]), seed=0)
    ends = result.token_times(0)
    start = result.requests.prefill_start_at[1]
    gap = ends[ends > start][0] - ends[ends <= start][-1]
    assert gap > prefill_time(DEP, [3000])  # the prefill step is inside one of its gaps


# -- memory, preemption, admission -------------------------------------------------------------


@pytest.mark.parametrize("mode", ["recompute", "swap"])
def test_preemption_keeps_kv_within_capacity(mode):
    n = 12
    result = simulate_cluster(pd_cluster(kv_tokens=1200, preemption=mode),
                              table(np.zeros(n), [300] * n, [200] * n), seed=0)
    df = result.requests
    assert df.completed.all()
    assert df.preemptions.sum() > 0
    inst = result.instances.set_index("instance").loc["decode.0"]
    assert inst.peak_kv_blocks <= inst.kv_blocks_capacity
    ts = result.timeseries
    assert (ts.kv_blocks_used <= ts.kv_blocks_capacity).all()
    for rid in range(n):  # preempted or not, every token comes out once, in order
        times = result.token_times(rid)
        assert len(times) == 200 and np.all(np.diff(times) > 0)


def test_a_request_too_big_for_any_decode_instance_is_rejected():
    result = simulate_cluster(pd_cluster(kv_tokens=500), table([0, 0], [100, 450], [10, 100]),
                              seed=0)
    assert result.requests.rejected.tolist() == [False, True]
    assert result.requests.completed.tolist() == [True, False]


def test_queue_limit_rejects_beyond_it():
    result = simulate_cluster(pd_cluster(queue_limit=2), table(np.zeros(5), [100] * 5, [2] * 5),
                              seed=0)
    assert result.requests.rejected.tolist() == [False, False, True, True, True]


def test_time_limit_reports_requests_in_flight():
    n = 20
    result = simulate_cluster(pd_cluster(), table(np.linspace(0, 1, n), [500] * n, [300] * n),
                              seed=0, time_limit_s=1.0)
    df = result.requests
    assert result.duration_s == 1.0
    assert (df.completed | df.rejected | df.in_flight).all()
    assert df.in_flight.sum() > 0
    assert df.loc[df.in_flight, "last_token_at"].isna().all()
    rid = int(np.flatnonzero(df.in_flight & df.decode_start_at.notna())[0])
    times = result.token_times(rid)
    assert 1 < len(times) < 300 and times[-1] <= 1.0


def test_closed_loop_users_send_when_their_last_request_ends():
    loop = ClosedLoop(users=2, requests=table(np.zeros(6), [200] * 6, [5] * 6))
    df = simulate_cluster(pd_cluster(), loop, seed=0).requests
    assert df.completed.all()
    assert df.arrival_at.iloc[:2].tolist() == [0.0, 0.0]
    # each later request starts exactly when some earlier one finished (no think time)
    finished = set(df.last_token_at.tolist())
    assert all(t in finished for t in df.arrival_at.iloc[2:])
    # never more than two requests in the system
    events = sorted([(t, 1) for t in df.arrival_at] + [(t, -1) for t in df.last_token_at])
    assert max(np.cumsum([d for _, d in events])) <= 2


@pytest.mark.parametrize("cause", ["queue_limit", "too_big"])
def test_closed_loop_rejected_at_once_many_times_in_a_row_does_not_recurse(cause):
    # Zero think time: a rejected user asks again at once. Thousands of rejections in a row at
    # one instant used to recurse arrive -> reject -> next user -> arrive until Python's stack
    # ran out; now each waits for the arrival in hand, in the same order.
    n = 5000
    prompt = [100] * n if cause == "queue_limit" else [10**7] * n  # too big: every one refused
    loop = ClosedLoop(users=50, requests=table(np.zeros(n), prompt, [3] * n))
    cluster = pd_cluster(queue_limit=1) if cause == "queue_limit" else pd_cluster()
    df = simulate_cluster(cluster, loop, seed=0).requests
    assert len(df) == n and (df.completed | df.rejected).all()
    assert df.rejected.sum() >= (n - 60 if cause == "queue_limit" else n)
    # the requests keep their order: request i arrives no later than request i + 1
    assert (np.diff(df.arrival_at.to_numpy()) >= 0).all()


def test_progress_is_reported_up_to_one():
    seen = []
    simulate_cluster(pd_cluster(), table(np.zeros(200), [100] * 200, [2] * 200), seed=0,
                     progress=seen.append)
    assert seen[-1] == 1.0 and len(seen) == 100 and seen == sorted(seen)


# -- validation --------------------------------------------------------------------------------


def test_unknown_policy_lists_the_known_ones():
    with pytest.raises(InfersimError, match=r"router.policy: expected one of join_shortest_queue, "
                       r"kv_aware, least_outstanding_tokens, power_of_two, prefix_affinity, "
                       r"round_robin, got 'fastest'"):
        simulate_cluster(pd_cluster(policy="fastest"), table([0], [10], [2]), seed=0)


def test_a_missing_link_is_an_error_and_a_shared_domain_is_not():
    pools = (PoolSpec("p", "prefill", DEP, 1, 4096, 8, scaleup_domain="nvl"),
             PoolSpec("d", "decode", DEP, 1, 4096, 8, scaleup_domain="nvl"))
    result = simulate_cluster(ClusterSpec(pools=pools), table([0], [1000], [2]), seed=0)
    expected = kv_cache_bytes(DEP, 1000) / DEP.hardware.scaleup_bandwidth \
        + DEP.hardware.scaleup_latency_s
    assert result.requests.transfer_s[0] == pytest.approx(expected, rel=1e-12)
    apart = (pools[0], PoolSpec("d", "decode", DEP, 1, 4096, 8))
    with pytest.raises(InfersimError, match="links: expected a link between pools 'p' and 'd'"):
        simulate_cluster(ClusterSpec(pools=apart), table([0], [10], [2]), seed=0)


def fabric_cluster(*, prefill: int = 2, decode: int = 2, prefill_batch_size: int = 64,
                   links: tuple = (), chips: int = 1) -> ClusterSpec:
    """Prefill and decode pools in one scale-up domain (an 8-GPU HGX node), round robin."""
    dep = dataclasses.replace(DEP, tp=chips)
    return ClusterSpec(
        pools=(PoolSpec("prefill", "prefill", dep, prefill, 8192, prefill_batch_size,
                        scaleup_domain="hgx"),
               PoolSpec("decode", "decode", DEP, decode, 8192, 64, scaleup_domain="hgx")),
        links=links, router=RouterSpec(policy="round_robin", decode_policy="round_robin"))


def fabric_alone_s(prompt: int, chips: int = 1) -> float:
    """One transfer alone on a sender's egress: its KV over the sending chips' NVLink."""
    hw, dep = DEP.hardware, dataclasses.replace(DEP, tp=chips)
    return kv_cache_bytes(dep, prompt) / (hw.scaleup_bandwidth * chips) + hw.scaleup_latency_s


def test_over_the_fabric_senders_do_not_share_bandwidth():
    """Two prefill instances in one NVSwitch domain each send at their own ports' full speed,
    concurrently: NVLink bandwidth is per GPU, not per pool pair."""
    result = simulate_cluster(fabric_cluster(), table([0, 0], [2000, 2000], [3, 3]), seed=0)
    df = result.requests
    assert df.prefill_instance.tolist() == [0, 1] and df.decode_instance.tolist() == [0, 1]
    assert df.kv_transfer_start_at[0] == df.kv_transfer_start_at[1]  # in flight together
    assert df.transfer_s.tolist() == pytest.approx([fabric_alone_s(2000)] * 2, rel=1e-12)
    links = result.links.set_index("link")
    assert links.index.tolist() == ["prefill.0->decode", "prefill.1->decode"]
    assert links.bandwidth.tolist() == [DEP.hardware.scaleup_bandwidth] * 2
    assert links.transfers.tolist() == [1, 1] and links.peak_concurrency.tolist() == [1, 1]


def test_over_the_fabric_one_senders_transfers_share_its_bandwidth():
    result = simulate_cluster(fabric_cluster(prefill=1, prefill_batch_size=2),
                              table([0, 0], [2000, 2000], [3, 3]), seed=0)
    df = result.requests
    assert df.decode_instance.tolist() == [0, 1]  # different receivers, the same egress
    hw = DEP.hardware
    shared = 2 * kv_cache_bytes(DEP, 2000) / hw.scaleup_bandwidth + hw.scaleup_latency_s
    assert df.transfer_s.tolist() == pytest.approx([shared] * 2, rel=1e-12)
    assert result.links.link.tolist() == ["prefill.0->decode"]
    assert result.links.peak_concurrency[0] == 2


def test_fabric_egress_scales_with_the_senders_chips():
    result = simulate_cluster(fabric_cluster(prefill=1, chips=2), table([0], [2000], [3]),
                              seed=0)
    assert result.requests.transfer_s[0] == pytest.approx(fabric_alone_s(2000, chips=2),
                                                          rel=1e-12)
    assert result.links.bandwidth[0] == 2 * DEP.hardware.scaleup_bandwidth


def test_one_egress_per_sender_serves_every_decode_pool_over_the_fabric():
    """A GPU's NVLink ports carry all its outbound KV, whichever pool it goes to."""
    pools = (PoolSpec("p", "prefill", DEP, 1, 8192, 2, scaleup_domain="hgx"),
             PoolSpec("d1", "decode", DEP, 1, 8192, 64, scaleup_domain="hgx"),
             PoolSpec("d2", "decode", DEP, 1, 8192, 64, scaleup_domain="hgx"))
    result = simulate_cluster(ClusterSpec(pools=pools, router=RouterSpec(
        policy="round_robin", decode_policy="round_robin")), table([0, 0], [2000, 2000], [3, 3]),
        seed=0)
    df = result.requests
    assert sorted(df.decode_pool) == ["d1", "d2"]
    hw = DEP.hardware
    shared = 2 * kv_cache_bytes(DEP, 2000) / hw.scaleup_bandwidth + hw.scaleup_latency_s
    assert df.transfer_s.tolist() == pytest.approx([shared] * 2, rel=1e-12)
    assert result.links.link.tolist() == ["p.0->d1+d2"]


def test_an_explicit_link_stays_one_path_for_the_pool_pair():
    """Pools in one domain joined by an explicit link use it, shared by every sender."""
    bandwidth = 20e9
    cluster = fabric_cluster(links=(LinkSpec("prefill", "decode", bandwidth),))
    spec = cluster.link_between(cluster.pools[0], cluster.pools[1])
    assert spec.bandwidth == bandwidth and not spec.per_sender_instance
    fabric = fabric_cluster()
    assert fabric.link_between(*fabric.pools).per_sender_instance
    result = simulate_cluster(cluster, table([0, 0], [2000, 2000], [3, 3]), seed=0)
    df = result.requests
    assert df.prefill_instance.tolist() == [0, 1]
    assert df.transfer_s.tolist() == pytest.approx(
        [2 * kv_cache_bytes(DEP, 2000) / bandwidth] * 2, rel=1e-12)
    assert result.links.link.tolist() == ["prefill-decode"]
    assert result.links.transfers[0] == 2 and result.links.peak_concurrency[0] == 2


def test_an_explicit_per_instance_link_gives_each_sender_its_own_path():
    """Scale-out NICs belong to each chip: with ``per_sender_instance`` the link's bandwidth is
    each prefill instance's egress, so two senders transfer at full speed concurrently."""
    bandwidth = 20e9
    link = LinkSpec("prefill", "decode", bandwidth, 1e-5, per_sender_instance=True)
    cluster = fabric_cluster(links=(link,))
    assert cluster.link_between(*cluster.pools) is link
    result = simulate_cluster(cluster, table([0, 0], [2000, 2000], [3, 3]), seed=0)
    df = result.requests
    assert df.prefill_instance.tolist() == [0, 1]
    assert df.kv_transfer_start_at[0] == df.kv_transfer_start_at[1]
    alone = kv_cache_bytes(DEP, 2000) / bandwidth + 1e-5
    assert df.transfer_s.tolist() == pytest.approx([alone] * 2, rel=1e-12)
    links = result.links.set_index("link")
    assert links.index.tolist() == ["prefill.0->decode", "prefill.1->decode"]
    assert links.bandwidth.tolist() == [bandwidth] * 2 and links.transfers.tolist() == [1, 1]


def test_an_explicit_per_instance_link_is_shared_by_its_senders_transfers():
    link = LinkSpec("prefill", "decode", 20e9, per_sender_instance=True)
    result = simulate_cluster(fabric_cluster(prefill=1, prefill_batch_size=2, links=(link,)),
                              table([0, 0], [2000, 2000], [3, 3]), seed=0)
    shared = 2 * kv_cache_bytes(DEP, 2000) / 20e9
    assert result.requests.transfer_s.tolist() == pytest.approx([shared] * 2, rel=1e-12)
    assert result.links.peak_concurrency.tolist() == [2]


def test_explicit_per_instance_links_to_two_pools_are_separate_paths():
    """Each explicit link states its own bandwidth, so a sender's copies of two links (to two
    decode pools) do not share, unlike its one fabric egress."""
    pools = (PoolSpec("p", "prefill", DEP, 1, 8192, 2),
             PoolSpec("d1", "decode", DEP, 1, 8192, 64),
             PoolSpec("d2", "decode", DEP, 1, 8192, 64))
    links = (LinkSpec("p", "d1", 20e9, per_sender_instance=True),
             LinkSpec("p", "d2", 10e9, per_sender_instance=True))
    result = simulate_cluster(ClusterSpec(pools=pools, links=links, router=RouterSpec(
        policy="round_robin", decode_policy="round_robin")), table([0, 0], [2000, 2000], [3, 3]),
        seed=0)
    df = result.requests.set_index("decode_pool")
    nbytes = kv_cache_bytes(DEP, 2000)
    assert df.transfer_s["d1"] == pytest.approx(nbytes / 20e9, rel=1e-12)
    assert df.transfer_s["d2"] == pytest.approx(nbytes / 10e9, rel=1e-12)
    assert sorted(result.links.link) == ["p.0->d1", "p.0->d2"]


def test_bad_specs_name_the_field():
    with pytest.raises(InfersimError, match=r"pools.p.instances: expected an integer >= 1, got 0"):
        PoolSpec("p", "prefill", DEP, 0, 4096, 8)
    with pytest.raises(InfersimError, match=r"pools.p.role: expected prefill \| decode \| mixed"):
        PoolSpec("p", "both", DEP, 1, 4096, 8)
    with pytest.raises(InfersimError, match=r"links.p-x: expected pool names"):
        ClusterSpec(pools=(PoolSpec("p", "mixed", DEP, 1, 4096, 8),),
                    links=(LinkSpec("p", "x", 1e9),))
    with pytest.raises(InfersimError, match=r"router\.queue_limit: expected an integer >= 0 or null, got -1"):
        RouterSpec(queue_limit=-1)
    with pytest.raises(InfersimError, match=r"^seed: expected an integer >= 0, got -1$"):
        simulate_cluster(pd_cluster(), table([0], [10], [2]), seed=-1)
    with pytest.raises(InfersimError, match="time_limit_s"):
        simulate_cluster(pd_cluster(), table([0], [10], [2]), seed=0, time_limit_s=0)


# -- determinism -------------------------------------------------------------------------------


def _parquet(df: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    df.to_parquet(buffer, index=False)
    return buffer.getvalue()


def test_same_scenario_and_seed_give_identical_results():
    rng = np.random.default_rng(7)
    n = 300
    work = table(np.cumsum(rng.exponential(0.01, n)), rng.integers(10, 2000, n),
                 rng.integers(1, 200, n))
    spec = pd_cluster(prefill=2, decode=3, kv_tokens=6000, policy="power_of_two",
                      decode_policy="kv_aware")
    one, two = simulate_cluster(spec, work, seed=3), simulate_cluster(spec, work, seed=3)
    pd.testing.assert_frame_equal(one.requests, two.requests)
    pd.testing.assert_frame_equal(one.timeseries, two.timeseries)
    assert _parquet(one.requests) == _parquet(two.requests)
    assert np.array_equal(one.token_gaps(), two.token_gaps())


# -- invariants over random small clusters and workloads ---------------------------------------


def check_invariants(result, workload) -> None:
    df = result.requests
    n = len(df)
    assert n == len(workload)
    # every request is accounted for, exactly once
    assert ((df.completed.astype(int) + df.rejected.astype(int) + df.in_flight.astype(int))
            == 1).all()
    done = df[df.completed]
    # timestamps in order along each request's path
    for earlier, later in [("arrival_at", "prefill_start_at"), ("prefill_start_at",
                                                                "first_token_at"),
                           ("prefill_start_at", "prefill_end_at"),
                           ("prefill_end_at", "first_token_at"),
                           ("first_token_at", "last_token_at"),
                           ("kv_transfer_start_at", "kv_transfer_end_at"),
                           ("prefill_end_at", "kv_transfer_end_at"),
                           ("first_token_at", "decode_start_at"),
                           ("kv_transfer_end_at", "decode_start_at"),
                           ("decode_start_at", "last_token_at")]:
        both = done[[earlier, later]].dropna()
        assert (both[earlier] <= both[later]).all(), (earlier, later)
    assert (done.e2e_s >= done.ttft_s).all()
    # KV memory never over capacity
    assert (result.instances.peak_kv_blocks <= result.instances.kv_blocks_capacity).all()
    # a mixed pool's prefill work is part of its busy time
    for pool in result.pools.values():
        if pool["role"] == "mixed":
            assert 0 <= pool["prefill_busy_s"] <= pool["busy_s"] * (1 + 1e-12)
        else:
            assert "prefill_busy_s" not in pool
    # token times: one per output token, strictly increasing, last one is last_token_at
    for rid in done.request_id.tolist()[:40]:
        times = result.token_times(rid)
        assert len(times) == df.output_tokens[rid]
        assert np.all(np.diff(times) > 0)
        assert times[-1] == pytest.approx(df.last_token_at[rid], rel=1e-12, abs=1e-12)
        assert times[0] == df.first_token_at[rid]
    # the compressed gap multiset is exactly the pooled raw gaps
    raw = np.sort(np.concatenate([np.diff(result.token_times(r))
                                  for r in done.request_id.tolist()] or [np.empty(0)]))
    np.testing.assert_allclose(result.token_gaps(), raw, rtol=1e-9, atol=1e-12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), workload=workloads())
def test_invariants_hold_on_random_runs(cluster, workload):
    result = simulate_cluster(cluster, workload, seed=1)
    check_invariants(result, workload)
    assert result.requests.completed.sum() + result.requests.rejected.sum() == len(workload)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cluster=clusters(), workload=workloads())
def test_invariants_hold_when_stopped_early(cluster, workload):
    result = simulate_cluster(cluster, workload, seed=1, time_limit_s=0.05)
    check_invariants(result, workload)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=crowded_runs())
def test_invariants_hold_under_memory_pressure(run):
    cluster, workload = run
    result = simulate_cluster(cluster, workload, seed=1)
    check_invariants(result, workload)
    assert result.requests.completed.all()


# -- whole-request KV reservation (TensorRT-LLM GUARANTEED_NO_EVICT) ---------------------------


def fully_reserving(cluster: ClusterSpec) -> ClusterSpec:
    """The same cluster with every decode and mixed pool reserving whole requests' KV."""
    pools = tuple(p if p.role == "prefill" else dataclasses.replace(p, kv_reservation="full")
                  for p in cluster.pools)
    return dataclasses.replace(cluster, pools=pools)


def peak_reserved_blocks(result, block_size: int = 16) -> dict[str, int]:
    """Per decode/mixed instance (by name), the most blocks its admitted requests' whole
    reservations (prompt + output tokens) added up to at any instant: a request holds its
    reservation from joining (decode) or its first prompt chunk (mixed) until its last token."""
    df = result.requests[result.requests.completed & result.requests.decode_pool.notna()]
    mixed = (df.prefill_pool.astype(str) == df.decode_pool.astype(str)).to_numpy()
    start = np.where(mixed, df.prefill_start_at, df.decode_start_at)
    end = df.last_token_at.to_numpy()
    where = (df.decode_pool.astype(str) + "."
             + df.decode_instance.astype(int).astype(str)).to_numpy()
    blocks = -(-(df.prompt_tokens + df.output_tokens).to_numpy() // block_size)
    peaks: dict[str, int] = {}
    for inst in np.unique(where):
        mine = where == inst
        peaks[str(inst)] = int(max(blocks[mine & (start <= t) & (end > t)].sum()
                                   for t in start[mine]))
    return peaks


@pytest.mark.parametrize("make", [
    lambda: pd_cluster(kv_tokens=1200),
    lambda: mixed_cluster(kv_tokens=1200, max_batch_tokens=512),
    lambda: mixed_cluster(kv_tokens=1200, max_batch_tokens=8192, chunked=False),
], ids=["decode", "mixed-chunked", "mixed-prefill-first"])
def test_full_reservation_never_preempts_and_admits_only_what_it_can_finish(make):
    """12 requests of 300 + 200 tokens on 1200 tokens of KV: on demand the batch outgrows memory
    and preempts; reserving whole requests (32 blocks each of 75) runs two at a time, never
    preempts, and every token still comes out once, in order."""
    n, workload = 12, table(np.zeros(12), [300] * 12, [200] * 12)
    on_demand = simulate_cluster(make(), workload, seed=0)
    assert on_demand.requests.preemptions.sum() > 0
    result = simulate_cluster(fully_reserving(make()), workload, seed=0)
    df = result.requests
    assert df.completed.all() and df.preemptions.sum() == 0
    capacity = int(result.instances.kv_blocks_capacity.iloc[-1])
    assert capacity == 75
    assert max(peak_reserved_blocks(result).values()) == 2 * 32  # two fit, a third does not
    assert (result.timeseries.kv_blocks_used <= result.timeseries.kv_blocks_capacity).all()
    for rid in range(n):
        times = result.token_times(rid)
        assert len(times) == 200 and np.all(np.diff(times) > 0)


def test_full_reservation_leaves_an_uncrowded_run_unchanged():
    """While every request's whole KV fits at once the two policies schedule identically."""
    workload = table([0, 0.01, 0.02], [300, 200, 100], [50, 60, 70])
    for cluster in (pd_cluster(), mixed_cluster()):
        a = simulate_cluster(cluster, workload, seed=0).requests
        b = simulate_cluster(fully_reserving(cluster), workload, seed=0).requests
        pd.testing.assert_frame_equal(a, b)


def test_kv_reservation_is_checked_and_belongs_to_decode_and_mixed_pools():
    with pytest.raises(InfersimError, match=r"pools.d.kv_reservation: expected on_demand \| full"):
        PoolSpec("d", "decode", DEP, 1, 4096, 8, kv_reservation="eager")
    with pytest.raises(InfersimError, match=r"pools.p.kv_reservation: expected on_demand in a "
                                            r"prefill pool"):
        PoolSpec("p", "prefill", DEP, 1, 4096, 8, kv_reservation="full")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(run=crowded_runs())
def test_full_reservation_invariants_under_memory_pressure(run):
    cluster, workload = run
    cluster = fully_reserving(cluster)
    result = simulate_cluster(cluster, workload, seed=1)
    check_invariants(result, workload)
    df = result.requests
    assert df.completed.all() and df.preemptions.sum() == 0
    capacity = result.instances.set_index("instance").kv_blocks_capacity
    for inst, peak in peak_reserved_blocks(result).items():
        assert peak <= capacity[inst]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workload=workloads())
def test_with_one_sender_a_per_instance_link_is_the_pool_link(workload):
    """A prefill pool of one instance has one egress either way: the runs are identical."""
    pool_link = pd_cluster(bandwidth=5e9)
    per_instance = dataclasses.replace(pool_link, links=(dataclasses.replace(
        pool_link.links[0], per_sender_instance=True),))
    a = simulate_cluster(pool_link, workload, seed=3)
    b = simulate_cluster(per_instance, workload, seed=3)
    pd.testing.assert_frame_equal(a.requests, b.requests)
    assert a.links.link.tolist() == ["prefill-decode"]
    assert b.links.link.tolist() == ["prefill.0->decode"]
    assert a.links.bytes_moved.tolist() == b.links.bytes_moved.tolist()
