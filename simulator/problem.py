"""A cascade at fixed sizes, prepared for the cost model: shapes, recurrences, work per Einsum.

Counts come from :func:`einsum_ir.analysis.work.existence_counts` (exact under masks). Two choices of the
accelerator model are made here and documented in docs/accelerator.md:

* A constant scale hoisted out of a contraction (``/ sqrt(E)``) is folded into an operand and costs
  nothing on the array (the FuseMax artifact's cascades omit it). Other work that does not use the
  reduced indices is charged once per output point (``per_output``).
* Functions are counted by name (``tanh``); a unit that does not price the name runs them as
  ``other`` (:func:`einsum_ir.analysis.opclasses.resolve_named`).
* Initial values of recurrences (``RM[...,0] = -inf``) are register initialisations, not work.
* Data-dependent masks and gathers (:mod:`einsum_ir.analysis.data_counts`): the points are the
  analysis's counts (exact, top-k or gather counts, given densities, else upper bounds); the
  predicate's comparisons are work (``predicate``), the mask tensors it reads are read as any
  operand, and a tensor read through a gather moves the words the gather reads (``gathered``,
  see :func:`simulator.counts.group_traffic`).
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import cached_property, lru_cache

from einsum_ir import analyze
from einsum_ir.analysis.opclasses import einsum_profile
from einsum_ir.analysis.skipped_step import keeps_state
from einsum_ir.analysis.work import existence_counts
from einsum_ir.data_masks import reads_tensors
from einsum_ir.ir import Role
from einsum_ir.ir import Cascade, Einsum, Name, index_vars
from einsum_ir.sizes import resolve_sizes

from .fused import fused_patterns


@dataclass(frozen=True)
class EinsumInfo:
    """One Einsum of a problem: its counts at the problem's sizes and how it reads its operands.

    Everything else (iteration space, reduced indices, reducer) is the Einsum's own.
    """

    key: str
    einsum: Einsum
    per_point: Counter  # op class -> count per existing point
    fused: dict  # fused op (FUSED_OPS) -> patterns per point a unit with that op runs in one
    points: int  # existing points (masks applied)
    dense_points: int
    reads: dict  # tensor -> set of index variables used to read it
    carried: dict  # tensor -> True when read at the previous step of its recurrence
    final: set  # tensors whose final iterate is read (e.g. RNV[M1])
    per_output: Counter = field(default_factory=Counter)  # op -> count per existing output point
    out_points: int = 0  # existing output points
    predicate: Counter = field(default_factory=Counter)  # op -> evaluating a data-dependent mask

    @property
    def density(self) -> float:
        return self.points / self.dense_points if self.dense_points else 0.0

    @cached_property
    def vars(self) -> tuple:
        """The iteration space (index variables)."""
        return self.einsum.iteration_space

    @cached_property
    def out_vars(self) -> tuple:
        return self.einsum.output_vars

    @property
    def reduced(self) -> tuple:
        return tuple(self.einsum.reduced)

    @property
    def reducer(self) -> str | None:
        return self.einsum.reducer


@dataclass(frozen=True, eq=False)
class Problem:
    """A cascade at fixed sizes (hashed by identity: the cost model memoises per problem)."""

    cascade: Cascade
    sizes: dict
    analysis: object
    infos: dict  # key -> EinsumInfo (initial values excluded)
    order: tuple  # keys in program order
    shapes: dict  # tensor -> tuple of (rank, extent)
    recurrences: dict  # tensor -> (axis, var)
    consumers: dict  # tensor -> [keys]
    producer: dict  # tensor -> key
    # tensor -> (words its gathers read in one pass, the index variables that choose the rows)
    gathered: dict = field(default_factory=dict)
    data_kinds: dict = field(default_factory=dict)  # key -> how its points were counted
    data_notes: dict = field(default_factory=dict)  # key -> what the count assumed
    data_upper: dict = field(default_factory=dict)  # key -> the upper bound of its points

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

    def is_output(self, tensor: str) -> bool:
        return self.cascade.output(tensor) is not None


def _skip_empty_steps(infos: dict, recurrences: dict) -> dict:
    """A recurrence step where nothing from outside the recurrence exists (a fully masked key tile
    of a causal cascade) leaves the running state unchanged where every update keeps its state
    with those feeders empty (``einsum_ir.analysis.skipped_step``, the rule the GPU lowering's
    block skipping uses: a decay ``0.5 * T[n] + X`` changes the state on every step): the model
    does not run it. Einsums of the recurrence chain (updates, and Einsums reading a previous
    step) then cost the step density of the Einsums that feed the recurrence, at most their own.
    Returns the updated infos."""
    out = dict(infos)
    for var in {v for _, v in recurrences.values()}:
        chain = {k for k, i in infos.items()
                 if var in i.vars and (i.carried or i.einsum.name in recurrences)}
        feeders = [i for k, i in infos.items() if var in i.vars and k not in chain]
        if not feeders or not _skip_keeps_states(infos, chain, feeders, recurrences, var):
            continue
        step = max(i.density for i in feeders)
        for k in chain:
            info = out[k]
            if info.density > step:
                out[k] = replace(info, points=min(info.points, round(info.dense_points * step)))
    return out


def _skip_keeps_states(infos: dict, chain: set, feeders: list, recurrences: dict, var) -> bool:
    """Whether every update of the chain over ``var`` keeps its state in a step where no feeder
    has a point."""
    states = frozenset(t for t, (_, v) in recurrences.items() if v == var)
    within: dict = {}
    for i in infos.values():
        if var in i.vars:
            within.setdefault(i.einsum.output.tensor, []).append(i.einsum)

    def defs(tensor: str):
        found = within.get(tensor, ())
        return found[0] if len(found) == 1 else None

    empties = frozenset(i.einsum.name for i in feeders)
    return all(keeps_state(infos[k].einsum, states, empties, defs) for k in chain
               if infos[k].einsum.output.tensor in states)


def _reads(einsum: Einsum, recurrences: dict):
    """(tensor -> index variables it is read with, tensors read at the previous step of their
    recurrence, tensors whose final iterate is read)."""
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
    return reads, carried, final


def _existing_points(analysis, sizes: dict):
    """Existing points (``points``) and output points (``out_points``) per Einsum key: exact
    under masks, split tails and reads past an extent (counted from regions where the masks
    allow, whose cost does not grow with the sizes)."""
    return existence_counts(analysis, sizes)


def _gathered_words(cascade: Cascade, sizes: dict) -> dict:
    """Per gathered tensor: the words its gathers read, one per point of the gathering read's
    indices (``K[Idx[p,j],e]`` reads P x J x E words of K), and the variables of the index
    tensors' reads (p, j: they choose the rows)."""
    out: dict = {}
    for einsum in cascade.einsums:
        for acc in einsum.reads():
            if any(reads_tensors(i) for i in acc.indices):
                vs = {v for i in acc.indices for v in index_vars(i)}
                drivers = {v for i in acc.indices if reads_tensors(i) for v in index_vars(i)}
                words, seen = out.get(acc.tensor, (0, frozenset()))
                out[acc.tensor] = (words + math.prod(sizes[v.upper()] for v in vs),
                                   seen | drivers)
    return out


