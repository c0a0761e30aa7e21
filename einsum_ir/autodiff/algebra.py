"""Builders of value expressions that fold the trivial cases (``0 * x``, ``1 * x``, ``x + 0``), so
that derived Einsums read like hand-written ones and stay products where the rule gives one."""
from __future__ import annotations

from ..ir import Binary, Call, Expr, Num, Unary

ZERO = Num(0)
ONE = Num(1)


def is_num(expr: Expr, value) -> bool:
    return isinstance(expr, Num) and not isinstance(expr.value, bool) and expr.value == value


def add(a: Expr, b: Expr) -> Expr:
    if is_num(a, 0):
        return b
    if is_num(b, 0):
        return a
    if isinstance(b, Unary) and b.op == "-":
        return sub(a, b.operand)
    return Binary("+", a, b)


def sub(a: Expr, b: Expr) -> Expr:
    if is_num(b, 0):
        return a
    if is_num(a, 0):
        return neg(b)
    return Binary("-", a, b)


def neg(a: Expr) -> Expr:
    if is_num(a, 0):
        return a
    if isinstance(a, Unary) and a.op == "-":
        return a.operand
    return Unary("-", a)


def mul(a: Expr, b: Expr) -> Expr:
    if is_num(a, 0) or is_num(b, 0):
        return ZERO
    if is_num(a, 1):
        return b
    if is_num(b, 1):
        return a
    if isinstance(a, Unary) and a.op == "-":
        return neg(mul(a.operand, b))
    if isinstance(b, Unary) and b.op == "-":
        return neg(mul(a, b.operand))
    return Binary("*", a, b)


def div(a: Expr, b: Expr) -> Expr:
    if is_num(a, 0):
        return ZERO
    if is_num(b, 1):
        return a
    if isinstance(a, Unary) and a.op == "-":
        return neg(div(a.operand, b))
    return Binary("/", a, b)


def call(func: str, *args: Expr) -> Expr:
    return Call(func, tuple(args))


def compare(op: str, a: Expr, b: Expr) -> Expr:
    """A comparison used as a value: 1 where it holds, else 0."""
    return Binary(op, a, b)
