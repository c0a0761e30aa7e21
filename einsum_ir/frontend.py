"""Front-end rewrites of parsed statements before they become IR: named index expressions
(``let y = p / WI``) are substituted where they are used, then each Einsum is built (an Einsum
without a reducer sums the indices its output lacks, computed after substitution).

A ``let`` is sugar: the IR holds the expanded expressions, so every stage sees ordinary index
arithmetic and the printer writes the expansion (which parses back to an equal IR). A let is an
index expression (``/`` floors) wherever it is used: in a value its ``/`` becomes
``floor(a / b)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .errors import CascadeError
from .ir import Access, Binary, Call, Einsum, Expr, Name, Num, Span, Unary, index_vars, walk


@dataclass(frozen=True)
class Let:
    """``let NAME = expr``: an index expression named for reuse (front end only)."""

    name: str
    value: Expr
    span: Span | None = None


@dataclass(frozen=True)
class RawEinsum:
    """An Einsum as written, before lets are substituted."""

    output: Access
    rhs: object  # an Expr, or ("reduction", reducer, names, body, spans)
    where: Expr | None
    span: Span | None


def empty_value(expr: Expr, span: Span | None) -> float:
    """The constant of ``output T[...] empty VALUE``: a number, ``inf`` or their negation."""
    sign = 1.0
    node = expr
    while isinstance(node, Unary) and node.op == "-":
        sign, node = -sign, node.operand
    if not isinstance(node, Num):
        raise CascadeError("the value of empty points must be a number", getattr(expr, "span", span),
                           "for example: output LSE[b,h,p] empty -inf")
    return sign * float(node.value)


def substitute(expr: Expr | None, lets: dict[str, Let], value: bool = False) -> Expr | None:
    """``expr`` with every let name replaced by its expression. In a value (``value``, outside
    the indices of an access) ``/`` is real division, so a let's integer ``/`` is written there
    as ``floor(a / b)``, its meaning as an index expression."""
    if expr is None or not lets:
        return expr
    if isinstance(expr, Name):
        let = lets.get(expr.name)
        if let is None:
            return expr
        return _floored(let.value) if value else let.value
    if isinstance(expr, Access):
        return replace(expr, indices=tuple(substitute(i, lets) for i in expr.indices))
    if isinstance(expr, Unary):
        return replace(expr, operand=substitute(expr.operand, lets, value))
    if isinstance(expr, Binary):
        return replace(expr, lhs=substitute(expr.lhs, lets, value),
                       rhs=substitute(expr.rhs, lets, value))
    if isinstance(expr, Call):
        return replace(expr, args=tuple(substitute(a, lets, value) for a in expr.args))
    return expr


def _floored(expr: Expr) -> Expr:
    """An integer index expression as a value expression of the same value."""
    if isinstance(expr, Binary):
        out = replace(expr, lhs=_floored(expr.lhs), rhs=_floored(expr.rhs))
        return Call("floor", (out,), span=expr.span) if expr.op == "/" else out
    if isinstance(expr, Unary):
        return replace(expr, operand=_floored(expr.operand))
    if isinstance(expr, Call):
        return replace(expr, args=tuple(_floored(a) for a in expr.args))
    return expr


def resolve_lets(lets: list[Let], index_names: set[str]) -> dict[str, Let]:
    """Checks each let and expands earlier lets in its expression (a let may use earlier ones)."""
    out: dict[str, Let] = {}
    for let in lets:
        if not let.name[0].islower():
            raise CascadeError(f"let {let.name}: the name of an index expression is lower case",
                               let.span, f"write let {let.name.lower()} = ...")
        if let.name in out:
            raise CascadeError(f"let {let.name} is defined twice", let.span, "keep one definition")
        if let.name in index_names:
            raise CascadeError(f"let {let.name}: {let.name} is already the index of rank "
                               f"{let.name.upper()}", let.span, "choose another name")
        for node in walk(let.value):
            bad = isinstance(node, Access) or (isinstance(node, Call) and node.func not in
                                                ("abs", "min", "max"))
            if bad or (isinstance(node, Num) and isinstance(node.value, float)
                       and not (math.isfinite(node.value) and node.value.is_integer())):
                raise CascadeError(f"let {let.name}: an index expression is integer arithmetic "
                                   "of indices and sizes", getattr(node, "span", let.span),
                                   "use index variables, sizes, integers, + - * / %, abs, min, "
                                   "max and comparisons")
        out[let.name] = replace(let, value=substitute(let.value, out))
    return out


def build_einsum(raw: RawEinsum, lets: dict[str, Let]) -> Einsum:
    for index in raw.output.indices:
        if isinstance(index, Name) and index.name in lets:
            raise CascadeError(f"{index.name} is a named index expression (let); it cannot name "
                               f"an axis of {raw.output.tensor}", index.span,
                               "index the output by index variables and use the let on the "
                               "right-hand side or in the predicate")
    output = substitute(raw.output, lets)
    where = substitute(raw.where, lets)
    if isinstance(raw.rhs, tuple):
        _, reducer, reduced, body, spans = raw.rhs
        for name, span in zip(reduced, spans, strict=True):
            if name in lets:
                raise CascadeError(f"{reducer}[{name}]: {name} is a named index expression "
                                   "(let), not an index variable", span,
                                   "reduce over the index variables it uses")
        return Einsum(output, substitute(body, lets, True), reducer, reduced, where,
                      span=raw.span)
    body = substitute(raw.rhs, lets, True)
    # A plain Einsum: indices missing from the output are summed, as in numpy.einsum.
    out_vars = set()
    for index in output.indices:
        out_vars.update(index_vars(index))
    free = tuple(v for v in index_vars(body) if v not in out_vars)
    if free:
        return Einsum(output, body, "sum", free, where, implicit_sum=True, span=raw.span)
    return Einsum(output, body, None, (), where, span=raw.span)