def build_problem(cascade: Cascade, overrides: dict | None = None) -> Problem:
    analysis = analyze(cascade)
    known = {d.name for d in cascade.sizes}
    overrides = {k: v for k, v in (overrides or {}).items() if k in known}
    sizes = resolve_sizes(cascade, overrides)
    counted = _existing_points(analysis, sizes)
    recurrences = {t: (r.axis, r.var) for t, r in analysis.recurrences.items()}
    shapes = {t: tuple((a.rank, sizes[a.rank] + a.extra) for a in axes)
              for t, axes in analysis.shapes.items()}
    infos = {}
    for einsum in cascade.einsums:
        if einsum.id.role is Role.INIT:
            continue
        key = str(einsum.id)
        per_point, per_output = einsum_profile(einsum, named=True, scale=False)
        vars_ = einsum.iteration_space
        dense = math.prod(sizes[v.upper()] for v in vars_)
        reads, carried, final = _reads(einsum, recurrences)
        infos[key] = EinsumInfo(key, einsum, per_point, fused_patterns(einsum.body),
                                counted.points.get(key, 0), dense, reads, carried, final,
                                per_output, counted.out_points.get(key, 0),
                                Counter(getattr(counted, "predicate_ops", {}).get(key, {})))
    infos = _skip_empty_steps(infos, recurrences)
    order = tuple(infos)
    producer = {infos[k].einsum.name: k for k in order}
    consumers: dict = {}
    for k in order:
        for t in infos[k].reads:
            consumers.setdefault(t, []).append(k)
    return Problem(cascade, sizes, analysis, infos, order, shapes, recurrences, consumers, producer,
                   _gathered_words(cascade, sizes), dict(getattr(counted, "kinds", {})),
                   dict(getattr(counted, "notes", {})), dict(getattr(counted, "upper", {})))


@lru_cache(maxsize=256)
def _problem(cascade: Cascade, name: str, overrides: tuple) -> Problem:
    return build_problem(cascade, dict(overrides))


def problem_for(cascade: Cascade, overrides: dict | None = None) -> Problem:
    """Memoised :func:`build_problem` (the mapper and the study evaluate many mappings)."""
    return _problem(cascade, cascade.name, tuple(sorted((overrides or {}).items())))


def clear_cache() -> None:
    """Forgets the memoised problems (benchmarks time a cold start)."""
    _problem.cache_clear()
