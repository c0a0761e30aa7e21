"""Work: how many operations of each class every Einsum performs.

Counting rules (one count per *existing* point; masked points and split tails do no work):

* A sum whose body is a product of two or more tensor factors (a contraction) counts one ``mac``
  per point of its iteration space; each further factor adds a ``mul`` (``div`` for a divisor).
  Constant factors (``/ sqrt(E)``) are hoisted out of the sum: one ``mul`` per output point.
* Any other sum counts one ``add`` per point; a ``max`` or ``min`` reduction one ``max``; a
  ``prod`` reduction one ``mul``.
* Operators inside the body count once per point: ``+``/``-`` are ``add``, ``*`` is ``mul``, ``/``
  is ``div``, comparisons are ``cmp``, binary ``max``/``min`` are ``max``, ``exp`` is ``exp``,
  every other function (``log``, ``sqrt``, ``elu``, ...) and ``%`` is ``other``.
  Subexpressions without tensors or indices are constants (folded, free); a unary minus is free;
  index arithmetic inside accesses and ``where`` predicates is address/loop work and not counted.
* An initial value of a recurrence (``RM[b,h,p,0] = -inf``) is reported as ``RM.init``.

``points`` are exact under masks for the given sizes: counted from regions of affine constraints
(:mod:`einsum_ir.analysis.region_count`, cost independent of the sizes; sampled with an error
bound, ``bounded``, only where an exact count would enumerate too much) where the masks allow, else
by dense enumeration over the predicates' index space (:mod:`einsum_ir.analysis.existence`; its
memory limit refuses sizes it cannot afford). ``symbolic`` gives closed forms in the rank symbols for
every Einsum that no ``where`` predicate reaches and that is dense at the given sizes; a split's
outer rank is ``ceiling(M / M0)``. Where both exist they agree exactly.

Masks that read tensors and gathers through index tensors (:mod:`einsum_ir.analysis.data_counts`):
with ``inputs`` the points are exact for those values; without, each Einsum's ``kinds`` entry says
whether its count is exact, from a gather or a top-k structure, assumed from a given density
(``densities``), or an upper bound (``upper`` holds the bound of every data-dependent Einsum). The
predicate's own comparisons are work: ``predicate_ops`` per point where it is evaluated (the
bound's points), added to the Einsum's counts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import sympy

from ..ir import Cascade, Num
from ..errors import CascadeError
from ..size_exprs import to_sympy
from ..sizes import resolve_sizes
from ..verifier import Analysis, analyze
from .data_atoms import is_data_dependent
from .data_counts import data_counts
from .data_selectivity import with_densities
from .existence import existence
from .region_count import Unsupported, region_existence
from .opclasses import OP_CLASSES, einsum_profile, expr_ops

__all__ = ["OP_CLASSES", "WorkReport", "count_work", "einsum_profile", "expr_ops", "rank_symbols"]

@dataclass(frozen=True)
class WorkReport:
    """Operation counts of a cascade for one set of sizes.

    ``per_einsum[key][op]`` with ``key`` the Einsum's output tensor (``T.init`` for an initial
    value) and ``op`` one of :data:`OP_CLASSES` (every class present, zeros included);
    ``points[key]`` the existing points of its iteration space; ``total[op]`` the sums;
    ``symbolic[key][op]`` closed forms (sympy) where available, else None when no Einsum has one.
    """

    per_einsum: dict[str, dict[str, int]]
    points: dict[str, int]
    total: dict[str, int]
    symbolic: dict[str, dict[str, sympy.Expr]] | None
    sizes: dict[str, int] = field(default_factory=dict)
    output_points: dict[str, int] = field(default_factory=dict)
    symbolic_points: dict[str, sympy.Expr] = field(default_factory=dict)
    method: str = "regions"  # how the points were counted: regions or dense
    # key -> error bound of its points where they are sampled (an exact count costs too much),
    # holding with probability einsum_ir.analysis.region_sample.CONFIDENCE; empty when all exact
    bounded: dict[str, int] = field(default_factory=dict)
    # data-dependent Einsums only (see einsum_ir.analysis.data_counts): how each count was made
    # (exact, gather, top-k, assumed, bound), the upper bound of its points, what was assumed
    kinds: dict[str, str] = field(default_factory=dict)
    upper: dict[str, int] = field(default_factory=dict)
    notes: dict[str, list] = field(default_factory=dict)
    # key -> op -> operations of evaluating its data-dependent mask (included in per_einsum)
    predicate: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict:
        out = {
            "sizes": dict(self.sizes),
            "per_einsum": self.per_einsum,
            "points": self.points,
            "total": self.total,
            "symbolic": None if self.symbolic is None else {
                k: {op: str(v) for op, v in ops.items()} for k, ops in self.symbolic.items()},
        }
        if self.bounded:  # sampled counts: their error bounds
            out["bounded"] = dict(self.bounded)
        if self.kinds:  # data-dependent counts: how each was made, and its upper bound
            out["data"] = {k: {"kind": self.kinds[k], "upper_bound": self.upper.get(k),
                               "notes": self.notes.get(k, [])} for k in self.kinds}
        return out


# ---------------------------------------------------------------------- symbols


def rank_symbols(cascade: Cascade, env: Mapping[str, int] | None = None) -> dict[str, sympy.Expr]:
    """A sympy expression for every rank and parameter: a symbol, or its defining expression.

    A split's outer rank is ``M / M0`` where the tile divides its rank at the sizes ``env`` (or
    when no sizes are given), else ``ceiling(M / M0)``.
    """
    symbols: dict[str, sympy.Expr] = {}
    decls = {d.name: d for d in cascade.sizes}

    def sym(name: str) -> sympy.Expr:
        if name in symbols:
            return symbols[name]
        split = next((s for s in cascade.splits if s.outer == name), None)
        if split is not None:
            ratio = sym(split.rank) / sym(split.inner)
            divides = env is None or env[split.rank] % env[split.inner] == 0
            value = ratio if divides else sympy.ceiling(ratio)
        elif name in decls and not isinstance(decls[name].default, Num):
            symbols[name] = sympy.Symbol(name, positive=True, integer=True)  # cycle guard
            try:
                value = to_sympy(decls[name].default, sym)
            except CascadeError:  # not integer arithmetic of sizes: keep the symbol
                value = symbols[name]
        else:
            value = sympy.Symbol(name, positive=True, integer=True)
        symbols[name] = value
        return value

    for name in [*decls, *(s.outer for s in cascade.splits)]:
        sym(name)
    return symbols


def _tainted(cascade: Cascade) -> set[str]:
    """Tensors that a ``where`` predicate reaches (directly or through their operands)."""
    tainted: set[str] = set()
    changed = True
    while changed:
        changed = False
        for einsum in cascade.einsums:
            if einsum.name in tainted:
                continue
            if einsum.where is not None or any(a.tensor in tainted for a in einsum.reads()):
                tainted.add(einsum.name)
                changed = True
    return tainted


# ---------------------------------------------------------------------- the report

METHODS = ("auto", "regions", "dense")
def existence_counts(analysis: Analysis, env: Mapping[str, int], method: str = "auto",
                     inputs: Mapping | None = None):
    """Existing points per Einsum (``points``, ``out_points``, ``dense``, ``method``).

    ``regions`` counts from affine regions (exact, cost independent of the sizes) and refuses
    masks outside that fragment; ``dense`` enumerates the masks (exact, cost grows with the
    sizes, refused past the memory limit); ``auto`` takes regions, else dense. A data-dependent
    cascade is counted with ``inputs`` (exact, dense enumeration) or without (bounds and
    estimates, :func:`einsum_ir.analysis.data_counts.data_counts`)."""
    if method not in METHODS:
        raise CascadeError(f"unknown counting method {method!r}", hint=f"one of {', '.join(METHODS)}")
    if inputs is not None:
        ev = existence(analysis, env, inputs)
        if is_data_dependent(analysis.cascade):  # the bounds: where the predicate is evaluated
            bounds = data_counts(analysis, env, method)
            ev.predicate_ops, ev.upper = bounds.predicate_ops, bounds.upper
            ev.kinds = {k: "exact" for k in bounds.kinds}
            ev.notes = {k: ["decided on the given inputs"] for k in bounds.kinds}
        return ev
    if is_data_dependent(analysis.cascade):
        return data_counts(analysis, env, method)
    if method in ("auto", "regions"):
        try:
            return region_existence(analysis, env)
        except Unsupported as exc:
            if method == "regions":
                raise CascadeError(f"the masks cannot be counted from regions: {exc}",
                                   hint="count with method='dense'") from None
    return existence(analysis, env)


def count_work(cascade: Cascade, sizes: Mapping[str, int] | None = None, *,
               analysis: Analysis | None = None, method: str = "auto",
               inputs: Mapping | None = None,
               densities: Mapping[str, float] | None = None) -> WorkReport:
    """Counts the work of ``cascade``.

    ``sizes`` are overrides of the declared defaults (as ``--set`` gives them), or a full size
    table from :func:`einsum_ir.resolve_sizes`. ``method``: ``regions``, ``dense`` or ``auto``
    (see :func:`existence_counts`). ``inputs`` (name -> array) decide data-dependent masks and
    gathers exactly; ``densities`` (tensor or Einsum name -> fraction) give the selectivity of
    masks the cascade cannot tell (as ``param DENSITY_NAME`` would).
    """
    if densities:
        cascade, analysis = with_densities(cascade, densities), None
    analysis = analysis or analyze(cascade)
    known = {d.name for d in cascade.sizes}
    overrides = {k: v for k, v in (sizes or {}).items() if k in known}
    env = resolve_sizes(cascade, overrides)
    ev = existence_counts(analysis, env, method, inputs)
    symbols = rank_symbols(cascade, env)
    tainted = _tainted(cascade)

    per_einsum: dict[str, dict[str, int]] = {}
    symbolic: dict[str, dict[str, sympy.Expr]] = {}
    symbolic_points: dict[str, sympy.Expr] = {}
    for einsum in cascade.einsums:
        key = str(einsum.id)  # the report label: T, or T.init for an initial value
        per_point, per_output = einsum_profile(einsum)
        points, outs = ev.points.get(key, 0), ev.out_points.get(key, 0)
        per_einsum[key] = {op: per_point[op] * points + per_output[op] * outs for op in OP_CLASSES}
        for op, n in getattr(ev, "predicate_ops", {}).get(key, {}).items():
            per_einsum[key][op] += n  # evaluating a data-dependent mask is work
        if ev.dense.get(key, False) and einsum.name not in tainted:
            n = math.prod([symbols[v.upper()] for v in einsum.iteration_space], start=sympy.Integer(1))
            o = math.prod([symbols[v.upper()] for v in einsum.output_vars], start=sympy.Integer(1))
            symbolic_points[key] = n
            symbolic[key] = {op: sympy.expand(per_point[op] * n + per_output[op] * o)
                             for op in OP_CLASSES}
    total = {op: sum(counts[op] for counts in per_einsum.values()) for op in OP_CLASSES}
    return WorkReport(per_einsum=per_einsum, points=dict(ev.points), total=total,
                      symbolic=symbolic or None, sizes=env, output_points=dict(ev.out_points),
                      symbolic_points=symbolic_points, method=ev.method,
                      bounded=dict(ev.bounded), kinds=dict(getattr(ev, "kinds", {})),
                      upper=dict(getattr(ev, "upper", {})), notes=dict(getattr(ev, "notes", {})),
                      predicate={k: dict(v) for k, v in getattr(ev, "predicate_ops", {}).items()})
