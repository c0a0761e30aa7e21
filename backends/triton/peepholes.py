"""The named peepholes of the Triton lowering, each a function of the tiles it rewrites.

Each is a rewrite of tile-IR nodes. They read the facts a :class:`~backends.triton.tiles.Tile`
carries (``lin``: a scaled value, ``diff``: a difference, ``max_of``: a running max, ``dot``: a
``tl.dot``), never the spelling:

* :func:`fold_exp2_scale` -- ``exp(s * c - m)`` as one ``exp2`` with the scale folded into the
  exponent (FlashAttention's ``qk_scale``);
* :func:`safe_running_max` -- ``s - m`` where ``m`` is the running max of ``s``'s row: ``m = -inf``
  only where the row's values are all -inf (or it has no point), so ``m -> 0`` there is exact and
  keeps ``-inf - m = -inf``;
* :func:`dot_accumulate` -- ``acc + tl.dot(a, b)`` accumulates in the dot;
* :func:`scaled_product` -- a product with a constant records the scale (``lin``) for the two
  above and keeps where the value is 0 / -inf.

The ``-inf`` at the source and the full-block skipping live with ``tl.dot`` (reads.py), the
dead-value removal in rules.py.
"""
from __future__ import annotations

from dataclasses import replace

from .render import LOG2E
from .tile_ir import BinOp, Call, Const, Dot, Node, Where
from .tiles import Tile, _bounded_by, _name_of, _simple


def fold_exp2_scale(gen, fn: str, t: Tile) -> Tile | None:
    """``exp(base * c - b) = exp2(base * (c * log2 e) - b * log2 e)``: one FMA per element."""
    if fn != "exp" or t.diff is None or not t.axes:
        return None
    a, b = t.diff
    if a.lin is None or a.axes != t.axes or len(b.axes) >= len(t.axes):
        return None
    base, c = a.lin
    y = BinOp("*", gen.f32(b), Const(LOG2E))
    yb = gen.bcast(y, b.axes, t.axes) if b.axes else y
    exponent = BinOp("-", BinOp("*", base, Const(c * LOG2E), wrap=False), yb, wrap=False)
    return Tile(Call("exp2", (exponent,)), t.axes, "f32", t.terms, t.ninf_terms, False, t.variant)


def safe_running_max(gen, a: Tile, b: Tile, ninf):
    """(b, the -inf set of a - b): ``b`` replaced by its safe form when it bounds ``a``'s row.
    ``b`` is -inf only where every value of the row is -inf (masked at the source, or an input
    that holds -inf, a float attention mask), so ``a - 0 = -inf`` there and ``exp`` gives 0
    where ``-inf - -inf`` would be NaN."""
    if (b.may_inf and len(b.axes) == len(a.axes) - 1
            and set(b.axes) < set(a.axes) and _bounded_by(a, b)):
        m = gen.f32(b)
        is_empty = BinOp("==", m, Const(float("-inf")), wrap=False)
        safe = gen.emit(f"{_name_of(b.value)}_safe", Where(is_empty, Const(0.0), m), b.variant)
        return replace(b, value=safe, may_inf=False, max_of=frozenset()), a.ninf_terms
    return b, ninf


def dot_accumulate(a: Tile, b: Tile, x: Node, y: Node, axes) -> Dot | None:
    """``tl.dot(p, q, acc)`` for ``acc + tl.dot(p, q)`` (either order), or None."""
    for d, other, oc in ((b, a, x), (a, b, y)):
        if d.dot is not None and tuple(d.axes) == tuple(axes) and \
                tuple(other.axes) == tuple(axes) and other.kind == "f32":
            return Dot(d.dot[0], d.dot[1], oc)
    return None


def scaled_product(a: Tile, b: Tile, code: Node, axes, terms, may_inf: bool, *,
                   zero=None) -> Tile:
    """``a * b``; when one side is a constant ``k`` the value records ``lin = (other, k)``. With
    ``zero`` (a division by a constant, given as its reciprocal ``b``) only ``a`` is scaled."""
    divide = zero is not None
    if zero is None:  # 0 * inf is NaN: a side's zeros hold only where the other side is finite
        zero = (a.zero_terms if not b.may_inf else frozenset()) | \
            (b.zero_terms if not a.may_inf else frozenset())
    variant = a.variant or b.variant
    pairs = ((a, b),) if divide else ((a, b), (b, a))
    for t, c in pairs:
        if t.axes and t.kind == "f32" and _simple(t.value) and not c.axes and c.const is not None:
            k = c.const
            return Tile(code, axes, "f32", terms, zero, may_inf, variant,
                        ninf_terms=t.ninf_terms if k > 0 else frozenset(),
                        max_of=t.max_of if k > 0 and not divide else frozenset(),
                        lin=(t.value, k))
    return Tile(code, axes, "f32", terms, zero, may_inf, variant)
