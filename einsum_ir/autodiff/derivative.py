"""Symbolic partial derivatives of value expressions with respect to one tensor access.

``partial(expr, target)`` is the derivative of ``expr`` with respect to every occurrence of the
access ``target`` (a tensor read with given indices; ``X[i] * X[i]`` gives ``2 X[i]``, while
``X[i+1]`` is a different access). Non-smooth points follow one stated rule each:

* ``relu``, ``abs``, ``max``/``min`` and comparisons: the derivative at a tie or a kink is the one
  of the branch the interpreter takes (``max(a, b)`` is ``a`` when ``a >= b``; ``relu'(0) = 0``);
* ``floor``, ``ceil``, comparisons and logic are piecewise constant: derivative 0.
"""
from __future__ import annotations

import math

from ..errors import CascadeError
from ..ir import Access, Binary, Call, Expr, Name, Num, Unary
from .algebra import ONE, ZERO, add, call, compare, div, is_num, mul, neg, sub

_CONSTANT_FUNCS = {"floor", "ceil"}


def partial(expr: Expr, target: Access) -> Expr:
    """d expr / d target (an expression over the same reads)."""
    if isinstance(expr, (Num, Name)):
        return ZERO
    if isinstance(expr, Access):
        return ONE if expr == target else ZERO
    if isinstance(expr, Unary):
        return neg(partial(expr.operand, target)) if expr.op == "-" else ZERO
    if isinstance(expr, Binary):
        return _binary(expr, target)
    if isinstance(expr, Call):
        return _call(expr, target)
    raise CascadeError("cannot differentiate this expression", getattr(expr, "span", None))


def _binary(expr: Binary, target: Access) -> Expr:
    a, b, op = expr.lhs, expr.rhs, expr.op
    if op in ("<", "<=", ">", ">=", "==", "!=", "and", "or"):
        return ZERO
    da, db = partial(a, target), partial(b, target)
    if op == "+":
        return add(da, db)
    if op == "-":
        return sub(da, db)
    if op == "*":
        return add(mul(da, b), mul(a, db))
    if op == "/":
        # d(a/b) = da/b - a db / b^2
        return sub(div(da, b), div(mul(a, db), mul(b, b)))
    if op == "%":
        if not is_num(db, 0):
            raise CascadeError("the derivative of x % y with respect to y is not supported",
                               expr.span, "write the remainder of an index, or of a constant")
        return da
    raise CascadeError(f"cannot differentiate the operator {op!r}", expr.span)


def _call(expr: Call, target: Access) -> Expr:
    f, args = expr.func, expr.args
    if f in ("max", "min", "pow"):
        return _binary_call(expr, target)
    (x,) = args
    dx = partial(x, target)
    if is_num(dx, 0) or f in _CONSTANT_FUNCS:
        return ZERO
    return mul(_unary_derivative(expr, x), dx)


def _binary_call(expr: Call, target: Access) -> Expr:
    a, b = expr.args
    da, db = partial(a, target), partial(b, target)
    if expr.func == "pow":
        # d a^b = b a^(b-1) da + a^b log(a) db
        first = mul(mul(b, call("pow", a, sub(b, ONE))), da) if not is_num(da, 0) else ZERO
        second = mul(mul(expr, call("log", a)), db) if not is_num(db, 0) else ZERO
        return add(first, second)
    # max(a, b) is a where a >= b (ties go to the first argument); min likewise with <=. A
    # missing operand leaves the other one as the value (max and min are union operators), so
    # each weight starts from "the value is this operand" and takes away, with the union '+',
    # the points the other operand wins: where it is missing, nothing is taken away.
    wins_b = ">" if expr.func == "max" else "<"  # b > a: b is the max
    wins_a = ">=" if expr.func == "max" else "<="  # a >= b: a is the max, ties included
    is_a, is_b = compare("==", expr, a), compare("==", expr, b)
    weight_a = Binary("+", is_a, Unary("-", mul(is_a, compare(wins_b, b, a))))
    weight_b = Binary("+", is_b, Unary("-", mul(is_b, compare(wins_a, a, b))))
    return add(mul(weight_a, da) if not is_num(da, 0) else ZERO,
               mul(weight_b, db) if not is_num(db, 0) else ZERO)


def _unary_derivative(expr: Call, x: Expr) -> Expr:
    """f'(x) for the one-argument functions of the language."""
    f = expr.func
    if f == "exp":
        return expr
    if f == "log":
        return div(ONE, x)
    if f == "sqrt":
        return div(Num(0.5), expr)
    if f == "abs":
        return sub(compare(">", x, ZERO), compare("<", x, ZERO))
    if f == "relu":
        return compare(">", x, ZERO)
    if f == "sigmoid":
        return mul(expr, sub(ONE, expr))
    if f == "tanh":
        return sub(ONE, mul(expr, expr))
    if f == "elu":
        # 1 for x > 0, else exp(x); exp(min(x, 0)) never overflows on the branch not taken
        return add(compare(">", x, ZERO),
                   mul(compare("<=", x, ZERO), call("exp", call("min", x, ZERO))))
    if f == "silu":
        s = call("sigmoid", x)
        return mul(s, add(ONE, mul(x, sub(ONE, s))))
    if f == "softplus":
        return call("sigmoid", x)
    if f == "recip":
        return neg(call("recip", call("square", x)))
    if f == "square":
        return mul(Num(2), x)
    if f == "gelu":
        return _gelu_derivative(x)
    raise CascadeError(f"cannot differentiate {f}()", expr.span)


