"""KV paths from a cluster spec, built alone from stand-in front instances (no engine)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

from infersim.sim.clock import Clock
from infersim.sim.spec import ClusterSpec
from infersim.sim.topology import build_topology
from tests.strategies import pd_cluster


def senders(cluster: ClusterSpec, count: int) -> list[SimpleNamespace]:
    pool = cluster.pools[0]
    return [SimpleNamespace(pool=pool, name=f"{pool.name}.{i}", slot=i, local_index=i)
            for i in range(count)]


def test_an_explicit_link_is_one_path_for_every_sender():
    cluster = pd_cluster(prefill=3)
    front = senders(cluster, 3)
    top = build_topology(Clock(), cluster, front, [cluster.pools[1]], lambda *a: None)
    assert list(top.links) == [("prefill", "decode")]
    assert len({id(out["decode"]) for out in top.out_links}) == 1


def test_a_per_instance_link_gives_each_sender_its_own_named_path():
    base = pd_cluster(prefill=2)
    link = dataclasses.replace(base.links[0], per_sender_instance=True)
    cluster = dataclasses.replace(base, links=(link,))
    top = build_topology(Clock(), cluster, senders(cluster, 2), [cluster.pools[1]],
                         lambda *a: None)
    assert sorted(top.links) == [("prefill", 0, "decode"), ("prefill", 1, "decode")]
    assert [out["decode"].name for out in top.out_links] == ["prefill.0->decode",
                                                             "prefill.1->decode"]


def test_a_shared_scaleup_domain_gives_each_sender_one_egress_to_every_decode_pool():
    base = pd_cluster(prefill=2)
    prefill, decode = (dataclasses.replace(p, scaleup_domain="rack") for p in base.pools)
    decode2 = dataclasses.replace(decode, name="decode2")
    cluster = dataclasses.replace(base, pools=(prefill, decode, decode2), links=())
    top = build_topology(Clock(), cluster, senders(cluster, 2), [decode, decode2],
                         lambda *a: None)
    assert sorted(top.links) == [("prefill", 0), ("prefill", 1)]
    for out in top.out_links:
        assert out["decode"] is out["decode2"]
    assert top.out_links[1]["decode"].name == "prefill.1->decode+decode2"


def test_a_link_reports_to_the_callable_it_was_given():
    cluster = pd_cluster()
    ready = []
    env = Clock()
    top = build_topology(env, cluster, senders(cluster, 1), [cluster.pools[1]],
                         lambda rid, dest, at: ready.append((rid, dest, at)))
    top.out_links[0]["decode"].transfer(1e9, 7, "here")
    env.run()
    assert ready == [(7, "here", 1e9 / cluster.links[0].bandwidth)]
