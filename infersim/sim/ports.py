"""What an instance may see of the run it belongs to: a small context and two protocols.

An instance never imports or reaches into the engine. It is built with a :class:`RunContext`:
the request view (prompt and output lengths, prefix block ids), the record sinks it writes
(per-request columns, decode runs, time series), and the callables through which it reports
(``prefilled``, ``prefill_started``, ``finished``), plus a factory for its prefix cache. The
engine, in turn, sees instances only through :class:`FrontInstance` (prefill and mixed: where a
request goes on arrival) and :class:`BackInstance` (decode: where its KV goes after prefill).
Any component can therefore be built and tested alone with a few callables, as
:class:`~infersim.sim.link.KVLink` always could.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from infersim.sim.prefix import PrefixCache
from infersim.sim.records import InstanceRecord, RequestRecords, RunLog, Timeseries
from infersim.sim.spec import PoolSpec


@dataclass(slots=True)
class RunContext:
    """One run's request view, record sinks and report callables, shared by its instances."""

    prompt: Sequence[int]  # prompt tokens by request id
    output: Sequence[int]  # output tokens by request id
    prefix_hashes: tuple[np.ndarray, ...] | None  # prompt block ids by request id, or None
    records: RequestRecords
    runs: RunLog
    timeseries: Timeseries
    # (instance, batch of request ids, now): a prefill step ended, each has its first token
    prefilled: Callable[[Any, list[int], float], None]
    # (instance, batch, start, end): a prefill step started (layer-wise KV overlap only), or None
    prefill_started: Callable[[Any, list[int], float, float], None] | None
    # (request id, now): its last token is out
    finished: Callable[[int, float], None]
    # (request id, now): a decode instance admitted it (its KV moved and a batch slot was free)
    decode_admitted: Callable[[int, float], None]
    # a prefix cache for one prefill or mixed instance (None when prompts carry no block ids)
    new_prefix_cache: Callable[[], PrefixCache | None]


class InstancePort(Protocol):
    """What the engine reads of any instance."""

    role: str
    name: str
    pool: PoolSpec
    index: int  # global instance number
    slot: int  # row in its group's router loads
    local_index: int  # number within its pool
    kv_limit_tokens: int  # the most KV tokens one request may need here

    def finalize(self, stop_at: float) -> None: ...

    def record(self) -> InstanceRecord: ...


class FrontInstance(InstancePort, Protocol):
    """A prefill or mixed instance: takes requests on arrival."""

    prefix_cache: PrefixCache | None

    @property
    def queue_length(self) -> int: ...

    def enqueue(self, rid: int) -> None: ...


class BackInstance(InstancePort, Protocol):
    """A decode instance: takes a request routed to it after prefill, then its KV."""

    def assign(self, rid: int) -> None: ...

    def deliver(self, rid: int) -> None: ...
