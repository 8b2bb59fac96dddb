"""The bounds every number a user writes must lie within.

A scenario, a workload or a trace is checked at the edge: NaN and infinities are refused
everywhere (``allow_inf_nan=False`` in every schema), and each count, rate, size and duration has
an upper bound well beyond any real deployment but below where the simulator would exhaust
memory, overflow an integer or wait for ever. Lower bounds keep divisions finite (a rate of
``1e-320`` requests/s has gaps of ``inf`` seconds). An error names the bound::

    scenario.yaml: workload.requests: expected an integer <= 10000000, got 1000000000

=========================  ==================  ===============================================
bound                      value               applies to
=========================  ==================  ===============================================
``MAX_REQUESTS``           10,000,000          ``workload.requests``, ``trace.max_requests``,
                                               rows read from a trace
``MAX_INSTANCES``          10,000              ``pools.*.instances`` (each instance holds
                                               state: 100,000 cost a gigabyte before a request)
``MAX_PARALLEL``           1,024               ``tp``, ``pp``
``MAX_BATCH_TOKENS``       16,777,216          ``max_batch_tokens``
``MAX_BATCH_SIZE``         1,048,576           ``max_batch_size``
``MAX_BLOCK_SIZE``         65,536              ``block_size`` (tokens per KV block)
``MAX_TOKENS``             100,000,000         any length: ``value``, ``mean``, ``max``, ...,
                                               token counts in traces
``MIN_RATE``/``MAX_RATE``  1e-6 .. 1e7 /s      arrival rates (a step's rate may also be 0)
``MAX_SECONDS``            1e9 s (31 years)    durations: latency, think time, periods,
                                               ``time_limit``, trace windows
``MAX_MS``                 1e9 ms              SLO bounds
``MIN_BANDWIDTH``/...MAX   1 B/s .. 1e16 B/s   link and host bandwidths
``MAX_CONCURRENCY``        1,000,000           closed-loop users
``MAX_SEED``               2**63 - 1           ``seed`` (fits int64 and JSON)
``MAX_COUNT``              100,000,000         other counts (queue limits, prefix-cache blocks)
=========================  ==================  ===============================================
"""

from __future__ import annotations

MAX_REQUESTS = 10_000_000
MAX_INSTANCES = 10_000
MAX_PARALLEL = 1024
MAX_BATCH_TOKENS = 2**24
MAX_BATCH_SIZE = 2**20
MAX_BLOCK_SIZE = 65_536
MAX_TOKENS = 100_000_000
MIN_RATE = 1e-6
MAX_RATE = 1e7
MAX_SECONDS = 1e9
MAX_MS = 1e9
MIN_BANDWIDTH = 1.0
MAX_BANDWIDTH = 1e16
MAX_CONCURRENCY = 1_000_000
MAX_SEED = 2**63 - 1
MAX_COUNT = 100_000_000
MAX_SPEEDUP = 1e6
