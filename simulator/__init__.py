"""The accelerator cost model: counts, schedule, latency, energy, area, reports.

* :func:`simulator.model.simulate` / :func:`simulator.model.simulate_problem`: the analytical model.
* :func:`simulator.search.search`: the mapper (vectorised closed-form cost over the mapspace).
* :func:`simulator.eventsim.simulate_events`: the cycle-level, event-driven check.
* :func:`simulator.nest.analyze_nest`: Timeloop-style single-Einsum nest analysis.
* :mod:`simulator.fusemax_study`: ``cascade reproduce fusemax``.
"""
from .model import Report, simulate, simulate_problem
from .search import search

__all__ = ["Report", "search", "simulate", "simulate_problem"]
