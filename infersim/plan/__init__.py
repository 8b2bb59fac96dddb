"""Planning on top of single runs: sweeps, the capacity planner, and plans as regression tests.

* :mod:`~infersim.plan.sweep` — the cross product of scenario overrides, one seeded run each
  (seeds derived from what a run simulates), a resumable per-run store and one result table;
  :mod:`~infersim.plan.executors` runs them in this process, in local worker processes or on Ray,
  with identical results.
* :mod:`~infersim.plan.planner` — the cheapest pools (chip per phase, instances, TP, colocated
  vs disaggregated, batching limits) whose simulated SLOs hold at a load, in stages:
  :mod:`~infersim.plan.target` (SLOs, the workload's shape, run lengths),
  :mod:`~infersim.plan.sizing` (cost-model shapes and pool sizes, and what was pruned),
  :mod:`~infersim.plan.planned` (a candidate as scenario data), :mod:`~infersim.plan.confirm`
  (simulation, maximum-rate search, ranking), over the values in
  :mod:`~infersim.plan.candidate`; :mod:`~infersim.plan.outputs` writes the best plan as a
  scenario, the ranked table and a Pareto plot.
* :mod:`~infersim.plan.check` — plan files (a scenario, a load, bounds on summary metrics, an
  optional recorded baseline) judged by ``infersim check``; :mod:`~infersim.plan.junit` reports
  them as JUnit XML for CI.

Submodules are imported where used; importing this package loads nothing else.
"""
