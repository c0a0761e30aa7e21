"""Points of cascades with data-dependent masks and gathers, without the data (docs/analysis.md).

* **bound**: the structural rewrite (:func:`einsum_ir.analysis.data_atoms.structural_cascade`,
  every atom at its upper value) is counted exactly by the region or dense counter; existence is
  monotone in the predicates, so these counts bound every Einsum's points from above.
* **estimate**: an Einsum whose predicate has atoms with selectivities ``d_i`` (top-k, or a given
  density; :mod:`einsum_ir.analysis.data_selectivity`) is counted as the expectation over the
  atoms' truth values, each atom true at a fraction ``d_i`` of the points it decides,
  independently: ``sum_s prod_i d_i^s_i (1 - d_i)^(1 - s_i) * count(predicate with s)``. Its
  ratio to the bound is a *factor* that travels with the tensor to the Einsums that read it (the
  product of the distinct factors of their operands, by the existence rules) until a reduction
  over one of the atom's variables makes the output exist wherever the bound says.
* **gather**: a read through an index tensor of an input takes one entry per index value; its
  count needs no data and is exact (the index tensor's own points are those of the read).

Every Einsum gets a kind: ``exact``, ``gather`` (exact), ``top-k`` (exact when the ranked values
are distinct), ``assumed`` (a given density, or independent selections combined) or ``bound``
(an upper bound); the weakest of its factors and reads decides.
"""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Mapping

from ..exprs import coverage
from ..ir import Access, Binary, Call, Cascade, Expr, Name, Unary, index_vars
from ..verifier import Analysis, analyze
from .data_atoms import Atom, atoms_of, gathers_of, structural_cascade
from .data_selectivity import Selectivity, selectivity
from .opclasses import expr_ops

KINDS = ("exact", "gather", "top-k", "assumed", "bound")  # from strongest to weakest
MAX_ATOMS = 6  # an Einsum with more atoms is counted at the bound (2^n counts otherwise)
_UNION = {"+", "-", "max", "min"}


@dataclass(frozen=True)
class Factor:
    """The ratio of a tensor's points to their bound, from the atoms of one Einsum (``origin``)."""

    origin: str
    density: float
    kind: str
    vars: frozenset  # the index variables it depends on, in the reading Einsum's names


def weakest(kinds) -> str:
    return max(kinds, key=KINDS.index, default="exact")


@dataclass
class DataCounts:
    """As :class:`einsum_ir.analysis.existence.ExistenceEvaluator`'s counts (``points``,
    ``out_points``, ``dense``, ``bounded``, ``method``), plus what the data changes:
    ``kinds[key]``, ``upper[key]`` (the bound of the points), ``notes[key]`` (what was assumed)
    and ``predicate_ops[key]`` (the operations of evaluating the data-dependent predicate)."""

    points: dict
    out_points: dict
    dense: dict
    bounded: dict
    method: str
    kinds: dict = field(default_factory=dict)
    upper: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)
    predicate_ops: dict = field(default_factory=dict)


def _read_factors(access: Access, store: Mapping[str, dict]) -> dict:
    """A tensor's factors (over its axes) in the names of the Einsum reading it with ``access``."""
    out = {}
    for origin, (f, axes) in store.get(access.tensor, {}).items():
        names = frozenset(v for k in axes for v in index_vars(access.indices[k]))
        out[origin] = Factor(origin, f.density, f.kind, names)
    return out


def _factors(expr: Expr | None, store: Mapping[str, dict]) -> dict:
    """The factors of ``expr``'s existence, by the existence rules (union keeps the common ones:
    an upper bound; intersection all of them)."""
    if expr is None or not isinstance(expr, (Access, Unary, Binary, Call)):
        return {}
    if isinstance(expr, Access):
        return _read_factors(expr, store)
    if isinstance(expr, Unary):
        return _factors(expr.operand, store)
    if isinstance(expr, Binary):
        if expr.op in ("and", "or"):
            return {}
        a, b = _factors(expr.lhs, store), _factors(expr.rhs, store)
        if expr.op in ("+", "-"):
            cover = coverage(expr.lhs, expr.rhs)
            if not all(cover):
                return a if cover[0] else b if cover[1] else {**a, **b}
        return {k: a[k] for k in a if k in b} if expr.op in _UNION else {**a, **b}
    parts = [_factors(arg, store) for arg in expr.args]
    if expr.func in _UNION:
        return {k: v for k, v in parts[0].items() if all(k in p for p in parts[1:])}
    return {k: v for p in parts for k, v in p.items()}


class _Counter:
    """Counts of the structural rewrite for chosen atom values, memoised per choice."""

    def __init__(self, cascade: Cascade, env, method: str):
        self.cascade, self.env, self.method = cascade, env, method
        self.memo: dict = {}

    def __call__(self, truth: Mapping[str, Mapping[int, bool]]):
        from .work import existence_counts

        key = tuple(sorted((k, tuple(sorted(v.items()))) for k, v in truth.items()))
        if key not in self.memo:
            rewritten = structural_cascade(self.cascade, truth)
            self.memo[key] = existence_counts(analyze(rewritten), self.env, self.method)
        return self.memo[key]


