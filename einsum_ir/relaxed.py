"""Necessary linear conditions for comparisons of index expressions with floor division and
modulo by constants (``abs(p / X - m / X) <= R``: 2-D neighbourhoods, blocks, grids).

``x / c`` lies in ``[(x - c + 1) / c, x / c]`` and ``x % c`` in ``[0, c - 1]``; replacing each by
the end that keeps a comparison true gives a linear form that holds wherever the comparison does
(a superset of its points, scaled by the divisors' common multiple so that it stays integral).
Loop bounds may visit a superset of the blocks a predicate meets, so the GPU lowering uses these;
anything that needs the exact set (masks, counts) does not.
"""
from __future__ import annotations

import math
from typing import Callable

from .affine import Affine, affine_of
from .ir import Binary, Expr, Unary

Baked = Callable[[str], "int | None"]


def relaxed_le(f: Expr, baked: Baked, strict: bool = False) -> Affine | None:
    """A linear form ``g`` with ``g <= 0`` wherever ``f <= 0`` (``f < 0`` with ``strict``);
    None where ``f`` has a part this cannot bound (a product of indices, a divisor that is not
    a compile-time constant)."""
    scale = _divisors_lcm(f, baked)
    if scale is None:
        return None
    low = _bound(f, scale, True, baked)
    if low is None:
        return None
    return low + Affine(const=scale) if strict else low


def _divisors_lcm(expr: Expr, baked: Baked) -> int | None:
    out = 1
    stack = [expr]
    while stack:
        x = stack.pop()
        if isinstance(x, Binary):
            if x.op in ("/", "%"):
                c = _constant(x.rhs, baked)
                if c is None or c <= 0:
                    return None
                out = math.lcm(out, c)
            stack += [x.lhs, x.rhs]
        elif isinstance(x, Unary):
            stack.append(x.operand)
    return out


def _constant(expr: Expr, baked: Baked) -> int | None:
    form = affine_of(expr, baked)
    return form.const if form is not None and form.is_constant else None


def _bound(expr: Expr, s: int, lower: bool, baked: Baked) -> Affine | None:
    """A lower (or upper) bound of ``s * expr``, linear in the indices (``s`` a multiple of every
    divisor in ``expr``)."""
    exact = affine_of(expr, baked)
    if exact is not None:
        return exact.scale(s)
    if isinstance(expr, Unary) and expr.op == "-":
        inner = _bound(expr.operand, s, not lower, baked)
        return None if inner is None else -inner
    if not isinstance(expr, Binary):
        return None
    if expr.op in ("+", "-"):
        a = _bound(expr.lhs, s, lower, baked)
        b = _bound(expr.rhs, s, lower if expr.op == "+" else not lower, baked)
        return None if a is None or b is None else (a + b if expr.op == "+" else a - b)
    if expr.op == "*":
        for k, other in ((_constant(expr.lhs, baked), expr.rhs), (_constant(expr.rhs, baked), expr.lhs)):
            if k is not None:
                inner = _bound(other, s, lower if k >= 0 else not lower, baked)
                return None if inner is None else inner.scale(k)
        return None
    c = _constant(expr.rhs, baked)
    if c is None or c <= 0 or s % c:
        return None
    if expr.op == "/":  # floor(x / c) in [(x - c + 1) / c, x / c]
        inner = _bound(expr.lhs, s // c, lower, baked)
        return None if inner is None else (inner - Affine(const=(s // c) * (c - 1)) if lower
                                           else inner)
    if expr.op == "%":  # x % c in [0, c - 1]
        return Affine(const=0 if lower else s * (c - 1))
    return None



