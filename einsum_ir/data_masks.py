"""Predicates over tensor values (data-dependent masks) and gathers through index tensors, for
the interpreter.

``where S[p,m] > T[p] and m <= p``: a comparison that reads a tensor compares values (real
arithmetic, as in a value expression); one that does not is integer index arithmetic, as in every
predicate. A comparison whose operand is empty at a point is false there, so the point does not
exist; ``and``, ``or`` and ``not`` combine the truth values. Top-k is this with a count:
``C[p,m] = sum[m2] (S[p,m2] > S[p,m])`` then ``... where C[p,m] < K``.

A gather ``K[b,h,Idx[b,h,p,j],e]`` reads ``K`` at the integer values of ``Idx`` (an index
expression may combine them with index arithmetic: ``Idx[p,j] * W + w``). A value that is not an
integer, or one outside the axis it indexes, is an error naming the access (bounds are checked,
not turned into empty points as for affine reads); an empty point of ``Idx`` reads an empty
point.
"""
from __future__ import annotations

import numpy as np

from .errors import CascadeError
from .ir import COMPARISONS, Access, Binary, Expr, Unary, walk
from .labelled import INT64_MAX, LArr, align, union_labels


def reads_tensors(expr: Expr | None) -> bool:
    return expr is not None and any(isinstance(n, Access) for n in walk(expr))


def eval_mask(ev, expr: Expr) -> LArr:
    """The predicate ``expr`` as a labelled bool array (every point has a truth value)."""
    if not reads_tensors(expr):
        return ev.eval_pred(expr)
    if isinstance(expr, Unary) and expr.op == "not":
        inner = eval_mask(ev, expr.operand)
        return LArr(inner.labels, ~np.asarray(inner.values, dtype=bool))
    if isinstance(expr, Binary) and expr.op in ("and", "or"):
        a, b = eval_mask(ev, expr.lhs), eval_mask(ev, expr.rhs)
        labels = union_labels(a.labels, b.labels)
        x, y = align(a, labels)[0].astype(bool), align(b, labels)[0].astype(bool)
        return LArr(labels, (x & y) if expr.op == "and" else (x | y))
    if isinstance(expr, Binary) and expr.op in COMPARISONS:
        out = ev.eval_value(expr)  # 0/1 where both operands exist
        truth = np.asarray(out.values) != 0
        if out.exists is not None:
            truth = truth & np.asarray(out.exists)
        return LArr(out.labels, truth)
    out = ev.eval_value(expr)  # a value used as a truth value: non-zero where it exists
    truth = np.asarray(out.values) != 0
    return LArr(out.labels, truth if out.exists is None else truth & np.asarray(out.exists))


def gather_index(ev, access: Access, axis: int, index: Expr, extent: int) -> LArr:
    """The integer positions ``index`` (which reads a tensor) gives along ``axis`` of
    ``access``, with the existence of the tensor values it read."""
    out = ev.eval_value(index)
    values = np.asarray(out.values, dtype=np.float64)
    present = np.ones(values.shape, dtype=bool) if out.exists is None else \
        np.broadcast_to(out.exists, values.shape)
    live = values[present]
    bad = ~np.isfinite(live) | (live != np.round(live)) | (np.abs(live) > INT64_MAX / 2)
    if bad.any():
        raise CascadeError(f"{access.tensor}: axis {axis + 1} is indexed by a tensor value that is "
                           f"not an integer ({float(live[bad][0])!r})", index.span,
                           "an index tensor holds integers (positions along the axis it indexes)")
    ints = np.where(present, values, 0).astype(np.int64)
    outside = present & ((ints < 0) | (ints >= extent))
    if outside.any():
        raise CascadeError(f"{access.tensor}: index {int(ints[outside][0])} is outside axis "
                           f"{axis + 1} (extent {extent})", index.span,
                           "a gather's positions must lie within the axis it indexes")
    return LArr(out.labels, ints, None if out.exists is None else np.asarray(present))


def evaluated(analysis, sizes, inputs):
    """The interpreter's evaluator after one run on ``inputs`` at ``sizes``: the values and the
    existence of every tensor, for analyses that decide data-dependent masks with the data."""
    from .budget import check_budget
    from .inputs import input_array, input_shapes
    from .interpreter import _Evaluator

    cascade = analysis.cascade
    check_budget(analysis, sizes, 8)
    ev = _Evaluator(analysis, sizes, np.dtype(np.float64))
    for name, shape in input_shapes(cascade, sizes).items():
        ev.store[name] = [input_array(cascade, name, shape, inputs, np.dtype(np.float64)), None]
    ev.run()
    return ev
