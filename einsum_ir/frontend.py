"""Front-end rewrites of parsed statements before they become IR: named index expressions
(``let y = p / WI``) are substituted where they are used, reductions inside expressions
(``exp(S[p,m] - (max[m2] S[p,m2]))``) are lifted into intermediate Einsums, then each Einsum is
built (an Einsum without a reducer sums the indices its output lacks, computed after both).

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
class Reduce:
    """``(max[m] S[p,m] where m <= p)`` inside an expression (front end only): lifted into an
    intermediate Einsum of its own, read where it stood."""

    reducer: str
    names: tuple[str, ...]
    body: Expr
    where: Expr | None
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
    if isinstance(expr, Reduce):
        return replace(expr, body=substitute(expr.body, lets, value),
                       where=substitute(expr.where, lets))
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
        refuse_reductions(let.value, f"let {let.name}")
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


def build_einsums(raw: RawEinsum, lets: dict[str, Let], taken: set[str]) -> list[Einsum]:
    """The Einsum ``raw`` defines, preceded by one intermediate per reduction inside it."""
    for index in raw.output.indices:
        if isinstance(index, Name) and index.name in lets:
            raise CascadeError(f"{index.name} is a named index expression (let); it cannot name "
                               f"an axis of {raw.output.tensor}", index.span,
                               "index the output by index variables and use the let on the "
                               "right-hand side or in the predicate")
    refuse_reductions(raw.output, "an index")
    refuse_reductions(raw.where, "a predicate")
    output = substitute(raw.output, lets)
    where = substitute(raw.where, lets)
    lifted: list[Einsum] = []
    if isinstance(raw.rhs, tuple):
        _, reducer, reduced, body, spans = raw.rhs
        for name, span in zip(reduced, spans, strict=True):
            _refuse_let_reduced(reducer, name, span, lets)
        body = _lift(substitute(body, lets, True), raw.output.tensor, lets, taken, lifted)
        return [*lifted, Einsum(output, body, reducer, reduced, where, span=raw.span)]
    body = _lift(substitute(raw.rhs, lets, True), raw.output.tensor, lets, taken, lifted)
    return [*lifted, _plain(output, body, where, raw.span)]


def _plain(output: Access, body: Expr, where: Expr | None, span) -> Einsum:
    """A plain Einsum: indices missing from the output are summed, as in numpy.einsum."""
    out_vars = set()
    for index in output.indices:
        out_vars.update(index_vars(index))
    free = tuple(v for v in index_vars(body) if v not in out_vars)
    if free:
        return Einsum(output, body, "sum", free, where, implicit_sum=True, span=span)
    return Einsum(output, body, None, (), where, span=span)


def refuse_reductions(expr, what: str) -> None:
    """A reduction inside ``expr`` (an index, a predicate, a size, a let) is an error there."""
    stack = [expr]
    while stack:
        node = stack.pop()
        if isinstance(node, Reduce):
            raise CascadeError(f"a reduction cannot be used in {what}", node.span,
                               "reductions in expressions are values: use one on a right-hand "
                               "side, outside the indices of an access")
        if isinstance(node, Access):
            stack.extend(node.indices)
        elif isinstance(node, Unary):
            stack.append(node.operand)
        elif isinstance(node, Binary):
            stack.extend((node.lhs, node.rhs))
        elif isinstance(node, Call):
            stack.extend(node.args)


def _refuse_let_reduced(reducer: str, name: str, span, lets) -> None:
    if name in lets:
        raise CascadeError(f"{reducer}[{name}]: {name} is a named index expression (let), not an "
                           "index variable", span, "reduce over the index variables it uses")


def _lift(expr: Expr, owner: str, lets, taken: set[str], lifted: list[Einsum]) -> Expr:
    """``expr`` with each inner reduction replaced by a read of a fresh intermediate
    (``OWNER_max1``: over the reduction's free indices, in order of first use), appended to
    ``lifted`` innermost first."""
    if isinstance(expr, Reduce):
        for name in expr.names:
            _refuse_let_reduced(expr.reducer, name, expr.span, lets)
        refuse_reductions(expr.where, "a predicate")
        body = _lift(expr.body, owner, lets, taken, lifted)
        k = 1
        while f"{owner}_{expr.reducer}{k}" in taken:
            k += 1
        name = f"{owner}_{expr.reducer}{k}"
        taken.add(name)
        seen = dict.fromkeys((*index_vars(body), *index_vars(expr.where)))
        keep = tuple(Name(v, span=expr.span) for v in seen if v not in expr.names)
        target = Access(name, keep, span=expr.span)
        lifted.append(Einsum(target, body, expr.reducer, expr.names, expr.where, span=expr.span))
        return target
    if isinstance(expr, Access):
        for index in expr.indices:
            refuse_reductions(index, "an index")
        return expr
    if isinstance(expr, Unary):
        return replace(expr, operand=_lift(expr.operand, owner, lets, taken, lifted))
    if isinstance(expr, Binary):
        return replace(expr, lhs=_lift(expr.lhs, owner, lets, taken, lifted),
                       rhs=_lift(expr.rhs, owner, lets, taken, lifted))
    if isinstance(expr, Call):
        return replace(expr, args=tuple(_lift(a, owner, lets, taken, lifted) for a in expr.args))
    return expr
