"""Exact point counts under masks, from regions (see :mod:`einsum_ir.analysis.regions`).

Existence propagates as in :mod:`einsum_ir.analysis.existence` (the interpreter's rules), but as
sets of constraints instead of boolean arrays, so the cost does not grow with the sizes:

* an Einsum's existing points are its predicate, met with the existence of its body's operands
  (``+``, ``max``, ``min`` unite, everything else intersects) and with reads inside extents;
* the points of a region are counted per conjunction (inclusion-exclusion over the union): ranks
  no constraint names multiply as a product, ranks constrained together form a component whose
  count is a sum, over the values of all its ranks but the widest, of the widest rank's interval
  length (vectorised);
* a reduction's output exists where some reduced point exists: Fourier-Motzkin projection;
* a recurrence is dense when its initial value is and every update gives a dense step (by
  induction over the steps); any other recurrence is :class:`Unsupported`.

Anything outside this fragment raises :class:`Unsupported`; :func:`einsum_ir.analysis.work`
then enumerates densely (small problems) or samples.
"""
from __future__ import annotations

import math
from typing import Mapping

import numpy as np

from ..ir import Access, Binary, Call, Einsum, Expr, Name, Num, Unary
from ..verifier import Analysis
from .projection import Projected, floor_definitions, merge_products, project
from .region_sample import sample_count
from ..exprs import coverage
from .regions import (TRUE, Box, Form, Lowering, Region, TooCostly, Unsupported, conj_and, conj_or,
                      simplify, simplify_region, substitute)

ENUM_LIMIT = 1 << 26  # outer points enumerated to count one region (all its conjunctions)
MAX_TERMS = 4096  # intersections counted for the union of one region
_CHUNK = 1 << 20
_UNION = {"+", "-", "max", "min"}


# ----------------------------------------------------------------------------- counting


def count(region: Region, box: Box) -> int:
    """The integer points of ``box`` in ``region`` (inclusion-exclusion over its conjunctions)."""
    region = simplify_region(region, box)
    if not region:
        return 0
    if region == TRUE:
        return math.prod(hi - lo + 1 for lo, hi in box.values())
    conjs = list(region)
    total = terms = 0
    budget = [ENUM_LIMIT]

    def walk(start: int, current: frozenset, sign: int) -> None:
        nonlocal total, terms
        for i in range(start, len(conjs)):
            both = simplify(current | conjs[i], box)
            if both is None:  # disjoint (residue classes are): no term below this one
                continue
            terms += 1
            if terms > MAX_TERMS:
                raise TooCostly(f"more than {MAX_TERMS} intersections of {len(conjs)} conjunctions")
            total += sign * count_conjunction(both, box, budget)
            walk(i + 1, both, -sign)

    walk(0, frozenset(), 1)
    return total


