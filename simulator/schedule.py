"""The schedule of a fusion group: dependences, recurrence bounds, the sequential tile window.

A group runs ``N`` iterations (the product of its loops). ``pipelined``: tiles are
software-pipelined (modulo-scheduled), so the steady state is bounded by the busiest unit and by
every recurrence cycle (its per-iteration latency over the number of iterations between dependent
steps). ``sequential``: a barrier between tiles; one tile is list-scheduled on the units in the
mapping's order, with the latency of reductions that cross PEs exposed.

:func:`recurrence_bound` takes per-Einsum values that are numbers or numpy arrays (one entry per
candidate mapping), so the model and the mapper's vectorised evaluator share the one formula.
"""
from __future__ import annotations

from functools import lru_cache

import networkx as nx
import numpy as np

from einsum_ir.errors import CascadeError

from .loops import Loops
from .problem import Problem


def dependence_graph(prob: Problem, keys: tuple) -> list:
    """Edges ``(X, Y, carried, final)``: Y reads X's output; ``carried`` when Y reads the previous
    step of X's recurrence, ``final`` when it reads X's final iterate."""
    names = {prob.infos[k].einsum.name: k for k in keys}
    edges = []
    for y in keys:
        info = prob.infos[y]
        for t in info.reads:
            x = names.get(t)
            if x is None:
                continue
            carried = bool(info.carried.get(t))
            if x == y and not carried:
                continue
            edges.append((x, y, carried, t in info.final))
    return edges


def step_var(prob: Problem, keys: tuple) -> str | None:
    """The index variable the group's first recurrence steps along (None without recurrences)."""
    for k in keys:
        t = prob.infos[k].einsum.name
        if t in prob.recurrences:
            return prob.recurrences[t][1]
    return None


def recurrence_distance(loops: Loops, loop_names, step) -> int:
    """Iterations between two dependent steps of a recurrence over index ``step``: the product of
    the extents of the loops inside the innermost loop that walks ``step`` (1 if none does)."""
    distance = 1
    if step is None:
        return distance
    positions = [i for i, name in enumerate(loop_names) if loops.var(name) == step]
    if positions:
        for name in loop_names[positions[-1] + 1:]:
            distance *= loops.extent(name)
    return distance


@lru_cache(maxsize=1024)
def recurrence_cycles(prob: Problem, keys: tuple) -> tuple:
    """Cycles of the dependence graph that carry a value between steps: ``(einsums, tokens)``
    with ``tokens`` the number of carried edges on the cycle."""
    g = nx.DiGraph()
    for x, y, carried, final in dependence_graph(prob, keys):
        if not final:
            g.add_edge(x, y, carried=carried)
    out = []
    for cycle in nx.simple_cycles(g):
        tokens = sum(1 for i, x in enumerate(cycle)
                     if g.edges[x, cycle[(i + 1) % len(cycle)]]["carried"])
        if tokens:
            out.append((tuple(cycle), tokens))
    return tuple(out)


def recurrence_bound(cycles: tuple, per_iter: dict, latency: dict, distance: int):
    """Cycles per iteration the recurrences allow: over every cycle, its per-iteration work and
    result latencies over (carried edges x iterations between dependent steps).

    ``per_iter`` and ``latency`` map Einsums to numbers or to arrays of one shape."""
    best = 0.0
    for cycle, tokens in cycles:
        work = sum(per_iter[x] + latency[x] for x in cycle)
        best = np.maximum(best, work / (tokens * distance))
    return best


def _unit_sequences(keys, costs: dict, order: dict, units: list):
    """Each unit's Einsums in the mapping's order, and the Einsums deferred to the next tile."""
    deferred = set()
    seq: dict = {}
    for unit in units:
        names = order.get(unit)
        if names is None:
            names = [k for k in keys if costs[k].unit == unit]
        lst = []
        for entry in names:
            name, _, tag = entry.partition("@")
            if name not in costs or costs[name].unit != unit:
                raise CascadeError(f"mapping: order.{unit}: {name} is not bound to {unit} in this group")
            if tag == "prev":
                deferred.add(name)
            elif tag:
                raise CascadeError(f"mapping: order.{unit}: unknown marker @{tag} (only @prev)")
            lst.append(name)
        missing = [k for k in keys if costs[k].unit == unit and k not in lst]
        if missing:
            raise CascadeError(f"mapping: order.{unit} leaves out {', '.join(missing)}")
        seq[unit] = lst
    return seq, deferred


def _tile_predecessors(prob, keys, deferred: set, epilogue: set) -> dict:
    preds: dict = {k: [] for k in keys}
    for x, y, carried, final in dependence_graph(prob, keys):
        if final or x in epilogue or y in epilogue:
            continue
        xd, yd = x in deferred, y in deferred
        if carried:
            if xd and not yd:
                preds[y].append(x)
        elif xd == yd:
            preds[y].append(x)
        elif xd and not yd:
            raise CascadeError(f"mapping: {y} needs {x} of the same tile, but {x} is deferred (@prev)")
    return preds


def sequential_window(prob, keys, costs: dict, per_iter: dict, order: dict, units: list,
                      epilogue: set) -> float:
    """List-schedules one tile: each unit runs its ops in ``order``; returns the window length."""
    seq, deferred = _unit_sequences(keys, costs, order, units)
    preds = _tile_predecessors(prob, keys, deferred, epilogue)
    end: dict = {}
    free = {u: 0.0 for u in seq}
    pos = {u: 0 for u in seq}
    remaining = sum(len(v) for v in seq.values())
    while remaining:
        best = None
        for u, lst in seq.items():
            if pos[u] >= len(lst):
                continue
            k = lst[pos[u]]
            if any(p not in end for p in preds[k]):
                continue
            start = max([free[u]] + [end[p] + costs[p].latency for p in preds[k]])
            if best is None or start < best[0]:
                best = (start, u, k)
        if best is None:
            stuck = [seq[u][pos[u]] for u in seq if pos[u] < len(seq[u])]
            raise CascadeError(f"mapping: the unit orders deadlock at {', '.join(stuck)}",
                               hint="order each unit's Einsums consistently with their dependences")
        start, u, k = best
        end[k] = start + per_iter[k]
        free[u] = end[k]
        pos[u] += 1
        remaining -= 1
    return max(end.values()) if end else 0.0
