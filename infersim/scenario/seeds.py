"""Seed derivation: the one place a run's random streams come from a seed.

A run's seed feeds one :class:`numpy.random.SeedSequence`; its first child draws the workload
(arrivals, lengths, classes), its second seeds the engine (routers, think times). A sweep gives
each of its runs a seed derived from the base seed, the run's sorted overrides and its replica,
``SeedSequence([base seed, sha256(sorted overrides), replica])``, so a run's seed depends only on
what it simulates, never on which worker ran it or what else was in the sweep. The simulation
(:func:`infersim.api.simulate`), the sweeps and the planner all call these functions, so the
planner's sizing draws exactly the workload a run of the same scenario and seed draws.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np

_U64 = 0xFFFFFFFFFFFFFFFF


def run_streams(seed: int) -> tuple[np.random.Generator, int]:
    """(the workload's generator, the engine's seed) of a run with ``seed``."""
    workload_seq, engine_seq = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(workload_seq), int(engine_seq.generate_state(1, np.uint64)[0])


def workload_rng(seed: int) -> np.random.Generator:
    """The generator a run with ``seed`` draws its workload from (the first of
    :func:`run_streams`)."""
    return run_streams(seed)[0]


def derive_seed(base_seed: int, overrides: Iterable[str], replica: int = 0) -> int:
    """The seed of one sweep run: a function of the base seed, the sorted overrides and the
    replica. Returns a non-negative 63-bit integer (fits numpy, pandas int64 and JSON without
    loss)."""
    key = "\n".join(sorted(overrides)).encode()
    digest = hashlib.sha256(key).digest()
    words = [int.from_bytes(digest[i : i + 4], "little") for i in range(0, len(digest), 4)]
    sequence = np.random.SeedSequence([int(base_seed) & _U64, *words, int(replica)])
    return int(sequence.generate_state(1, np.uint64)[0] >> np.uint64(1))