def _own_factor(einsum, atoms: tuple[Atom, ...], sels: list[Selectivity], count: _Counter,
                upper_points: int, env) -> tuple[Factor, str]:
    """The ratio of the expected points of ``key`` over its atoms' truth values to the bound,
    and a note on how exact it is."""
    key = str(einsum.id)
    kind = weakest("bound" if s.kind == "unknown" else s.kind for s in sels)
    names = frozenset(v for a in atoms for v in a.vars)
    if len(atoms) > MAX_ATOMS or all(s.kind == "unknown" for s in sels):
        return Factor(key, 1.0, "bound", names), ""
    expected = 0.0
    by_values = {}
    for values in itertools.product((False, True), repeat=len(atoms)):
        pr = 1.0
        for atom, sel, v in zip(atoms, sels, values, strict=True):
            p_true = sel.density if sel.kind != "unknown" else float(atom.positive)
            pr *= p_true if v else 1.0 - p_true
        if pr:
            by_values[values] = count({key: dict(enumerate(values))}).points.get(key, 0)
            expected += pr * by_values[values]
    note = "atoms taken as independent" if len(atoms) > 1 else ""
    if kind == "top-k" and len(atoms) == 1:
        # exact when the points the atom decides cover every entry of the count tensor alike
        # (each row's k kept entries then keep the same share of the Einsum's points)
        decided = by_values.get((True,), 0) - by_values.get((False,), 0)
        space = 1
        for v in einsum.iteration_space:
            space *= env[v.upper()]
        alike = sels[0].size and decided * sels[0].size == sels[0].entries * space
        if alike:
            note = "exact when the ranked values are distinct (ties keep more)"
        else:
            kind, note = "assumed", ("the Einsum's other conditions decide only some entries of "
                                     "the ranking: the kept share assumed uniform")
    elif len(atoms) > 1:
        kind = weakest([kind, "assumed"])
    return Factor(key, expected / upper_points if upper_points else 1.0, kind, names), note


def _predicate_ops(einsum, atoms: tuple[Atom, ...], bound: int, env) -> Counter:
    """The operations of evaluating the atoms (comparisons, arithmetic on the values read), once
    per candidate point over the predicate's variables: the bound's points, as a share of the
    iteration space over those variables (the rest of the space reuses the truth value)."""
    where_vars = set(index_vars(einsum.where))
    outside = 1
    for v in einsum.iteration_space:
        if v not in where_vars:
            outside *= env[v.upper()]
    evaluations = bound / outside if outside else 0
    total = Counter()
    for atom in atoms:
        for op, n in expr_ops(atom.expr).items():
            total[op] += round(n * evaluations)
    return total


def data_counts(analysis: Analysis, env: Mapping[str, int], method: str = "auto") -> DataCounts:
    """The counts of a data-dependent cascade without its data (see the module docstring)."""
    cascade = analysis.cascade
    count = _Counter(cascade, env, method)
    upper = count({})
    store: dict[str, dict] = {}  # tensor -> origin -> (Factor, its axes of the tensor)
    out = DataCounts(points={}, out_points={}, dense={}, bounded=dict(upper.bounded),
                     method=f"{upper.method}, data-dependent parts bounded or estimated")
    for einsum in cascade.einsums:
        key = str(einsum.id)
        atoms = atoms_of(einsum)
        factors = {**_factors(einsum.body, store), **_factors(einsum.where, store)}
        kinds = [f.kind for f in factors.values()]
        notes = []
        gathers = gathers_of(cascade, einsum)
        if gathers:
            exact = all(cascade.input(t) is not None for g in gathers for t in g.index_tensors)
            kinds.append("gather" if exact else "bound")
            notes += [f"gather {g.access.tensor}[..{', '.join(g.index_tensors)}..]: one entry "
                      "per index value" for g in gathers]
        bound = upper.points.get(key, 0)
        if atoms:
            sels = [selectivity(cascade, a, env, upper.out_points) for a in atoms]
            own, how = _own_factor(einsum, atoms, sels, count, bound, env)
            factors[key] = own
            kinds.append(own.kind)
            notes += [s.note for s in sels] + ([how] if how else [])
            out.predicate_ops[key] = _predicate_ops(einsum, atoms, bound, env)
        distinct_selections = [f for f in factors.values() if f.kind == "top-k"]
        if len(distinct_selections) > 1:
            kinds.append("assumed")  # independent selections multiplied
            notes.append("selections " + ", ".join(f.origin for f in distinct_selections)
                         + " taken as independent")
        density = 1.0
        for f in factors.values():
            density *= f.density
        out.points[key] = round(bound * density)
        out.upper[key] = bound
        out.kinds[key] = weakest(kinds)
        out.notes[key] = notes + [f"{f.kind} from {f.origin}" for f in factors.values()
                                  if f.origin != key]
        reduced = set(einsum.reduced)
        kept = {o: f for o, f in factors.items() if not (f.vars & reduced)}
        out_density = 1.0
        for f in kept.values():
            out_density *= f.density
        out.out_points[key] = round(upper.out_points.get(key, 0) * out_density)
        out.dense[key] = upper.dense.get(key, False) and out.kinds[key] == "exact"
        axes_of = {i.name: k for k, i in enumerate(einsum.output.indices) if isinstance(i, Name)}
        store[einsum.name] = {o: (f, tuple(axes_of[v] for v in sorted(f.vars) if v in axes_of))
                              for o, f in kept.items()}
    return out
