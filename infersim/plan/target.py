"""What the planner plans for: the workload's length as the cost model sees it and how long each
planner simulation runs (the latency targets are :class:`infersim.slo.SLO`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from infersim.scenario.seeds import derive_seed, workload_rng
from infersim.workload import build_workload

# Arrivals every planner simulation should span before its verdict is read as sustainable, and
# the most requests one simulation may take to get there.
STEADY_STATE_S = 60.0
MAX_REQUESTS = 4000


@dataclass(frozen=True)
class RunLength:
    """How many requests a planner simulation at a given rate draws.

    A fixed count covers ever fewer seconds of arrivals as the rate rises — 200 requests are
    4 s at 50 req/s — and a queue that grows slowly passes the SLOs over a short burst at a rate
    the cluster could not hold for an hour. So each run takes at least ``requests`` (the
    scenario's or ``--requests``) and enough to span ``min_span_s`` of arrivals, at most
    ``max_requests`` (which bounds only the scaling, never the count asked for).
    """

    requests: int
    min_span_s: float = STEADY_STATE_S
    max_requests: int = MAX_REQUESTS

    def requests_at(self, rate: float) -> int:
        spanning = math.ceil(rate * self.min_span_s - 1e-9)
        return max(self.requests, min(self.max_requests, spanning))

    def capped(self, rate: float) -> bool:
        """Whether the cap keeps a run at ``rate`` short of the minimum span."""
        return self.requests_at(rate) < rate * self.min_span_s - 1e-9


@dataclass(frozen=True)
class LoadShape:
    """The workload as the cost model sees it: mean lengths of a draw of its requests, and its
    tail — the longest prompt and the longest request (prompt + output) of a large draw, which
    every instance's KV room must hold or the run rejects them."""

    mean_prompt: float
    mean_output: float
    requests: int
    max_prompt: float = 0.0
    max_length: float = 0.0

    @property
    def mean_context(self) -> float:
        """Average KV length a decoding sequence attends to over its life."""
        return self.mean_prompt + self.mean_output / 2.0

    @property
    def full_length(self) -> float:
        return self.mean_prompt + self.mean_output


# Requests drawn to find the workload's tail: a run of a few thousand requests with another seed
# must not meet a request longer than every instance can hold.
TAIL_DRAW = 20_000


def load_shape(base, requests: int | None = None) -> LoadShape:
    """Mean prompt and output lengths of the workload, drawn as a run would draw them, and the
    longest prompt and request of a :data:`TAIL_DRAW`-request draw (a trace: all of it)."""

    workload = build_workload(base.workload, workload_rng(base.seed), base_dir=base.base_dir)
    table = getattr(workload, "requests", workload)
    tail = table
    if base.workload.trace is None and base.workload.requests < TAIL_DRAW:
        more = base.workload.model_copy(update={"requests": TAIL_DRAW})
        drawn = build_workload(more, workload_rng(derive_seed(base.seed, ("planner tail",))),
                               base_dir=base.base_dir)
        tail = getattr(drawn, "requests", drawn)
    prompts = np.concatenate([table.prompt_tokens, tail.prompt_tokens])
    lengths = np.concatenate([table.prompt_tokens + table.output_tokens,
                              tail.prompt_tokens + tail.output_tokens])
    return LoadShape(mean_prompt=float(np.mean(table.prompt_tokens)),
                     mean_output=float(np.mean(table.output_tokens)),
                     requests=int(requests or len(table.prompt_tokens)),
                     max_prompt=float(np.max(prompts)), max_length=float(np.max(lengths)))
