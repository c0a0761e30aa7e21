"""Which intermediates may hold a NaN an operation makes, and how memory holds their empty points.

In the interpreter a NaN an operation makes (``0 / 0``, ``log`` of a negative) is an empty point,
and emptiness propagates through maps; within one kernel the lowering tracks it as such
(``Tile.may_nan``). Through global memory a 0 would be read as a value, so an intermediate that
may hold such a NaN passes with NaN as its empty value (declared ``empty nan``): the writing kernel
stores the NaN as it is, and the reading kernel takes a NaN it loads for an empty point.
"""
from __future__ import annotations

import math
from functools import lru_cache

from einsum_ir import Cascade
from einsum_ir.ir import Access, Binary, Call, Expr, Num, accesses, children, walk


def empty_in_memory(cascade: Cascade, tensor: str) -> float:
    """The value ``tensor``'s empty points have in memory between kernels: NaN where an
    operation may make one (:func:`may_make_nan`), else 0."""
    return math.nan if may_make_nan(cascade, tensor) else 0.0


def may_make_nan(cascade: Cascade, tensor: str) -> bool:
    """Whether an operation on the way to ``tensor`` may make a NaN (the interpreter's empty
    point, where its emptiness comes from values): a division or remainder by a tensor's value
    (a divisor made of sizes, ``sqrt(E)``, is a positive constant), ``log``, ``sqrt``, or ``pow`` to other than an integer constant."""
    seen, todo = set(), [tensor]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for e in cascade.definitions(t):  # (a NaN in a ``where`` removes points, see
            # backends.triton.program.data_decided: it makes no NaN in the value)
            nodes = list(walk(e.body, indices=False))
            if any(_makes_nan(n) or _infinities_meet(cascade, n) for n in nodes):
                return True
            todo += [n.tensor for n in nodes if isinstance(n, Access)]
    return False


def _makes_nan(node: Expr) -> bool:
    if not accesses(node):  # a constant of sizes: sqrt(E)
        return False
    if isinstance(node, Binary) and node.op in ("/", "%"):  # by what may be 0: a tensor's value
        return isinstance(node.rhs, Num) and node.rhs.value == 0 or bool(accesses(node.rhs))
    if isinstance(node, Call) and node.func == "pow":
        return not (isinstance(node.args[1], Num) and float(node.args[1].value).is_integer())
    return isinstance(node, Call) and node.func in ("log", "sqrt")


def _infinities_meet(cascade: Cascade, node: Expr) -> bool:
    """``inf - inf`` (or ``inf + -inf``) and ``0 * inf``: a sum or difference of two values that
    may be infinite, a product with one."""
    if not isinstance(node, Binary) or node.op not in ("+", "-", "*"):
        return False
    lhs, rhs = may_be_infinite(cascade, node.lhs), may_be_infinite(cascade, node.rhs)
    return (lhs or rhs) if node.op == "*" else (lhs and rhs)


def may_be_infinite(cascade: Cascade, expr: Expr) -> bool:
    """Whether ``expr`` may be infinite by the cascade's meaning: an infinite literal, or a
    division by other than a nonzero constant, on the way to it (not an overflow)."""
    return _may_be_infinite(expr, _infinite_tensors(cascade))


def _may_be_infinite(expr: Expr, infinite: frozenset) -> bool:
    if isinstance(expr, Num):
        return math.isinf(float(expr.value))
    if isinstance(expr, Access):
        return expr.tensor in infinite
    if isinstance(expr, Binary) and _makes_nan(expr) and expr.op in ("/", "%"):
        return True
    return any(_may_be_infinite(n, infinite) for n in children(expr, indices=False))


@lru_cache(maxsize=64)
def _infinite_tensors(cascade: Cascade) -> frozenset:
    """The tensors that may be infinite: the least fixed point over the definitions (a
    recurrence is infinite where its initial value or an update may be)."""
    infinite: frozenset = frozenset()
    while True:
        grown = infinite | {e.name for e in cascade.einsums if _may_be_infinite(e.body, infinite)}
        if grown == infinite:
            return infinite
        infinite = frozenset(grown)

