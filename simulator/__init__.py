"""The accelerator cost model: counts, schedule, latency, energy, area, reports.

* :mod:`simulator.arch`, :mod:`simulator.mapping`: the architecture specs and the mapping format.
* :mod:`simulator.problem`: a cascade at fixed sizes; :mod:`simulator.loops`: a mapping's loops.
* :mod:`simulator.counts` (operations, cycles, words moved), :mod:`simulator.schedule`
  (dependences, recurrence bounds, the sequential window), :mod:`simulator.cost` (energy,
  latency, :func:`simulate`), :mod:`simulator.report` (what it returns).
* :mod:`simulator.check`: validation models (an event-driven schedule, a Timeloop-style nest).

The mapping search lives above this package, in :mod:`mapper`.
"""
from .cost import simulate, simulate_problem
from .counts import Infeasible
from .report import Report

__all__ = ["Infeasible", "Report", "simulate", "simulate_problem"]
