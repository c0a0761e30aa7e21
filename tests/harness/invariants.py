"""What every simulator report must satisfy, whatever the mapping.

* ``finite``: every number of the report is finite and non-negative.
* ``masked_work``: no Einsum of a masked cascade has more points than in the same cascade without
  its masks (same form).
* ``exact_points``: an Einsum's points are the exact count of ``einsum_ir.analysis.work`` at the
  report's sizes (at most that, inside a recurrence, whose fully empty steps the model skips).
* ``latency_bound``: the latency is at least the work bound to each unit (operations x cycles per
  operation) divided by the unit's PEs.
* ``energy_bound``: the energy is at least the report's compute energy, and at least the
  operations priced by the architecture's action table.
"""
from __future__ import annotations

import math

from einsum_ir.analysis.work import count_work

from . import outcomes
from .outcomes import Outcome
from .targets import SimFacts

_REL = 1e-9


def _finite(facts: SimFacts) -> str | None:
    for name, value in facts.numbers:
        if not math.isfinite(value) or value < 0:
            return f"{name} = {value!r}"
    return None


def _masked_work(facts: SimFacts, dense: SimFacts | None) -> str | None:
    if dense is None or dense.form != facts.form:
        return None
    dense_points = {e.key: e.points for e in dense.einsums}
    for e in facts.einsums:
        d = dense_points.get(e.key)
        if d is not None and e.points > d * (1 + _REL):
            return f"{e.key}: {e.points:,} points masked, {d:,} without the masks"
    return None


def _recurrence_keys(facts: SimFacts) -> set:
    from einsum_ir import analyze

    analysis = analyze(facts.cascade)
    step_vars = {r.var for r in analysis.recurrences.values()}
    return {e.name for e in facts.cascade.einsums if set(e.iteration_space) & step_vars}


def _traits(facts: SimFacts) -> str:
    """What the cascade has that changes how the model counts, so that distinct causes count
    apart: masks (or none: every point exists but reads past an extent), ranks defined by
    expressions of other ranks (``HK = H / G``, ``R = P + M``), reads that can leave an extent."""
    from einsum_ir.ir import Binary, Num, walk

    cascade = facts.cascade
    traits = ["masked cascade" if any(e.where is not None for e in cascade.einsums)
              else "unmasked cascade"]
    if any(d.is_rank and not isinstance(d.default, Num) for d in cascade.sizes):
        traits.append("derived ranks")
    shifts = any(isinstance(n, Binary) and n.op == "+" and isinstance(n.rhs, Num)
                 for e in cascade.einsums for a in e.reads() for i in a.indices for n in walk(i))
    ragged = any(facts.sizes.get(s.rank, 0) % max(1, facts.sizes.get(s.inner, 1))
                 for s in cascade.splits)
    if shifts or ragged:
        traits.append("reads past an extent")
    return ", ".join(traits)


def _exact_points(facts: SimFacts) -> str | None:
    known = {d.name for d in facts.cascade.sizes}
    exact = count_work(facts.cascade, {k: v for k, v in facts.sizes.items() if k in known}).points
    in_recurrence = _recurrence_keys(facts)
    for e in facts.einsums:
        want = exact.get(e.key)
        if want is None:
            continue
        over = e.points > want * (1 + _REL)
        under = e.points < want * (1 - _REL) and e.key.split(".")[0] not in in_recurrence
        if over or under:
            return (f"{'over' if over else 'under'}count ({_traits(facts)}) | {e.key}: "
                    f"{e.points:,} points simulated, {want:,} exist")
    return None


def _latency_bound(facts: SimFacts) -> str | None:
    per_unit: dict = {}
    for e in facts.einsums:
        unit = facts.units[e.unit]
        work = sum(n * unit.cycles.get(op, 1.0) for op, n in e.ops.items())
        per_unit[e.unit] = per_unit.get(e.unit, 0.0) + work / unit.pes
    for name, bound in per_unit.items():
        if facts.cycles < bound * (1 - _REL):
            return f"{facts.cycles:,.1f} cycles < {bound:,.1f} (work on {name} / its PEs)"
    return None


def _energy_bound(facts: SimFacts) -> str | None:
    priced = sum(n * facts.units[e.unit].energy_pJ.get(op, 0.0)
                 for e in facts.einsums for op, n in e.ops.items())
    floor = max(priced, facts.compute_energy_pJ)
    if facts.energy_pJ < floor * (1 - _REL):
        return f"{facts.energy_pJ:,.1f} pJ < compute energy {floor:,.1f} pJ"
    return None


def check(facts: SimFacts, dense: SimFacts | None) -> Outcome:
    checks = (("finite", lambda: _finite(facts)),
              ("masked_work", lambda: _masked_work(facts, dense)),
              ("exact_points", lambda: _exact_points(facts)),
              ("latency_bound", lambda: _latency_bound(facts)),
              ("energy_bound", lambda: _energy_bound(facts)))
    for which, run in checks:
        numbers = run()
        if numbers is not None:
            return outcomes.violated(which, numbers)
    return outcomes.mapped_ok()
