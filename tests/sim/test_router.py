"""Routing policies: each picks what its name promises, from the loads instances report."""

from __future__ import annotations

import numpy as np
import pytest

from infersim.cost import StepBatch, prefill_time, step_time
from infersim.errors import InfersimError
from infersim.sim import simulate_cluster
from infersim.sim.prefix import PrefixCache
from infersim.sim.router import POLICIES, InstanceLoads, make_policy
from tests.strategies import llama8b_h100, pd_cluster, table


def loads(tokens=(0, 0, 0), requests=None, committed=None, capacity=None):
    group = InstanceLoads(list(capacity or [100] * len(tokens)))
    group.outstanding_tokens[:] = tokens
    group.outstanding_requests[:] = requests or 0
    group.kv_committed_fraction[:] = np.asarray(committed or 0) / group.kv_capacity_blocks
    return group


def policy(name, group, **kw):
    return make_policy(name, group, np.random.default_rng(0), field="router.policy", **kw)


def test_round_robin_cycles():
    p = policy("round_robin", loads())
    assert [p.choose(r) for r in range(7)] == [0, 1, 2, 0, 1, 2, 0]


def test_least_outstanding_tokens_and_shortest_queue_read_different_loads():
    group = loads(tokens=(500, 100, 300), requests=(1, 4, 2))
    assert policy("least_outstanding_tokens", group).choose(0) == 1
    assert policy("join_shortest_queue", group).choose(0) == 0


def test_kv_aware_compares_fractions_of_capacity():
    group = loads(committed=(50, 60, 90), capacity=(100, 200, 100))
    assert policy("kv_aware", group).choose(0) == 1  # 30 % committed
    group = loads(committed=(50, 60, 90))
    assert policy("kv_aware", group).choose(0) == 0


def test_power_of_two_never_picks_the_worse_of_its_pair():
    group = loads(tokens=(0, 10, 20, 30, 40))
    p = policy("power_of_two", group)
    picks = [p.choose(r) for r in range(300)]
    assert 4 not in picks  # the most loaded loses every pair it is drawn into
    assert set(picks) == {0, 1, 2, 3}
    again = policy("power_of_two", group)
    assert [again.choose(r) for r in range(300)] == picks  # seeded


def test_prefix_affinity_follows_the_longest_cached_prefix():
    hashes = (np.array([1, 2, 3]), np.array([7, 8]), np.array([1, 2, 9]), np.array([7, 5]),
              np.array([4]))
    group = loads(tokens=(0, 5, 9))
    group.prefix_caches = [PrefixCache(100, 512) for _ in range(3)]
    p = policy("prefix_affinity", group, prefix_hashes=hashes)
    assert p.choose(0) == 0  # nothing cached: least outstanding tokens
    group.prefix_caches[0].insert(hashes[0])
    group.prefix_caches[1].insert(hashes[1])
    group.outstanding_tokens[:] = (9, 9, 0)
    assert p.choose(2) == 0  # shares blocks 1, 2 with request 0
    assert p.choose(3) == 1  # shares block 7 with request 1
    assert p.choose(4) == 2  # nothing shared: least outstanding tokens


def test_prefix_cache_matches_chains_and_forgets_least_recently_used():
    cache = PrefixCache(3, block_tokens=512)
    cache.insert(np.array([1, 2, 3]))
    assert cache.match(np.array([1, 2, 9])) == 2
    assert cache.cached_tokens(np.array([1, 2, 3]), 1536) == 1535  # one token is computed
    cache.insert(np.array([1, 4]))  # touches 1, adds 4, evicts 2 (least recently used)
    assert len(cache) == 3 and cache.match(np.array([1, 2])) == 1


def test_prefix_hits_cut_the_prefill_to_the_uncached_part():
    dep = llama8b_h100()
    hashes = (np.array([11, 12, 13]), np.array([11, 12, 99]))
    work = table([0.0, 1.0], [1400, 1500], [2, 2], prefix_hashes=hashes)
    result = simulate_cluster(pd_cluster(prefill=2, policy="prefix_affinity"), work, seed=0)
    df = result.requests
    assert df.prefill_instance.tolist() == [0, 0]
    assert df.cached_prompt_tokens.tolist() == [0, 1024]
    assert df.prefill_s[0] == pytest.approx(prefill_time(dep, [1400]), rel=1e-12)
    assert df.prefill_s[1] == pytest.approx(step_time(dep, StepBatch(
        prefill_new_tokens=(1500 - 1024,), prefill_context=(1024,))).time_s, rel=1e-12)
    # round robin sends the second request to the other instance: no hit
    blind = simulate_cluster(pd_cluster(prefill=2), work, seed=0).requests
    assert blind.cached_prompt_tokens.tolist() == [0, 0]


def test_every_policy_runs_a_cluster():
    rng = np.random.default_rng(1)
    n = 60
    work = table(np.cumsum(rng.exponential(0.005, n)), rng.integers(10, 1500, n),
                 rng.integers(1, 50, n))
    for name in sorted(POLICIES):
        result = simulate_cluster(pd_cluster(prefill=3, decode=3, policy=name,
                                             decode_policy=name), work, seed=0)
        df = result.requests
        assert df.completed.all(), name
        assert df.prefill_instance.nunique() > 1 and df.decode_instance.nunique() > 1, name


def test_least_outstanding_tokens_balances_decode_work():
    """Every third request is long: round robin piles them all on one decode instance, least
    outstanding tokens spreads them."""
    n = 90
    work = table(np.zeros(n), [200] * n, [60 if i % 3 == 0 else 2 for i in range(n)])

    def spread(decode_policy):
        result = simulate_cluster(pd_cluster(decode=3, decode_policy=decode_policy,
                                             prefill_batch_size=1), work, seed=0)
        per_instance = result.requests.groupby("decode_instance").output_tokens.sum()
        return per_instance.max() - per_instance.min()

    assert spread("round_robin") == 30 * 60 - 30 * 2
    assert spread("least_outstanding_tokens") < 300


def test_unknown_decode_policy_is_named():
    with pytest.raises(InfersimError, match=r"^router\.decode_policy: expected one of "):
        simulate_cluster(pd_cluster(decode_policy="magic"), table([0], [1], [2]), seed=0)
