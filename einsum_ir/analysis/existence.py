"""Which points exist: the structural sparsity of every tensor under predicates and split tails.

The reference interpreter decides existence while it computes values. The analyses need the same
decision without the values, for large sizes: this module propagates boolean *existence masks*
only, with the interpreter's rules (stated in the README's language section):

* a ``where`` predicate removes points from an Einsum's iteration space;
* ``+``, ``-``, ``max`` and ``min`` keep the points either operand has (union; for ``+`` and ``-``
  an operand that does not cover the other's indices adds no points, ``exprs.coverage``); every
  other operator and function keeps the points all its operands have (intersection);
* a read outside a tensor's extent (the tail of a split that does not divide its rank) is empty;
* a reduction's output point exists when any of its reduced points exists.

Masks are kept over the index variables that actually carry structure (those of predicates and of
non-trivial index expressions); every other variable is dense and is accounted for by multiplying
with its extent. A causal cascade therefore costs one P x M boolean array per masked tensor, never
an array over the full B x H x P x M x E iteration space, and never a Python loop over points.
Recurrences are stepped along their iterative rank (one vectorised step per tile), as the
interpreter steps them.

Value-dependent emptiness (``-inf - -inf``) is not modelled: the analysis is structural. Masks
that read tensors and gathers through index tensors are decided by :class:`DataExistence` from the
values of one interpreter run (``count_work(..., inputs=...)``); without values,
:mod:`einsum_ir.analysis.data_counts` counts a structural rewrite of the cascade instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ..errors import CascadeError
from ..exprs import coverage
from ..data_masks import eval_mask, evaluated, reads_tensors
from ..ir import Access, Binary, Call, Einsum, Expr, Name, Num, Unary
from ..labelled import IndexEvaluator, LArr, align, ensure_fits, union_labels
from ..verifier import Analysis

_UNION = {"+", "-", "max", "min"}


def _full_is_none(mask: "Mask | None") -> "Mask | None":
    """A mask under which every point exists is no mask (the dense case)."""
    return None if mask is not None and bool(np.all(mask.values)) else mask


@dataclass(frozen=True)
class Mask:
    """A boolean array over named index variables (one full-extent axis per label)."""

    labels: tuple[str, ...]
    values: np.ndarray


class ExistenceEvaluator:
    """Propagates existence masks through a verified cascade for given sizes.

    After :meth:`run`, ``points[key]`` is the number of existing points of each Einsum's iteration
    space (summed over the steps of a recurrence), ``out_points[key]`` the number of output points
    it writes, and ``dense[key]`` whether every point of its iteration space exists.
    """

    method = "dense"  # how the points are counted (see einsum_ir.analysis.work.count_work)

    def __init__(self, analysis: Analysis, sizes: Mapping[str, int]):
        self.a = analysis
        self.c = analysis.cascade
        self.sizes = dict(sizes)
        self.store: dict[str, np.ndarray | None] = {d.name: None for d in self.c.inputs}
        self.fixed: dict[str, int] = {}
        self.points: dict[str, int] = {}
        self.out_points: dict[str, int] = {}
        self.dense: dict[str, bool] = {}
        self.bounded: dict[str, int] = {}  # every count is exact here (see region_count)
        self.bounded_out: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers
    def extent(self, var: str) -> int:
        return self.sizes[var.upper()]

    def axis_extents(self, tensor: str) -> tuple[int, ...]:
        return tuple(self.sizes[a.rank] + a.extra for a in self.a.shapes[tensor])

    def _full(self, mask: Mask, labels: tuple[str, ...]) -> np.ndarray:
        """``mask`` transposed and broadcast to full extents over ``labels``."""
        perm = [mask.labels.index(l) for l in labels if l in mask.labels]
        values = np.transpose(mask.values, perm) if perm != list(range(len(perm))) else mask.values
        shape = [self.extent(l) if l in mask.labels else 1 for l in labels]
        values = values.reshape(shape)
        ensure_fits([self.extent(l) for l in labels], 1, "an existence mask")
        return np.broadcast_to(values, tuple(self.extent(l) for l in labels))

    def _int(self, expr: Expr) -> tuple[tuple[str, ...], np.ndarray]:
        """Integer index arithmetic (checked int64, ``/`` floors), as labelled arrays."""
        arr = IndexEvaluator(self.sizes, self.fixed)(expr)
        return arr.labels, arr.values

    @staticmethod
    def _align(part, labels) -> np.ndarray:
        return align(LArr(*part), labels)[0]

    def _mask(self, part) -> Mask:
        labels, values = part
        values = np.asarray(values, dtype=bool)
        target = tuple(self.extent(l) for l in labels)
        return Mask(labels, np.broadcast_to(values.reshape(values.shape or ()), target)
                    if labels else values)

    # ------------------------------------------------------------------ existence
    def _and(self, a: Mask | None, b: Mask | None) -> Mask | None:
        if a is None:
            return b
        if b is None:
            return a
        labels = union_labels(a.labels, b.labels)
        return Mask(labels, self._full(a, labels) & self._full(b, labels))

    def _or(self, a: Mask | None, b: Mask | None) -> Mask | None:
        if a is None or b is None:
            return None
        labels = union_labels(a.labels, b.labels)
        return Mask(labels, self._full(a, labels) | self._full(b, labels))

    def exists(self, expr: Expr | None) -> Mask | None:
        """The points at which ``expr`` has a value (None: all of them)."""
        if expr is None or isinstance(expr, (Num, Name)):
            return None
        if isinstance(expr, Access):
            return self.read(expr)
        if isinstance(expr, Unary):
            return self.exists(expr.operand)
        if isinstance(expr, Binary):
            if expr.op in ("and", "or"):
                return None
            a, b = self.exists(expr.lhs), self.exists(expr.rhs)
            if expr.op in ("+", "-"):
                cover = coverage(expr.lhs, expr.rhs)
                if not all(cover):  # a broadcast operand creates no points (exprs.coverage)
                    return _full_is_none(a if cover[0] else b if cover[1] else self._and(a, b))
            combine = self._or if expr.op in _UNION else self._and
            return combine(a, b)
        if isinstance(expr, Call):
            masks = [self.exists(arg) for arg in expr.args]
            if len(masks) == 1:
                return masks[0]
            combine = self._or if expr.func in _UNION else self._and
            return combine(*masks)
        raise TypeError(f"not an expression: {expr!r}")

    def predicate(self, expr: Expr) -> Mask:
        labels, values = self._int(expr)
        values = np.asarray(values, dtype=bool)
        if not labels:
            return Mask((), values)
        return self._mask((labels, values))

    def read(self, access: Access) -> Mask | None:
        stored = self.store[access.tensor]
        extents = self.axis_extents(access.tensor)
        index_parts = []  # per axis: labelled index array, or None when no gather is needed
        valid = None
        for k, index in enumerate(access.indices):
            stored_axis = stored is not None and stored.shape[k] > 1
            trivial = (isinstance(index, Name) and index.is_index and index.name not in self.fixed
                       and self.extent(index.name) <= extents[k])
            if trivial and not stored_axis:
                index_parts.append(None)
                continue
            part = self._int(index)
            index_parts.append(part)
            if not trivial:
                ok = (part[0], (part[1] >= 0) & (part[1] < extents[k]))
                valid = self._and(valid, self._mask(ok))
        if stored is None:
            return valid
        labels = union_labels(*(p[0] for p in index_parts if p is not None))
        idx = []
        for k, part in enumerate(index_parts):
            if stored.shape[k] == 1:
                idx.append(np.zeros([1] * len(labels), dtype=np.intp))
            else:
                arr = self._align(part, labels)
                idx.append(np.clip(arr, 0, stored.shape[k] - 1))
        gathered = stored[tuple(idx)] if idx else stored
        if not labels:
            gathered = np.asarray(gathered).reshape(())
            if not gathered:
                return Mask((), np.asarray(False))
            return valid
        mask = self._mask((labels, gathered))
        return self._and(mask, valid)

    # ------------------------------------------------------------------ einsums
    def run(self) -> "ExistenceEvaluator":
        for einsum, fixed in self.a.schedule(self.sizes):
            self.fixed = fixed
            self.run_einsum(einsum)
        self.fixed = {}
        return self

    def run_einsum(self, einsum: Einsum) -> None:
        key = str(einsum.id)  # the report label: T, or T.init for an initial value
        mask = self.exists(einsum.body)
        if einsum.where is not None:
            mask = self._and(mask, self.predicate(einsum.where))
        space = [v for v in einsum.iteration_space if v not in self.fixed]
        out_vars = [v for v in einsum.output_vars if v not in self.fixed]
        full = math.prod(self.extent(v) for v in space)
        if mask is None:
            points, out, out_points = full, None, math.prod(self.extent(v) for v in out_vars)
        elif not mask.labels:
            points = full if bool(mask.values) else 0
            out = None if points else Mask((), np.asarray(False))
            out_points = math.prod(self.extent(v) for v in out_vars) if points else 0
        else:
            rest = math.prod(self.extent(v) for v in space if v not in mask.labels)
            points = int(np.count_nonzero(mask.values)) * rest
            reduce_axes = tuple(k for k, l in enumerate(mask.labels) if l not in out_vars)
            kept = tuple(l for l in mask.labels if l in out_vars)
            values = mask.values.any(axis=reduce_axes) if reduce_axes else mask.values
            out = Mask(kept, values)
            out_points = (int(np.count_nonzero(values))
                          * math.prod(self.extent(v) for v in out_vars if v not in kept))
        self.points[key] = self.points.get(key, 0) + points
        self.out_points[key] = self.out_points.get(key, 0) + out_points
        self.dense[key] = self.dense.get(key, True) and points == full
        self._write(einsum, out)

    def _write(self, einsum: Einsum, out: Mask | None) -> None:
        tensor = einsum.name
        recurrent = tensor in self.a.recurrences
        if not recurrent and out is None:
            self.store[tensor] = None
            return
        extents = self.axis_extents(tensor)
        if recurrent and self.store.get(tensor) is None:
            axis = self.a.recurrences[tensor].axis
            shape = [1] * len(extents)
            shape[axis] = extents[axis]
            self.store[tensor] = np.zeros(shape, dtype=bool)
        current = self.store.get(tensor)
        if current is None:
            current = np.zeros([1] * len(extents), dtype=bool)
        slots = self.a.output_slots(einsum, self.fixed, self.sizes)
        slicer = [slot for slot, _ in slots]
        labels = [label for _, label in slots if label is not None]
        # An axis stays broadcast (size 1) only where a plain index covers it whole and the
        # Einsum's existence does not vary along it.
        needs_full = [label is None or not isinstance(index, Name)
                      or self.extent(label) != extents[k]
                      or (out is not None and label in out.labels)
                      for k, ((_, label), index) in enumerate(zip(slots, einsum.output.indices, strict=True))]
        shape = tuple(extents[k] if needs_full[k] or current.shape[k] > 1 else 1
                      for k in range(len(extents)))
        if shape != current.shape:
            current = np.broadcast_to(current, shape).copy()
        target = tuple(s if shape[k] > 1 or not isinstance(s, slice) else slice(None)
                       for k, s in enumerate(slicer))
        # assigned through ``current[target]``: a target of fixed indices only is one element,
        # and indexing would give a scalar copy, not a view
        if out is None:
            current[target] = True
        elif not out.labels:
            current[target] = bool(out.values)
        else:
            full = self._full(out, tuple(labels))
            region_shape = np.shape(current[target])
            for i in range(len(labels)):
                if region_shape[i] == 1 and full.shape[i] > 1:
                    full = full.take([0], axis=i)
            current[target] = full
        self.store[tensor] = current


class DataExistence(ExistenceEvaluator):
    """Existence with the data: predicates that read tensors and gather indices are evaluated on
    the values of one interpreter run (``values``: the interpreter's evaluator after its run), so
    the points are exact for those inputs."""

    method = "dense with data"

    def __init__(self, analysis: Analysis, sizes: Mapping[str, int], values):
        super().__init__(analysis, sizes)
        self.values = values

    def predicate(self, expr: Expr) -> Mask:
        if not reads_tensors(expr):
            return super().predicate(expr)
        self.values.fixed = self.fixed
        truth = eval_mask(self.values, expr)
        if not truth.labels:
            return Mask((), np.asarray(bool(truth.values)))
        return self._mask((truth.labels, truth.values))

    def _index_values(self, expr: Expr) -> LArr:
        self.values.fixed = self.fixed
        return self.values.eval_value(expr)

    def _int(self, expr: Expr) -> tuple[tuple[str, ...], np.ndarray]:
        if not reads_tensors(expr):
            return super()._int(expr)
        out = self._index_values(expr)  # integers within the axis: the interpreter checked them
        values = np.asarray(out.values, dtype=np.float64)
        if out.exists is not None:
            values = np.where(out.exists, values, 0)
        return out.labels, values.astype(np.int64)

    def read(self, access: Access) -> Mask | None:
        mask = super().read(access)
        for index in access.indices:  # an empty point of an index tensor reads an empty point
            if reads_tensors(index):
                out = self._index_values(index)
                if out.exists is not None and out.labels:
                    present = np.broadcast_to(out.exists, np.shape(out.values))
                    mask = self._and(mask, self._mask((out.labels, present)))
        return mask


def existence(analysis: Analysis, sizes: Mapping[str, int], inputs=None) -> ExistenceEvaluator:
    """Runs the existence propagation and returns the evaluator (masks in ``store``). With
    ``inputs`` (name -> array), data-dependent masks and gathers are decided on those values."""
    from .data_atoms import is_data_dependent

    if inputs is None and is_data_dependent(analysis.cascade):
        raise CascadeError("existence without the data cannot decide a data-dependent mask or "
                           "a gather", hint="count with einsum_ir.analysis.work.existence_counts "
                           "(bounds and estimates), or pass inputs")
    try:
        if inputs is not None:
            values = evaluated(analysis, sizes, inputs)
            return DataExistence(analysis, sizes, values).run()
        return ExistenceEvaluator(analysis, sizes).run()
    except CascadeError as exc:
        raise exc.with_source(analysis.cascade.source) from None
