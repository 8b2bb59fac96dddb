"""What one run produced: :class:`Result`, the value ``infersim.simulate`` returns.

A plain frozen record of tables and dicts; writing it to a folder is the report layer's job
(:func:`infersim.report.save.save_result`, what ``infersim run`` calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from infersim.economics import CostReport
from infersim.errors import InfersimError
from infersim.scenario import Scenario


@dataclass(frozen=True, eq=False)
class Result:
    """Everything one run produced: the summary, the per-request and per-instance tables, the
    exact inter-token gap multiset, the bill, and the engine's result for token times."""

    scenario: Scenario
    summary: dict
    requests: pd.DataFrame
    timeseries: pd.DataFrame
    links: pd.DataFrame
    token_gaps: pd.DataFrame  # gap_s, count: every inter-token gap of completed requests, exact
    cost: CostReport
    sim: Any = field(repr=False)  # the engine's SimResult (token_times(request_id), epochs, ...)
    # one line each: what the run did that a real deployment would not (infersim run prints them)
    warnings: tuple[str, ...] = ()

    def token_times(self, request_id: int) -> np.ndarray:
        """Instants (s) of every output token of one request, rebuilt exactly."""
        count = len(self.requests)
        if (isinstance(request_id, bool) or not isinstance(request_id, (int, np.integer))
                or not 0 <= request_id < count):  # -1 would silently mean the last one
            raise InfersimError(field="request_id", expected=f"an integer from 0 to {count - 1}",
                                given=request_id)
        return self.sim.token_times(int(request_id))
