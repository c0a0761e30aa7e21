"""Validation models of the cost model, used by the tests.

* :func:`simulator.check.eventsim.simulate_events`: a cycle-level, event-driven schedule.
* :func:`simulator.check.nest.analyze_nest`: a Timeloop-style single-Einsum nest analysis.
"""
