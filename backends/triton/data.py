"""Data-dependent masks and gathers as tiles (the interpreter's rules: einsum_ir.data_masks).

* A comparison that reads a tensor (``where Adj[p,m] > 0``) compares the loaded or computed value
  tiles; a point where an operand is empty (a masked load, a ``where`` of its definition) compares
  false, so the validity terms of both operands are part of the predicate. The loop bounds never
  skip a block for such a predicate (``einsum_ir.affine.constraints_of`` gives no form for it).
* A gather ``K[Idx[p,j], e]`` loads ``K`` at the integer values of the index tile times the
  stride. The load is masked to indices inside the axis and to points where the index exists: an
  index outside the axis reads an empty point here, where the interpreter raises; the host
  checks index tensors that are inputs before the launch, as the interpreter does
  (``backends.triton.api``).
"""
from __future__ import annotations

from einsum_ir.data_masks import reads_tensors
from einsum_ir.ir import COMPARISONS, Binary, Expr

from .tile_ir import BinOp, Int, Op, scalar_test
from .tiles import Idx, Term, Tile, conj, ordered_terms


def _valid(gen, t: Tile, axes: tuple) -> list:
    """The validity conjuncts of ``t`` over ``axes`` (where its value exists)."""
    return [gen.bcast(tm.mask, tm.axes, axes) for tm in ordered_terms(t.terms)]


def value_predicate(gen, expr: Expr) -> Idx:
    """A predicate over tensor values as a boolean tile; false where an operand is empty."""
    if isinstance(expr, Binary) and expr.op in COMPARISONS:
        # (a max/min over no point, marked by its identity, is an empty operand: a term)
        a, b = gen.settle_empty(gen.eval_value(expr.lhs)), gen.settle_empty(gen.eval_value(expr.rhs))
        axes = gen.low.order(a.axes + b.axes)
        gen.need2d(axes, expr)
        x, y = gen.bcast(gen.f32(a), a.axes, axes), gen.bcast(gen.f32(b), b.axes, axes)
        parts = [BinOp(expr.op, x, y) if axes else scalar_test(BinOp(expr.op, x, y))]
        for t, v in ((a, x), (b, y)):
            if t.may_nan:  # a NaN is the interpreter's empty point: it compares false, also !=
                parts.append(BinOp("==", v, v))
    else:  # a value used as a truth value: non-zero where it exists
        a = gen.settle_empty(gen.eval_value(expr))
        axes, b = a.axes, a
        parts = [BinOp("!=", gen.f32(a), Int(0))]
    terms = a.terms | b.terms
    parts += [gen.bcast(tm.mask, tm.axes, axes) for tm in ordered_terms(terms)]
    variant = a.variant or b.variant or any(tm.variant for tm in terms)
    value = conj(parts)
    if not axes:
        return Idx(value, axes, variant)
    return Idx(gen.emit("data_mask", value, variant and gen.loop is not None), axes, variant)


def is_gather(index: Expr) -> bool:
    return reads_tensors(index)


def gather_index(gen, index: Expr, extent) -> tuple[Idx, Term]:
    """The integer positions of a gather index and the term "inside the axis, and the index
    exists" that masks the load."""
    t = gen.eval_value(index)
    variant = t.variant or any(tm.variant for tm in t.terms)
    memo = gen.memo(variant)
    key = ("gather", t.value, t.axes, extent)
    if key not in memo:
        in_loop = variant and gen.loop is not None
        pos = gen.emit("pos", Op("to_int", (t.value if t.kind != "f32" else gen.f32(t),)),
                       in_loop)
        inside = conj([BinOp(">=", pos, Int(0)), BinOp("<", pos, extent)]
                      + _valid(gen, t, t.axes))
        term = Term(gen.emit("in_gather", inside, in_loop), t.axes, variant)
        memo[key] = (Idx(pos, t.axes, variant), term)
    return memo[key]
