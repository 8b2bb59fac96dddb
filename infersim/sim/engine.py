"""The cluster engine: requests flow arrival → router → prefill → KV link → decode → done.

:func:`simulate_cluster` builds one SimPy environment per run, with everything that holds run state
hanging off it (instances, links, router policies, the records), and runs it until every request
is accounted for or the time limit strikes. Requests are plain integers (row numbers of the
workload table); what happens to each is written into preallocated numpy columns, so a million
requests cost no per-request Python objects beyond a few ints.

Open-loop workloads arrive at the table's instants. A closed-loop workload is N users: each sends
its first request at time 0 and its next one when the previous finishes (or is rejected), after a
think time (fixed, or exponential with that mean, drawn from the run's generator); requests are
issued in table order.

Randomness: one ``numpy.random.SeedSequence(seed)`` per run, spawned into independent children
for the arrival-side router, the decode-side router and the users' think times.

Modelling choices worth knowing when reading results:

- a request with one output token is done when its prefill ends (no KV moves);
- in disaggregated serving the client gets the first token from the decode side by default
  (``PoolSpec.first_token_from``): when a decode instance admits the request, after its KV has
  moved and a batch slot and memory are free there, so TTFT includes the transfer and the wait
  for decode; the prefill instance holds the request's KV until that admission, and stops taking
  prompts while held KV leaves no room (back-pressure from a saturated decode pool);
- a request whose KV could never fit where it would have to live (its prompt on every prefill
  instance, or prompt + output on every decode or mixed instance; where KV is reserved in full,
  the reservation of prompt + output tokens, one more) is rejected on arrival; so is
  one that finds ``router.queue_limit`` requests already waiting at its instance;
- all transfers between two pools joined by an explicit link (``ClusterSpec.links``) share it,
  unless it is per sending instance (scale-out NICs): then each prefill instance has its own
  copy of it, shared by its transfers to that pool only; over a shared scale-up domain each
  prefill instance has its own egress link, shared by its transfers only (per-instance links are
  named ``prefill.3->decode`` in the link rows); a receiving instance's ingress limit is not
  modelled (see ``ClusterSpec.link_between``);
- decode admission is first come, first served, with no memory watermark: a request joins when
  its next step fits, and growth beyond memory is handled by preemption (see ``decode``); a pool
  with ``kv_reservation="full"`` instead admits a request only when its whole KV (prompt + output)
  is free besides the others' reservations, and never preempts;
- a preemption's recompute or swap stalls the whole instance for its duration.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence

import numpy as np

from infersim.errors import InfersimError
from infersim.sim.clock import NORMAL, URGENT, Clock, call_later, heappush, run_until
from infersim.sim.costs import StepCosts
from infersim.sim.decode import DecodeInstance
from infersim.sim.link import KVLink
from infersim.sim.mixed import MixedInstance
from infersim.sim.ports import BackInstance, FrontInstance, RunContext
from infersim.sim.prefill import PrefillInstance
from infersim.sim.prefix import PrefixCache
from infersim.sim.records import RequestRecords, RunLog, RunRecords, Timeseries
from infersim.sim.result import SimResult, build_result
from infersim.sim.router import InstanceLoads, make_policy
from infersim.sim.spec import ClusterSpec, PoolSpec
from infersim.sim.topology import build_topology
from infersim.workload.table import ClosedLoop, RequestTable

# samples per instance the time series aims for when no interval is given
_SAMPLES_PER_INSTANCE = 2000

_KINDS: dict[str, type] = {"prefill": PrefillInstance, "decode": DecodeInstance,
                           "mixed": MixedInstance}


class Engine:
    """One run's state: the environment, the instances, the links, the routers, the records."""

    def __init__(self, env: Clock, cluster: ClusterSpec, table: RequestTable,
                 seed: int, *, closed_loop: ClosedLoop | None, sample_interval_s: float,
                 progress: Callable[[float], None] | None) -> None:
        self.env = env
        self.cluster = cluster
        self.table = table
        self.seed = seed
        n = len(table)
        self.total = n
        self.prompt: list[int] = table.prompt_tokens.tolist()
        self.output: list[int] = table.output_tokens.tolist()
        self.records = RequestRecords(n)
        self.runs = RunLog()
        self.timeseries = Timeseries(sample_interval_s)
        self.closed_loop = closed_loop
        self.progress = progress
        self._progress_step = max(1, n // 100)
        self.accounted = 0  # completed + rejected
        self.last_event_at = 0.0
        self.all_done = env.event()
        router_rng, decode_rng, think_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
        self.think_rng = think_rng
        self._pending_issues: deque[int] | None = None  # see _next_for_user
        self.ctx = RunContext(
            prompt=self.prompt, output=self.output, prefix_hashes=table.prefix_hashes,
            records=self.records, runs=self.runs, timeseries=self.timeseries,
            prefilled=self.prefilled,
            prefill_started=self.prefill_started if cluster.layerwise_kv_overlap else None,
            finished=self.finish, new_prefix_cache=self.new_prefix_cache,
            decode_admitted=self.decode_admitted)

        # instances, grouped for the two routing decisions
        self.instances: list[FrontInstance | BackInstance] = []
        front_specs = [p for p in cluster.pools if p.role in ("prefill", "mixed")]
        back_specs = [p for p in cluster.pools if p.role == "decode"]
        self.costs = {p.name: StepCosts(p.deployment, p.memory_fraction,
                                        field=f"pools.{p.name}.deployment")
                      for p in cluster.pools}
        self.front_loads = InstanceLoads([self.costs[p.name].kv_capacity_tokens // p.block_size
                                          for p in front_specs for _ in range(p.instances)])
        self.back_loads = InstanceLoads([self.costs[p.name].kv_capacity_tokens // p.block_size
                                         for p in back_specs for _ in range(p.instances)])
        self.front: list[FrontInstance] = self._build(front_specs, self.front_loads)
        if self.table.prefix_hashes is not None:
            self.front_loads.prefix_caches = [inst.prefix_cache for inst in self.front]
        self.back: list[BackInstance] = self._build(back_specs, self.back_loads)

        router = cluster.router
        self.front_policy = make_policy(router.policy, self.front_loads, router_rng,
                                        field="router.policy", prefix_hashes=table.prefix_hashes)
        self.back_policy = (make_policy(router.decode_policy, self.back_loads, decode_rng,
                                        field="router.decode_policy") if self.back else None)
        self.queue_limit = router.queue_limit
        topology = build_topology(env, cluster, self.front, back_specs, self.kv_ready)
        self.links = topology.links
        self.out_links = topology.out_links
        # the most KV a request can need where it decodes: reject up front what fits nowhere
        self._back_cap_tokens = max((inst.kv_limit_tokens for inst in self.back), default=0)

    def new_prefix_cache(self) -> PrefixCache | None:
        """A prefix cache for one prefill or mixed instance, when prompts carry block ids."""
        if self.table.prefix_hashes is None:
            return None
        return PrefixCache(self.cluster.router.prefix_cache_blocks,
                           self.table.prefix_block_tokens)

    def _build(self, specs: list[PoolSpec], loads: InstanceLoads) -> list:
        group: list = []
        for pool in specs:
            for local in range(pool.instances):
                inst = _KINDS[pool.role](self.env, self.ctx, pool, self.costs[pool.name],
                                         len(self.instances), local, loads, len(group))
                self.instances.append(inst)
                group.append(inst)
        return group

    # -- arrivals -----------------------------------------------------------------------------

    def start_arrivals(self) -> None:
        """Open loop: requests arrive at the table's instants, one callback per instant."""
        self._arrival_at = self.table.arrival_s.tolist()
        self._next_arrival = 0
        call_later(self.env, 0.0, self._arrivals, priority=URGENT)

    def _arrivals(self, _value: object) -> None:
        env, at_list, rid, n = self.env, self._arrival_at, self._next_arrival, self.total
        now = env.now
        while rid < n:
            at = at_list[rid]
            if at > now:
                self._next_arrival = rid
                # call_later(env, at - now, self._arrivals), written out: once per request
                heappush(env.queue, (now + (at - now), NORMAL, next(env.sequence),
                                     self._arrivals, None))
                return
            self.arrive(rid)
            rid += 1
        self._next_arrival = rid

    def start_users(self) -> None:
        assert self.closed_loop is not None
        users = min(self.closed_loop.users, self.total)
        self._next_issue = users
        for rid in range(users):
            self.arrive(rid)

    def _next_for_user(self, loop: ClosedLoop) -> None:
        if self._next_issue >= self.total:
            return
        if loop.think_time_s <= 0:
            think = 0.0
        elif loop.think_dist == "exponential":
            think = float(self.think_rng.exponential(loop.think_time_s))
        else:
            think = loop.think_time_s
        nxt = self._next_issue  # the user whose request ended sends the next one
        self._next_issue += 1
        if think != 0.0:
            call_later(self.env, think, self._issue, nxt)
        elif self._pending_issues is not None:
            # An arrival further up this call stack was rejected at once and its user asks
            # again at once: queue the request instead of recursing (hundreds of rejections in
            # a row would exhaust Python's stack). It arrives, at the same instant and in the
            # same order, as soon as the arrival in hand returns.
            self._pending_issues.append(nxt)
        else:
            pending: deque[int] = deque()
            self._pending_issues = pending
            try:
                self.arrive(nxt)
                while pending:
                    self.arrive(pending.popleft())
            finally:
                self._pending_issues = None

    def _issue(self, rid: int) -> None:
        self.arrive(rid)

    def arrive(self, rid: int) -> None:
        records, prompt, output = self.records, self.prompt, self.output
        records.arrival_at[rid] = self.env.now
        decode_tokens = prompt[rid] + output[rid] - 1
        front: FrontInstance | None = self.front[self.front_policy.choose(rid)]
        assert front is not None
        if (decode_tokens if front.role == "mixed" else prompt[rid]) > front.kv_limit_tokens:
            front = self._roomiest(self.front, prompt[rid], output[rid])
        if front is None or (self.back and output[rid] > 1
                             and decode_tokens > self._back_cap_tokens):
            self.reject(rid)  # its KV cannot fit on any instance that would have to hold it
            return
        if self.queue_limit is not None and front.queue_length >= self.queue_limit:
            self.reject(rid)
            return
        front.enqueue(rid)

    @staticmethod
    def _roomiest(group: Sequence[FrontInstance | BackInstance], prompt: int, output: int):
        """The instance of ``group`` with the most KV room among those that can hold the
        request's KV (a prefill instance its prompt, the others prompt and output), or None."""
        fits = [inst for inst in group
                if (prompt if inst.role == "prefill" else prompt + output - 1)
                <= inst.kv_limit_tokens]
        return max(fits, key=lambda inst: inst.kv_limit_tokens, default=None)

    # -- prefill -> link -> decode --------------------------------------------------------------

    def _choose_decode(self, rid: int) -> BackInstance:
        assert self.back_policy is not None
        inst = self.back[self.back_policy.choose(rid)]
        if self.prompt[rid] + self.output[rid] - 1 > inst.kv_limit_tokens:
            inst = self._roomiest(self.back, self.prompt[rid], self.output[rid])
        inst.assign(rid)
        return inst

    def prefill_started(self, inst: PrefillInstance, batch: list[int], start: float,
                        end: float) -> None:
        """Layer-wise overlap: the KV starts moving as the prefill starts."""
        for rid in batch:
            if self.output[rid] > 1:
                decode = self._choose_decode(rid)
                link = self.out_links[inst.slot][decode.pool.name]
                nbytes = inst.costs.kv_bytes(self.prompt[rid])
                last_layer = nbytes / inst.costs.num_layers / link.bandwidth
                self._send(rid, link, nbytes, decode, start, not_before_at=end + last_layer)

    def prefilled(self, inst: PrefillInstance, batch: list[int], now: float) -> None:
        records, output, prompt = self.records, self.output, self.prompt
        first_token_at, transfer_start_at = records.first_token_at, records.kv_transfer_start_at
        overlap = self.cluster.layerwise_kv_overlap
        kv_bytes, links = inst.costs.kv_bytes, self.out_links[inst.slot]
        from_prefill = inst.pool.first_token_from == "prefill"
        prefill_end_at = records.prefill_end_at
        for rid in batch:
            prefill_end_at[rid] = now
            if output[rid] == 1 or from_prefill:
                first_token_at[rid] = now
            if output[rid] == 1:
                records.last_token_at[rid] = now
                self.finish(rid, now)
            elif not overlap:
                decode = self._choose_decode(rid)
                transfer_start_at[rid] = now
                links[decode.pool.name].transfer(kv_bytes(prompt[rid]), rid, decode)

    def _send(self, rid: int, link: KVLink, nbytes: float, decode: BackInstance, now: float,
              *, not_before_at: float = 0.0) -> None:
        self.records.kv_transfer_start_at[rid] = now
        link.transfer(nbytes, rid, decode, not_before_at)

    def kv_ready(self, rid: int, decode: BackInstance, ready_at: float) -> None:
        """A link has moved ``rid``'s KV; it is usable at ``decode`` from ``ready_at`` on."""
        env = self.env
        now = env.now
        delay = ready_at - now
        if delay > 0:  # the link latency, or layer-wise overlap's last layer
            # call_later(env, delay, self._kv_usable, (rid, decode)), written out: per request
            heappush(env.queue, (now + delay, NORMAL, next(env.sequence), self._kv_usable,
                                 (rid, decode)))
        else:
            self.records.kv_transfer_end_at[rid] = now
            decode.deliver(rid)

    def _kv_usable(self, value: tuple[int, BackInstance]) -> None:
        rid, decode = value
        self.records.kv_transfer_end_at[rid] = self.env.now
        decode.deliver(rid)

    def decode_admitted(self, rid: int, now: float) -> None:
        """A decode instance admitted ``rid``: the prefill instance frees the KV it held, and a
        client streaming from the decode side gets its first token now."""
        records = self.records
        prefill = self.instances[int(records.prefill_instance[rid])]
        assert isinstance(prefill, PrefillInstance)
        prefill.release(rid)
        first_token_at = records.first_token_at
        first = first_token_at[rid]
        if first != first:  # NaN: not out yet (np.isnan costs a ufunc call per request)
            first_token_at[rid] = now

    # -- completion -----------------------------------------------------------------------------

    def finish(self, rid: int, now: float) -> None:
        records = self.records
        records.last_token_at[rid] = now
        records.completed[rid] = True
        self._account(rid, now)

    def reject(self, rid: int) -> None:
        self.records.rejected[rid] = True
        self._account(rid, self.env.now)

    def _account(self, rid: int, now: float) -> None:
        self.accounted = accounted = self.accounted + 1
        self.last_event_at = now
        if self.progress is not None and accounted % self._progress_step == 0:
            self.progress(accounted / self.total)
        if self.closed_loop is not None:
            self._next_for_user(self.closed_loop)
        if accounted == self.total and not self.all_done.triggered:
            self.all_done.succeed()

    def stop(self, stop_at: float) -> RunRecords:
        """The run stopped at ``stop_at``: close every instance and link, hand over the records."""
        for inst in self.instances:
            inst.finalize(stop_at)
        for link in self.links.values():
            link.finish(stop_at)
        return RunRecords(
            table=self.table, requests=self.records, runs=self.runs, timeseries=self.timeseries,
            instances=[inst.record() for inst in self.instances],
            links=[link.record() for link in self.links.values()],
            pools=self.cluster.pools, seed=self.seed)


def simulate_cluster(cluster: ClusterSpec, workload: RequestTable | ClosedLoop, *, seed: int,
                     time_limit_s: float | None = None,
                     progress: Callable[[float], None] | None = None,
                     sample_interval_s: float | None = None) -> SimResult:
    """Run ``workload`` through ``cluster``; every request ends completed, rejected or in flight.

    ``progress`` (optional) is called with the fraction of requests accounted for, every ~1 %.
    ``sample_interval_s`` is the least sim time between two time-series rows of one instance
    (default: the arrival span / 2000, at least 1 ms; 10 ms for closed loops).
    """
    if not isinstance(cluster, ClusterSpec):
        raise TypeError(f"cluster must be a ClusterSpec, got {type(cluster).__name__}")
    closed = workload if isinstance(workload, ClosedLoop) else None
    table = closed.requests if closed is not None else workload
    if not isinstance(table, RequestTable):
        raise TypeError(f"workload must be a RequestTable or ClosedLoop, got "
                        f"{type(workload).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InfersimError(field="seed", expected="an integer >= 0", given=seed)
    if time_limit_s is not None and not (time_limit_s > 0 and math.isfinite(time_limit_s)):
        raise InfersimError(field="time_limit_s", expected="a finite number > 0",
                            given=time_limit_s)
    if closed is not None:
        if closed.users < 1:
            raise InfersimError(field="workload.users", expected="an integer >= 1",
                                given=closed.users)
        if closed.think_dist not in ("fixed", "exponential"):
            raise InfersimError(field="workload.think_dist", expected="fixed | exponential",
                                given=closed.think_dist)
    if sample_interval_s is None:
        span = float(table.arrival_s[-1]) if closed is None and len(table) else 0.0
        sample_interval_s = max(1e-3, span / _SAMPLES_PER_INSTANCE) if closed is None else 0.01

    env = Clock()
    engine = Engine(env, cluster, table, seed, closed_loop=closed,
                    sample_interval_s=sample_interval_s, progress=progress)
    if len(table) == 0:
        engine.all_done.succeed()
    elif closed is None:
        engine.start_arrivals()
    else:
        engine.start_users()
    stop = engine.all_done
    if time_limit_s is not None:
        limit = env.timeout(time_limit_s)
        stop = env.any_of([engine.all_done, limit])
    run_until(env, stop)
    finished_all = engine.all_done.triggered
    stop_at = (engine.last_event_at if finished_all or time_limit_s is None
               else float(time_limit_s))
    return build_result(engine.stop(env.now), duration_s=stop_at)