def _gelu_derivative(x: Expr) -> Expr:
    """The derivative of the tanh approximation the interpreter evaluates."""
    c = Num(math.sqrt(2 / math.pi))
    k = Num(0.044715)
    t = call("tanh", mul(c, add(x, mul(k, mul(x, mul(x, x))))))
    inner = mul(c, add(ONE, mul(Num(3 * 0.044715), mul(x, x))))
    return add(mul(Num(0.5), add(ONE, t)),
               mul(mul(Num(0.5), x), mul(sub(ONE, mul(t, t)), inner)))


def substitute(expr: Expr | None, reads: dict[str, Expr | str]) -> Expr | None:
    """``expr`` with reads of the named tensors replaced: by a constant expression, or by a read
    of another tensor with the same indices (a str)."""
    if expr is None or isinstance(expr, (Num, Name)):
        return expr
    if isinstance(expr, Access):
        if expr.tensor in reads:
            new = reads[expr.tensor]
            return Access(new, expr.indices, expr.span) if isinstance(new, str) else new
        return expr
    if isinstance(expr, Unary):
        return Unary(expr.op, substitute(expr.operand, reads), expr.span)
    if isinstance(expr, Binary):
        return _fold(Binary(expr.op, substitute(expr.lhs, reads), substitute(expr.rhs, reads),
                            expr.span))
    if isinstance(expr, Call):
        return Call(expr.func, tuple(substitute(a, reads) for a in expr.args), expr.span)
    return expr


def _fold(expr: Binary) -> Expr:
    if expr.op == "*":
        return mul(expr.lhs, expr.rhs)
    if expr.op == "/":
        return div(expr.lhs, expr.rhs)
    return expr


def replace_subexpr(expr: Expr, old: Expr, new: Expr) -> Expr:
    """``expr`` with every subexpression equal to ``old`` replaced by ``new``."""
    if expr == old:
        return new
    if isinstance(expr, Unary):
        return Unary(expr.op, replace_subexpr(expr.operand, old, new), expr.span)
    if isinstance(expr, Binary):
        return Binary(expr.op, replace_subexpr(expr.lhs, old, new),
                      replace_subexpr(expr.rhs, old, new), expr.span)
    if isinstance(expr, Call):
        return Call(expr.func, tuple(replace_subexpr(a, old, new) for a in expr.args), expr.span)
    return expr


def inline_read(expr: Expr | None, copy) -> Expr | None:
    """``expr`` with each read ``T[r1..rk]`` of the copy ``T[v1..vk] = U[...]`` replaced by ``U``
    at the copy's indices with each ``vi`` read as ``ri``."""
    if expr is None or isinstance(expr, (Num, Name)):
        return expr
    if isinstance(expr, Access):
        if expr.tensor != copy.name:
            return expr
        at = {v.name: r for v, r in zip(copy.output.indices, expr.indices, strict=True)}
        return Access(copy.body.tensor, tuple(at.get(i.name, i) for i in copy.body.indices),
                      expr.span)
    if isinstance(expr, Unary):
        return Unary(expr.op, inline_read(expr.operand, copy), expr.span)
    if isinstance(expr, Binary):
        return Binary(expr.op, inline_read(expr.lhs, copy), inline_read(expr.rhs, copy),
                      expr.span)
    if isinstance(expr, Call):
        return Call(expr.func, tuple(inline_read(a, copy) for a in expr.args), expr.span)
    return expr


def reindex(expr: Expr | None, var: str, new: Expr, keep: set[str]) -> Expr | None:
    """``expr`` with the index ``var`` read as ``new``, except inside reads of ``keep``."""
    if expr is None or isinstance(expr, Num):
        return expr
    if isinstance(expr, Name):
        return new if expr.name == var else expr
    if isinstance(expr, Access):
        if expr.tensor in keep:
            return expr
        return Access(expr.tensor, tuple(reindex(i, var, new, keep) for i in expr.indices),
                      expr.span)
    if isinstance(expr, Unary):
        return Unary(expr.op, reindex(expr.operand, var, new, keep), expr.span)
    if isinstance(expr, Binary):
        return Binary(expr.op, reindex(expr.lhs, var, new, keep),
                      reindex(expr.rhs, var, new, keep), expr.span)
    if isinstance(expr, Call):
        return Call(expr.func, tuple(reindex(a, var, new, keep) for a in expr.args), expr.span)
    return expr
