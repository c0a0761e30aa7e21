"""Which intermediates may hold a NaN an operation makes, and how memory holds their empty points.

In the interpreter a NaN an operation makes (``0 / 0``, ``log`` of a negative) is an empty point,
and emptiness propagates through maps; within one kernel the lowering tracks it as such
(``Tile.may_nan``). Through global memory a 0 would be read as a value, so an intermediate that
may hold such a NaN passes with NaN as its empty value (declared ``empty nan``): the writing kernel
stores the NaN as it is, and the reading kernel takes a NaN it loads for an empty point.
"""
from __future__ import annotations

import math

from einsum_ir import Cascade
from einsum_ir.ir import Access, Binary, Call, Expr, Num, Unary


def empty_in_memory(cascade: Cascade, tensor: str) -> float:
    """The value ``tensor``'s empty points have in memory between kernels: NaN where an
    operation may make one (:func:`may_make_nan`), else 0."""
    return math.nan if may_make_nan(cascade, tensor) else 0.0


def may_make_nan(cascade: Cascade, tensor: str) -> bool:
    """Whether an operation on the way to ``tensor`` may make a NaN (the interpreter's empty
    point, where its emptiness comes from values): a division or remainder by other than a
    nonzero constant, ``log``, ``sqrt``, or ``pow`` to other than an integer constant."""
    seen, todo = set(), [tensor]
    while todo:
        t = todo.pop()
        if t in seen:
            continue
        seen.add(t)
        for e in cascade.definitions(t):  # (a NaN in a ``where`` removes points, see
            # backends.triton.program.data_decided: it makes no NaN in the value)
            nodes = list(_values(e.body))
            if any(_makes_nan(n) for n in nodes):
                return True
            todo += [n.tensor for n in nodes if isinstance(n, Access)]
    return False


def _values(expr: Expr):
    """The nodes of ``expr`` that compute values: not the indices of its reads (integers)."""
    yield expr
    if isinstance(expr, Unary):
        yield from _values(expr.operand)
    elif isinstance(expr, Binary):
        yield from _values(expr.lhs)
        yield from _values(expr.rhs)
    elif isinstance(expr, Call):
        for arg in expr.args:
            yield from _values(arg)


def _makes_nan(node: Expr) -> bool:
    if isinstance(node, Binary) and node.op in ("/", "%"):
        return not (isinstance(node.rhs, Num) and node.rhs.value != 0)
    if isinstance(node, Call) and node.func == "pow":
        return not (isinstance(node.args[1], Num) and float(node.args[1].value).is_integer())
    return isinstance(node, Call) and node.func in ("log", "sqrt")
