"""What a simulated cluster is made of: pools of instances, the links between them, a router.

A *pool* is a named group of identical *instances*; an instance is one serving engine (one model
replica) running on a group of chips of one hardware profile with a tensor/pipeline layout, which
is its :class:`~infersim.cost.Deployment`. A pool's *role* says which phase it serves:

- ``prefill``: computes prompts (the first output token comes out at the end of prefill) and ships
  the KV cache to a decode instance;
- ``decode``: continuous batching of token generation over paged KV memory;
- ``mixed``: both on one instance, vLLM-style (chunked prefill, or prefill-first without chunks);
  the KV cache never leaves the instance.

A *link* carries KV caches from a prefill pool to a decode pool; all transfers in flight on one
link share its bandwidth fairly. An explicit link (``ClusterSpec.links``) is by default one
network path per pool pair, shared by every sending instance (a switch uplink, a shared tunnel);
marked ``per_sender_instance`` it is one path per sending instance, that instance's own egress
(its chips' scale-out NICs). Pools placed in one scale-up domain (``scaleup_domain``) may omit the
link: they talk over the hardware's scale-up fabric (NVLink through NVSwitch), where every chip
has its own ports, so each sending instance gets a link of its own (see
:meth:`ClusterSpec.link_between`). The *router* assigns each
arriving request to a prefill (or mixed) instance and each prefilled request to a decode instance.

These are frozen value objects, validated once here; the engine trusts them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from infersim.errors import InfersimError

ROLES: tuple[str, ...] = ("prefill", "decode", "mixed")
PREEMPTION_MODES: tuple[str, ...] = ("recompute", "swap")
KV_RESERVATIONS: tuple[str, ...] = ("on_demand", "full")
FIRST_TOKEN_FROM: tuple[str, ...] = ("decode", "prefill")

# PCIe 5.0 x16, one direction, per chip: what a GPU can push to host memory when it swaps KV out.
DEFAULT_HOST_BANDWIDTH = 64e9


def _positive_int(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InfersimError(field=field, expected="an integer >= 1", given=value)


def _positive_float(value: Any, field: str, *, allow_zero: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and (value >= 0 if allow_zero else value > 0) and value == value and value != float("inf"):
        return
    raise InfersimError(field=field, expected="a finite number >= 0" if allow_zero
                        else "a finite number > 0", given=value)


@dataclass(frozen=True)
class PoolSpec:
    """A named group of identical serving instances with one role."""

    name: str
    role: Literal["prefill", "decode", "mixed"]
    deployment: Any  # infersim.cost.Deployment
    instances: int
    max_batch_tokens: int  # token budget of one engine step (vLLM max_num_batched_tokens)
    max_batch_size: int  # sequences in one step (vLLM max_num_seqs)
    chunked_prefill: bool = True  # mixed pools: vLLM chunked prefill, else prefill-first
    block_size: int = 16  # tokens per KV page
    memory_fraction: float = 0.9  # share of chip memory the engine may use (weights + KV)
    preemption: Literal["recompute", "swap"] = "recompute"
    scaleup_domain: str | None = None  # pools sharing a domain name talk over scale-up links
    host_bandwidth: float = DEFAULT_HOST_BANDWIDTH  # B/s per chip to host memory (swap)
    # when a decode or mixed instance takes a request's KV memory: ``on_demand`` block by block
    # as it grows, preempting when it runs out (vLLM); ``full`` all of prompt + output up front,
    # admitting only what fits, so it never preempts (TensorRT-LLM's GUARANTEED_NO_EVICT)
    kv_reservation: Literal["on_demand", "full"] = "on_demand"
    # prefill pools: where the client gets a request's first token. ``decode``: the decode
    # instance streams every token, so the first reaches the client when that instance admits
    # the request (KV moved and a batch slot free: vLLM's disaggregation proxy, Dynamo, SGLang
    # and TensorRT-LLM disaggregated serving); ``prefill``: as the prefill step ends
    first_token_from: Literal["decode", "prefill"] = "decode"

    def __post_init__(self) -> None:
        where = f"pools.{self.name}"
        if not isinstance(self.name, str) or not self.name:
            raise InfersimError(field="pools.name", expected="a non-empty string", given=self.name)
        if self.role not in ROLES:
            raise InfersimError(field=f"{where}.role", expected=" | ".join(ROLES), given=self.role)
        _positive_int(self.instances, f"{where}.instances")
        _positive_int(self.max_batch_tokens, f"{where}.max_batch_tokens")
        _positive_int(self.max_batch_size, f"{where}.max_batch_size")
        _positive_int(self.block_size, f"{where}.block_size")
        if not (isinstance(self.memory_fraction, (int, float)) and 0 < self.memory_fraction <= 1):
            raise InfersimError(field=f"{where}.memory_fraction", expected="a number in (0, 1]",
                                given=self.memory_fraction)
        if self.preemption not in PREEMPTION_MODES:
            raise InfersimError(field=f"{where}.preemption",
                                expected=" | ".join(PREEMPTION_MODES), given=self.preemption)
        _positive_float(self.host_bandwidth, f"{where}.host_bandwidth")
        if self.kv_reservation not in KV_RESERVATIONS:
            raise InfersimError(field=f"{where}.kv_reservation",
                                expected=" | ".join(KV_RESERVATIONS), given=self.kv_reservation)
        if self.first_token_from not in FIRST_TOKEN_FROM:
            raise InfersimError(field=f"{where}.first_token_from",
                                expected=" | ".join(FIRST_TOKEN_FROM),
                                given=self.first_token_from)
        if self.role == "prefill" and self.kv_reservation != "on_demand":
            raise InfersimError(field=f"{where}.kv_reservation", expected="on_demand in a "
                                "prefill pool (it holds no decoding sequences)",
                                given=self.kv_reservation)
        if self.scaleup_domain is not None and not isinstance(self.scaleup_domain, str):
            raise InfersimError(field=f"{where}.scaleup_domain", expected="a string or null",
                                given=self.scaleup_domain)


@dataclass(frozen=True)
class LinkSpec:
    """A network path between two pools that KV caches cross, shared by all its transfers.

    ``per_sender_instance`` says how many such paths there are: ``False`` means one, shared by
    every instance of the sending pool, ``bandwidth`` being the whole path's; ``True`` means one
    per sending instance, its own egress, shared only by that instance's transfers, ``bandwidth``
    being each instance's. The scale-up fabric is always ``True``; an explicit link is ``False``
    unless the scenario says ``per: instance`` (scale-out NICs, which belong to each chip).
    """

    a: str
    b: str
    bandwidth: float  # B/s, one direction
    latency_s: float = 0.0
    per_sender_instance: bool = False

    def __post_init__(self) -> None:
        where = f"links.{self.a}-{self.b}"
        _positive_float(self.bandwidth, f"{where}.bandwidth")
        _positive_float(self.latency_s, f"{where}.latency_s", allow_zero=True)
        if not isinstance(self.per_sender_instance, bool):
            raise InfersimError(field=f"{where}.per_sender_instance", expected="true or false",
                                given=self.per_sender_instance)

    @property
    def name(self) -> str:
        return f"{self.a}-{self.b}"


@dataclass(frozen=True)
class RouterSpec:
    """Which routing policies place requests, and the admission limit."""

    policy: str = "least_outstanding_tokens"  # arrivals -> prefill or mixed instances
    decode_policy: str = "kv_aware"  # prefilled requests -> decode instances
    # a request finding this many requests waiting at its instance is rejected (0: all are)
    queue_limit: int | None = None
    prefix_cache_blocks: int = 4096  # prefix blocks each prefill/mixed instance keeps (LRU)

    def __post_init__(self) -> None:
        limit = self.queue_limit
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 0):
            raise InfersimError(field="router.queue_limit", expected="an integer >= 0 or null",
                                given=limit)
        _positive_int(self.prefix_cache_blocks, "router.prefix_cache_blocks")


@dataclass(frozen=True)
class ClusterSpec:
    """Pools, the links between them, and the router: everything the engine simulates."""

    pools: tuple[PoolSpec, ...]
    links: tuple[LinkSpec, ...] = ()
    router: RouterSpec = RouterSpec()
    layerwise_kv_overlap: bool = False  # KV streams out layer by layer while prefill runs

    def __post_init__(self) -> None:
        object.__setattr__(self, "pools", tuple(self.pools))
        object.__setattr__(self, "links", tuple(self.links))
        if not self.pools:
            raise InfersimError(field="pools", expected="at least one pool", given=[])
        names = [p.name for p in self.pools]
        for name in names:
            if names.count(name) > 1:
                raise InfersimError(field="pools", expected="unique pool names",
                                    given=f"{name!r} twice")
        roles = {p.role for p in self.pools}
        if "prefill" in roles and "decode" not in roles:
            raise InfersimError(field="pools", expected="a decode pool for the prefill pools",
                                given=sorted(roles))
        if "decode" in roles and "prefill" not in roles:
            raise InfersimError(field="pools", expected="a prefill pool for the decode pools",
                                given=sorted(roles))
        seen = set()
        for link in self.links:
            for end in (link.a, link.b):
                if end not in names:
                    raise InfersimError(field=f"links.{link.name}", expected=f"pool names "
                                        f"among {names}", given=end)
            key = frozenset((link.a, link.b))
            if key in seen:
                raise InfersimError(field=f"links.{link.name}",
                                    expected="one link per pool pair", given="a duplicate")
            seen.add(key)

    def pool(self, name: str) -> PoolSpec:
        for p in self.pools:
            if p.name == name:
                return p
        raise KeyError(name)

    def link_between(self, sender: PoolSpec, receiver: PoolSpec) -> LinkSpec:
        """The link KV takes from ``sender`` to ``receiver``: explicit, else the scale-up fabric.

        An explicit link (``links:`` in a scenario) is returned as given. With
        ``per_sender_instance=False`` it is one path for the whole pool pair: every transfer from
        every instance of ``sender`` to ``receiver`` shares its bandwidth fairly, as on one
        network path of that capacity. With ``per_sender_instance=True`` each instance of
        ``sender`` has its own copy of it towards ``receiver`` (its NICs), shared by that
        instance's transfers to ``receiver`` only; as over the fabric, the receiving instance's
        ingress is not a limit.

        Without one, two pools in the same scale-up domain talk over its switched fabric
        (NVSwitch in an NVL72 rack or an HGX node), where each chip has its own ports. The link
        returned then has ``per_sender_instance=True``: each sending instance gets its own
        egress of the sending chips' scale-up bandwidth (per chip, times the chips of one
        instance) and their scale-up latency, shared fairly by that instance's transfers to
        every pool it reaches over the fabric, and by no other instance's. What this leaves
        out: a receiving instance's ingress (scale-up bandwidth times its chips) is not a limit,
        so several senders bursting into one receiver, or one sender with more chips than its
        receiver, move KV faster than the receiver's ports could take it. Capping each transfer
        at its fair share at both ends would not be processor sharing (it strands bandwidth a
        max-min fair fabric would hand out), so no approximate cap is applied.
        """
        for link in self.links:
            if {link.a, link.b} == {sender.name, receiver.name}:
                return link
        if sender.scaleup_domain is not None and sender.scaleup_domain == receiver.scaleup_domain:
            hw = sender.deployment.hardware
            return LinkSpec(a=sender.name, b=receiver.name,
                            bandwidth=hw.scaleup_bandwidth * sender.deployment.chips,
                            latency_s=hw.scaleup_latency_s, per_sender_instance=True)
        raise InfersimError(field="links", expected=f"a link between pools {sender.name!r} and "
                            f"{receiver.name!r} (or a shared scaleup_domain)", given="none")
