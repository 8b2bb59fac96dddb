"""QA: ``infersim hardware show`` writes times the way a datasheet does."""

from __future__ import annotations

import pytest

from infersim.cli.catalog import _show_value


@pytest.mark.parametrize(("seconds", "shown"), [
    (2e-3, "2 ms"),          # H100 step overhead: not '2000 us'
    (2.5e-6, "2.5 us"),
    (300e-6, "300 us"),
    (35e-6, "35 us"),
    (0.0125, "12.5 ms"),
    (1.5, "1.5 s"),
])
def test_times_use_the_largest_unit_below_them(seconds, shown):
    assert _show_value("step_overhead_s", seconds) == shown
