"""How far the cost model holds against real measurements it was, and was not, fitted on.

``python -m infersim.validation`` regenerates ``docs/validation.md`` from
``data/reference/heldout.csv`` (held-out measurements) and the calibration figures of
``infersim.cost.calibration`` (published.md rows 1–14, which the chips' knobs were fitted on);
``--check`` only says whether the page is up to date. Every figure is predicted with the
closed-form estimators of :mod:`infersim.cost.throughput`, which the engine reproduces within a
few per cent on the same workloads (docs/engine-validation.md).
"""

from infersim.validation.predict import Reference, predict, relative_error
from infersim.validation.report import (
    Outcome,
    evaluate,
    load_references,
    render,
    summary_table,
)

__all__ = ["Outcome", "Reference", "evaluate", "load_references", "predict", "relative_error",
           "render", "summary_table"]
