"""Small helpers to rebuild IR: expression maps, conjunctions, readers, fresh names."""
from __future__ import annotations

from typing import Callable, Iterable

from ..ir import Access, Binary, Call, Cascade, Einsum, Expr, Name, Num, Unary, walk


def transform(expr: Expr, fn: Callable[[Expr], Expr | None]) -> Expr:
    """Rebuilds ``expr`` top-down: where ``fn(node)`` returns a node, it replaces the subtree."""
    out = fn(expr)
    if out is not None:
        return out
    if isinstance(expr, Access):
        return Access(expr.tensor, tuple(transform(i, fn) for i in expr.indices), expr.span)
    if isinstance(expr, Unary):
        return Unary(expr.op, transform(expr.operand, fn), expr.span)
    if isinstance(expr, Binary):
        return Binary(expr.op, transform(expr.lhs, fn), transform(expr.rhs, fn), expr.span)
    if isinstance(expr, Call):
        return Call(expr.func, tuple(transform(a, fn) for a in expr.args), expr.span)
    return expr


def mentions(expr: Expr | None, var: str) -> bool:
    return expr is not None and any(isinstance(n, Name) and n.name == var for n in walk(expr))


def conjuncts(expr: Expr | None) -> list[Expr]:
    if expr is None:
        return []
    if isinstance(expr, Binary) and expr.op == "and":
        return conjuncts(expr.lhs) + conjuncts(expr.rhs)
    return [expr]


def conjunction(parts: Iterable[Expr | None]) -> Expr | None:
    out = None
    for part in parts:
        if part is None:
            continue
        out = part if out is None else Binary("and", out, part)
    return out


def readers(cascade: Cascade, tensor: str) -> list[Einsum]:
    return [e for e in cascade.einsums if any(a.tensor == tensor for a in e.reads())]


def taken_names(cascade: Cascade) -> set[str]:
    """Every name a new rank or tensor must avoid (compared case-insensitively)."""
    names = {d.name for d in cascade.sizes} | {s.outer for s in cascade.splits}
    names |= set(cascade.tensor_names()) | {d.name for d in cascade.outputs}
    return {n.upper() for n in names}


def fresh(base: str, taken: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``, ... : the first not in ``taken`` (case-insensitive);
    the chosen name is added to ``taken``."""
    name, k = base, 2
    while name.upper() in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name.upper())
    return name


def access(tensor: str, *indices: Expr | str) -> Access:
    return Access(tensor, tuple(Name(i) if isinstance(i, str) else i for i in indices))


def plus_one(var: str) -> Expr:
    return Binary("+", Name(var), Num(1))


NEG_INF = Unary("-", Num(float("inf")))
