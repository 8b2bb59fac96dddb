"""The SimPy engine: a cluster of prefill, decode and mixed pools joined by KV links.

``simulate_cluster(cluster, workload, seed=...)`` runs a workload through a :class:`ClusterSpec`
and returns a :class:`SimResult` (one row per request, per-instance time series, links, pools,
exact token times and inter-token gaps).
"""

from infersim.sim.engine import simulate_cluster
from infersim.sim.result import SimResult, weighted_percentile
from infersim.sim.router import POLICIES
from infersim.sim.spec import ClusterSpec, LinkSpec, PoolSpec, RouterSpec

__all__ = ["POLICIES", "ClusterSpec", "LinkSpec", "PoolSpec", "RouterSpec", "SimResult",
           "simulate_cluster", "weighted_percentile"]
