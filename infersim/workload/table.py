"""The request table: what a workload hands to the engine.

A workload is columnar (one numpy array per field) so that a million requests cost a few tens of
megabytes and are generated or loaded with vectorised code. An open-loop workload is a
:class:`RequestTable` whose ``arrival_s`` fixes when each request arrives. A closed-loop workload
(:class:`ClosedLoop`) is N users who each send their next request when their previous one
finishes, after a think time; its table gives the lengths in the order requests are issued.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True, eq=False)
class RequestTable:
    """Requests as parallel arrays, sorted by arrival time."""

    arrival_s: np.ndarray  # float64, non-decreasing, >= 0
    prompt_tokens: np.ndarray  # int64 >= 1
    output_tokens: np.ndarray  # int64 >= 1
    class_index: np.ndarray = field(default=None)  # int16 into class_names; None -> all class 0
    class_names: tuple[str, ...] = ("default",)
    prefix_hashes: tuple[np.ndarray, ...] | None = None  # per request: prefix block ids
    prefix_block_tokens: int = 512
    # Per class, its own latency targets ({"ttft_ms": 500.0, ...}); () or an empty mapping:
    # the scenario-wide SLO applies to that class.
    class_slo: tuple[Mapping[str, float], ...] = ()

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        object.__setattr__(self, "arrival_s", np.asarray(self.arrival_s, dtype=np.float64))
        object.__setattr__(self, "prompt_tokens", np.asarray(self.prompt_tokens, dtype=np.int64))
        object.__setattr__(self, "output_tokens", np.asarray(self.output_tokens, dtype=np.int64))
        if self.class_index is None:
            object.__setattr__(self, "class_index", np.zeros(n, dtype=np.int16))
        else:
            object.__setattr__(self, "class_index", np.asarray(self.class_index, dtype=np.int16))
        for name in ("prompt_tokens", "output_tokens", "class_index"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"RequestTable.{name} has {len(getattr(self, name))} rows, "
                                 f"arrival_s has {n}")
        if self.prefix_hashes is not None and len(self.prefix_hashes) != n:
            raise ValueError("RequestTable.prefix_hashes must have one entry per request")
        if self.class_slo and len(self.class_slo) != len(self.class_names):
            raise ValueError("RequestTable.class_slo must have one entry per class name")

    def __len__(self) -> int:
        return len(self.arrival_s)


@dataclass(frozen=True)
class ClosedLoop:
    """N users, each issuing its next request when its last one finishes (after a think time)."""

    users: int
    requests: RequestTable  # lengths in issue order; its arrival_s is ignored
    think_time_s: float = 0.0  # mean think time between a finish and the user's next request
    think_dist: str = "fixed"  # "fixed" or "exponential"

    def __len__(self) -> int:
        return len(self.requests)


Workload = RequestTable | ClosedLoop
