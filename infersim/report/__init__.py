"""Outputs of a run: ``summary.json``, parquet tables, PNG plots and rich tables.

:mod:`~infersim.report.outputs` writes files reproducibly, :mod:`~infersim.report.plots` draws
the pictures, :mod:`~infersim.report.tables` builds the terminal tables.
"""

from infersim.report.outputs import dumps_summary, json_ready, write_parquet, write_summary

__all__ = ["dumps_summary", "json_ready", "write_parquet", "write_summary"]