def _tighten(conj, box: dict) -> bool:
    """Narrows ``box`` by the single-variable constraints of ``conj``; False when empty."""
    for f in conj:
        if len(f.coefs) != 1:
            continue
        (v, c), = f.coefs
        lo, hi = box[v]
        if c > 0:
            hi = min(hi, (-f.const) // c)
        else:
            lo = max(lo, -((-f.const) // -c))  # |c|*x >= const
        if lo > hi:
            return False
        box[v] = (lo, hi)
    return True


def _substitute_equalities(conj, box: dict):
    """Removes variables fixed by a unit equality ``v = e`` (a bijection: the count is kept)."""
    while True:
        for f in conj:
            unit = [v for v, c in f.coefs if abs(c) == 1]
            if unit and f.scale(-1) in conj:
                v, c = unit[0], f.coef(unit[0])
                e = Form.of({w: k for w, k in f.coefs if w != v}, f.const).scale(-c)
                lo, hi = box.pop(v)
                bounds = {Form(const=lo) - e, e - Form(const=hi)}
                conj = frozenset(g.substitute({v: e}) for g in conj if g not in (f, f.scale(-1)))
                conj = simplify(conj | bounds, box)
                if conj is None:
                    return None
                break
        else:
            return conj


def count_conjunction(conj, box: Box, budget: list | None = None) -> int:
    """The points of one conjunction; ``budget[0]``: the outer points it may still enumerate."""
    budget = [ENUM_LIMIT] if budget is None else budget
    box = dict(box)
    conj, _ = merge_products(conj, box, list(box))
    conj = _substitute_equalities(conj, box)
    if conj is None:
        return 0
    for _ in range(3):
        if not _tighten(conj, box):
            return 0
        conj = simplify(conj, box)
        if conj is None:
            return 0
    parent = {v: v for v in box}

    def find(v):
        while parent[v] != v:
            v = parent[v]
        return v

    for f in conj:
        for v in f.vars[1:]:
            parent[find(v)] = find(f.vars[0])
    groups: dict = {}
    for v in box:
        groups.setdefault(find(v), []).append(v)
    total = 1
    for vars_ in groups.values():
        forms = [f for f in conj if f.vars and find(f.vars[0]) == find(vars_[0])]
        total *= _component(vars_, forms, box, budget) if forms else math.prod(
            box[v][1] - box[v][0] + 1 for v in vars_)
        if total == 0:
            return 0
    return total


def _component(vars_, forms, box: Box, budget: list) -> int:
    """Points of one connected component: enumerate all but the widest variable."""
    inner = max(vars_, key=lambda v: box[v][1] - box[v][0])
    outer = [v for v in vars_ if v != inner]
    shape = [box[v][1] - box[v][0] + 1 for v in outer]
    n = math.prod(shape)
    budget[0] -= n
    if budget[0] < 0:
        raise TooCostly(f"more than {ENUM_LIMIT:,} points to enumerate for one region")
    coefs = np.array([[f.coef(v) for v in outer] for f in forms], dtype=np.int64).reshape(len(forms), len(outer))
    a = np.array([f.coef(inner) for f in forms], dtype=np.int64)
    const = np.array([f.const for f in forms], dtype=np.int64)
    base = np.array([box[v][0] for v in outer], dtype=np.int64)
    ilo, ihi = box[inner]
    total = 0
    for start in range(0, n, _CHUNK):
        flat = np.arange(start, min(n, start + _CHUNK), dtype=np.int64)
        points = (np.stack(np.unravel_index(flat, shape)) + base[:, None]) if outer else \
            np.zeros((0, flat.size), dtype=np.int64)
        rest = coefs @ points + const[:, None]  # per form: value without the inner term
        lo = np.full(flat.size, ilo, dtype=np.int64)
        hi = np.full(flat.size, ihi, dtype=np.int64)
        ok = np.ones(flat.size, dtype=bool)
        for k in range(len(forms)):
            if a[k] > 0:  # a*x + rest <= 0  ->  x <= floor(-rest / a)
                hi = np.minimum(hi, (-rest[k]) // a[k])
            elif a[k] < 0:  # |a|*x >= rest  ->  x >= ceil(rest / |a|)
                lo = np.maximum(lo, -((-rest[k]) // -a[k]))
            else:
                ok &= rest[k] <= 0
        total += int(np.sum(np.where(ok, np.maximum(hi - lo + 1, 0), 0)))
    return total


def _count(region: Region, box, primary, aux) -> tuple[int, int | None]:
    """(exact count, None), or (sampled count, its error bound) where exact costs too much."""
    try:
        return count(region, box), None
    except TooCostly:
        return sample_count(region, box, primary, aux)


# ----------------------------------------------------------------------------- existence


class RegionExistence:
    """Existence as regions through a verified cascade; after :meth:`run`, ``points``,
    ``out_points`` and ``dense`` as :class:`einsum_ir.analysis.existence.ExistenceEvaluator`."""

    method = "regions"

    def __init__(self, analysis: Analysis, sizes: Mapping[str, int]):
        self.a = analysis
        self.sizes = dict(sizes)
        self.store: dict[str, tuple | None] = {}  # tensor -> (labels, Projected); None: dense
        self.points: dict[str, int] = {}
        self.out_points: dict[str, int] = {}
        self.dense: dict[str, bool] = {}
        self.bounded: dict[str, int] = {}  # key -> error bound of sampled points (see _count)
        self.bounded_out: dict[str, int] = {}  # the same for output points

    def extent(self, var: str) -> int:
        return self.sizes[var.upper()]

    def run(self) -> RegionExistence:
        for step in self.a.steps:
            for einsum in step.einsums:
                self.run_einsum(einsum)
        return self

    def run_einsum(self, einsum: Einsum) -> None:
        key = str(einsum.id)
        box = {v: (0, self.extent(v) - 1) for v in einsum.iteration_space}
        low = Lowering(box, self.sizes)
        region = self.exists(einsum.body, low)
        if einsum.where is not None:
            region = conj_and(region, low.predicate(einsum.where))
        region = conj_and(region, (frozenset(low.defs),))
        full = math.prod(self.extent(v) for v in einsum.iteration_space)
        points, bound = _count(region, box, einsum.iteration_space, low.aux)
        out_vars = einsum.output_vars
        drop = [v for v in box if v not in out_vars]
        out = project(region, drop, box)
        out_box = {v: box[v] for v in (*out_vars, *out.aux)}
        aux = {name: (Form.var(base), d) for name, (base, d) in out.aux.items()}
        out_points, out_bound = _count(conj_and(out.region, (floor_definitions(out.aux),)),
                                       out_box, out_vars, aux)
        self.points[key] = points
        self.out_points[key] = out_points
        for table, b in ((self.bounded, bound), (self.bounded_out, out_bound)):
            if b is not None:
                table[key] = b
        self.dense[key] = points == full and bound is None
        self._write(einsum, out, out_points == math.prod(self.extent(v) for v in out_vars))

    def _write(self, einsum: Einsum, region: Projected, whole: bool) -> None:
        tensor = einsum.name
        if tensor in self.a.recurrences:
            if not whole:
                raise Unsupported(f"the recurrence {einsum.id} is not dense")
            self.store[tensor] = None
            return
        labels = tuple(i.name for i in einsum.output.indices)
        if len(set(labels)) != len(labels):
            raise Unsupported(f"{tensor} repeats an output index")
        self.store[tensor] = None if whole else (labels, region)

    def exists(self, expr: Expr | None, low: Lowering) -> Region:
        if expr is None or isinstance(expr, (Num, Name)):
            return TRUE
        if isinstance(expr, Access):
            return self.read(expr, low)
        if isinstance(expr, Unary):
            return self.exists(expr.operand, low)
        if isinstance(expr, Binary):
            if expr.op in ("and", "or"):
                return TRUE
            a, b = self.exists(expr.lhs, low), self.exists(expr.rhs, low)
            if expr.op in ("+", "-"):
                cover = coverage(expr.lhs, expr.rhs)
                if not all(cover):  # a broadcast operand creates no points (exprs.coverage)
                    return a if cover[0] else b if cover[1] else conj_and(a, b)
            combine = conj_or if expr.op in _UNION else conj_and
            return combine(a, b)
        if isinstance(expr, Call):
            regions = [self.exists(arg, low) for arg in expr.args]
            out = regions[0]
            combine = conj_or if expr.func in _UNION else conj_and
            for r in regions[1:]:
                out = combine(out, r)
            return out
        raise TypeError(f"not an expression: {expr!r}")

    def read(self, access: Access, low: Lowering) -> Region:
        axes = self.a.shapes[access.tensor]
        stored = self.store.get(access.tensor)
        bounds: set = set()
        env: dict[str, Form] = {}
        for k, index in enumerate(access.indices):
            extent = self.sizes[axes[k].rank] + axes[k].extra
            trivial = (isinstance(index, Name) and index.is_index
                       and self.extent(index.name) <= extent)
            f = Form.var(index.name) if trivial else low.form(index)
            if not trivial:
                bounds |= {f.scale(-1), f.plus(1 - extent)}
            if stored is not None:
                env[stored[0][k]] = f
        if stored is None:
            return (frozenset(bounds),)
        projected = stored[1]
        for name, (base, d) in projected.aux.items():  # re-created for this read
            lo, hi = env[base].bounds(low.box)
            fresh = f"{name}@{len(low.box)}"  # a quotient of this Einsum's variables
            low.box[fresh] = (lo // d, hi // d)
            low.aux[fresh] = (env[base], d)
            env[name] = Form.var(fresh)
        low.defs |= floor_definitions(projected.aux, env)
        return conj_and(substitute(projected.region, env), (frozenset(bounds),))


def region_existence(analysis: Analysis, sizes: Mapping[str, int]) -> RegionExistence:
    """Runs the region propagation; raises :class:`Unsupported` outside its fragment."""
    return RegionExistence(analysis, sizes).run()
