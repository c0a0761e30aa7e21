"""A cascade at fixed sizes, prepared for the cost model: shapes, recurrences, work per Einsum.

Counts come from :func:`einsum_ir.analysis.work.count_work` (exact under masks). Two choices of the
accelerator model are made here and documented in docs/accelerator.md:

* A constant scale hoisted out of a contraction (``/ sqrt(E)``) is folded into an operand and costs
  nothing on the array (the FuseMax artifact's cascades omit it, fusemax.md 2).
* Initial values of recurrences (``RM[...,0] = -inf``) are register initialisations, not work.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from einsum_ir import analyze
from einsum_ir.analysis.existence import einsum_key
from einsum_ir.analysis.work import count_work, einsum_profile
from einsum_ir.ir import Binary, Call, Cascade, Einsum, Name, index_vars, walk
from einsum_ir.sizes import resolve_sizes


@dataclass
class EinsumInfo:
    key: str
    einsum: Einsum
    vars: tuple  # iteration space (index variables)
    reduced: tuple
    reducer: str | None
    per_point: Counter  # op class -> count per existing point
    exp_sub: int  # exp(a - b) patterns per point (a unit with an 'exp_sub' op fuses them)
    points: int  # existing points (masks applied)
    dense_points: int
    reads: dict  # tensor -> set of index variables used to read it
    out_vars: tuple
    carried: dict  # tensor -> True when read at the previous step of its recurrence
    final: set  # tensors whose final iterate is read (e.g. RNV[M1])

    @property
    def density(self) -> float:
        return self.points / self.dense_points if self.dense_points else 0.0


@dataclass
class Problem:
    cascade: Cascade
    sizes: dict
    analysis: object
    infos: dict  # key -> EinsumInfo (initial values excluded)
    order: tuple  # keys in program order
    shapes: dict  # tensor -> tuple of (rank, extent)
    recurrences: dict  # tensor -> (axis, var)
    consumers: dict = field(default_factory=dict)  # tensor -> [keys]
    producer: dict = field(default_factory=dict)  # tensor -> key

    def tensor_words(self, tensor: str, final_only: bool = True) -> int:
        """Elements of a tensor (a recurrence counts its final iterate only)."""
        dims = self.shapes[tensor]
        rec = self.recurrences.get(tensor)
        n = 1
        for k, (_, extent) in enumerate(dims):
            if rec is not None and k == rec[0] and final_only:
                continue
            n *= extent
        return n

    def is_input(self, tensor: str) -> bool:
        return self.cascade.input(tensor) is not None

    def is_output(self, tensor: str) -> bool:
        return self.cascade.output(tensor) is not None


def _exp_sub(expr) -> int:
    n = 0
    for node in walk(expr):
        if isinstance(node, Call) and node.func == "exp" and len(node.args) == 1 \
                and isinstance(node.args[0], Binary) and node.args[0].op in ("+", "-"):
            n += 1
    return n


def _structural_sizes(cascade: Cascade, sizes: dict, cap: int = 2048) -> dict:
    """Sizes at which masks are counted: ranks that no predicate or index expression involves are
    dense (set to 1; they multiply every count alike), the others are kept, or scaled down by a
    common factor when large (the density is then that of the scaled problem: exact for the
    shapes of the examples up to a relative error of about 1/cap)."""
    involved: set = set()
    for e in cascade.einsums:
        if e.where is not None:
            involved |= {v.upper() for v in index_vars(e.where)}
        for acc in (*e.reads(), e.output):
            for idx in acc.indices:
                vs = index_vars(idx)
                if not isinstance(idx, Name) and vs:
                    involved |= {v.upper() for v in vs}
    for sp in cascade.splits:
        if {sp.rank, sp.outer, sp.inner} & involved:
            involved |= {sp.rank, sp.inner}
            involved.discard(sp.outer)
    decls = {d.name: d for d in cascade.sizes}
    out = {}
    big = max((sizes[r] for r in involved if r in decls), default=1)
    factor = max(1, big // cap)
    inner = {sp.inner for sp in cascade.splits}
    for name, decl in decls.items():
        if not decl.is_rank:
            out[name] = sizes[name]
        elif name in involved:
            v = sizes[name]
            out[name] = v // factor if (name not in inner and v >= cap and v % factor == 0) else v
        else:
            out[name] = 1
    return out


def _skip_empty_steps(infos: dict, recurrences: dict) -> None:
    """A recurrence step where nothing from outside the recurrence exists (a fully masked key tile
    of a causal cascade) leaves the running state unchanged: the model does not run it. Einsums of
    the recurrence chain (updates, and Einsums reading a previous step) then cost the step density
    of the Einsums that feed the recurrence, at most their own."""
    for var in {v for _, v in recurrences.values()}:
        chain = {k for k, i in infos.items()
                 if var in i.vars and (i.carried or i.einsum.name in recurrences)}
        feeders = [i.density for k, i in infos.items() if var in i.vars and k not in chain]
        if not feeders:
            continue
        step = max(feeders)
        for k in chain:
            info = infos[k]
            if info.density > step:
                info.points = min(info.points, round(info.dense_points * step))


def build_problem(cascade: Cascade, overrides: dict | None = None) -> Problem:
    analysis = analyze(cascade)
    known = {d.name for d in cascade.sizes}
    overrides = {k: v for k, v in (overrides or {}).items() if k in known}
    sizes = resolve_sizes(cascade, overrides)
    dense = all(e.where is None for e in cascade.einsums) and all(
        sizes[sp.rank] % sizes[sp.inner] == 0 for sp in cascade.splits)
    scale = None
    if dense:
        # No predicate and no ragged split tail: every point exists (closed form, O(1) in sizes).
        points = {einsum_key(analysis, e): math.prod(sizes[v.upper()] for v in e.iteration_space)
                  for e in cascade.einsums}
    else:
        small = _structural_sizes(cascade, sizes)
        scale = count_work(cascade, small, analysis=analysis)
        points = None
    recurrences = {t: (r.axis, r.var) for t, r in analysis.recurrences.items()}
    shapes = {t: tuple((a.rank, sizes[a.rank] + a.extra) for a in axes)
              for t, axes in analysis.shapes.items()}
    infos = {}
    order = []
    for einsum in cascade.einsums:
        key = einsum_key(analysis, einsum)
        if key.endswith(".init"):
            continue
        per_point, _per_output = einsum_profile(einsum)
        vars_ = einsum.iteration_space
        dense = math.prod(sizes[v.upper()] for v in vars_)
        if points is not None:
            pts = points.get(key, 0)
        else:
            small_sizes = scale.sizes
            small_dense = math.prod(small_sizes[v.upper()] for v in vars_)
            pts = round(dense * scale.points.get(key, 0) / small_dense) if small_dense else 0
        reads: dict = {}
        carried: dict = {}
        final: set = set()
        for acc in einsum.reads():
            vs = set()
            for idx in acc.indices:
                vs.update(index_vars(idx))
            reads.setdefault(acc.tensor, set()).update(vs)
            rec = recurrences.get(acc.tensor)
            if rec is not None:
                idx = acc.indices[rec[0]]
                if isinstance(idx, Name) and idx.is_index:
                    carried[acc.tensor] = True
                elif isinstance(idx, Name):
                    final.add(acc.tensor)
        infos[key] = EinsumInfo(key, einsum, vars_, tuple(einsum.reduced), einsum.reducer,
                                per_point, _exp_sub(einsum.body), pts, dense, reads,
                                einsum.output_vars, carried, final)
        order.append(key)
    _skip_empty_steps(infos, recurrences)
    prob = Problem(cascade, sizes, analysis, infos, tuple(order), shapes, recurrences)
    for key in order:
        prob.producer[infos[key].einsum.name] = key
        for t in infos[key].reads:
            prob.consumers.setdefault(t, []).append(key)
    return prob


_CACHE: dict = {}


def problem_for(cascade: Cascade, overrides: dict | None = None) -> Problem:
    """Memoised :func:`build_problem` (the mapper and the study evaluate many mappings)."""
    key = (id(cascade), tuple(sorted((overrides or {}).items())))
    hit = _CACHE.get(key)
    if hit is not None and hit[0] is cascade:
        return hit[1]
    prob = build_problem(cascade, overrides)
    if len(_CACHE) > 512:
        _CACHE.clear()
    _CACHE[key] = (cascade, prob)
    return prob
