"""The KV ledger: block counts, reservations and the committed fraction the router sees."""

from __future__ import annotations

import numpy as np

from infersim.sim.kv import KVLedger


def ledger(full: bool) -> tuple[KVLedger, np.ndarray]:
    fractions = np.zeros(3)
    return KVLedger(100, 16, full=full, fractions=fractions, slot=1), fractions


def test_blocks_round_up_to_whole_blocks():
    kv, _ = ledger(False)
    assert [kv.blocks(t) for t in (1, 16, 17, 32)] == [1, 1, 2, 2]


def test_a_reservation_covers_prompt_and_every_output_token():
    kv, _ = ledger(True)
    assert kv.reservation(prompt=10, output=6) == 1  # 16 tokens: one block
    assert kv.reservation(prompt=10, output=7) == 2


def test_on_demand_publishes_blocks_in_use_plus_pending():
    kv, fractions = ledger(False)
    kv.pending, kv.reserved = 5, 70
    kv.publish(used=20)
    assert fractions.tolist() == [0.0, 0.25, 0.0]


def test_full_reservation_publishes_reserved_plus_pending():
    kv, fractions = ledger(True)
    kv.pending, kv.reserved = 5, 70
    kv.publish(used=20)
    assert fractions[1] == 0.75
