"""Operation classes: what one evaluation of an Einsum's body costs, by class of operation.

The classes (:data:`OP_CLASSES`) are shared by the work analysis, the accelerator specs (each unit
prices the classes it runs) and the GPU cost model:

* a sum whose body is a product of two or more tensor factors (a contraction) is one ``mac`` per
  point; each further factor adds a ``mul`` (``div`` for a divisor); constant factors are hoisted
  out of the sum (one ``mul`` per output point); a sign is free;
* any other sum is one ``add`` per point; a ``max``/``min`` reduction one ``max``; ``prod`` one
  ``mul``;
* operators in the body: ``+``/``-`` are ``add``, ``*`` ``mul``, ``/`` ``div``, comparisons
  ``cmp``, binary ``max``/``min`` ``max``, ``exp`` ``exp``, ``recip`` ``div``; every other
  function, ``%``, ``and``/``or``/``not`` are ``other``; constant subexpressions are folded (free).
"""
from __future__ import annotations

from collections import Counter

from ..exprs import product_factors
from ..ir import Access, Binary, Call, Einsum, Expr, Name, Num, Unary, walk

OP_CLASSES = ("mac", "add", "mul", "max", "exp", "div", "cmp", "other")


def _is_constant(expr: Expr) -> bool:
    return not any(isinstance(n, Access) or (isinstance(n, Name) and n.is_index) for n in walk(expr))


_BINARY_CLASS = {"+": "add", "-": "add", "*": "mul", "/": "div", "%": "other",
                 "<": "cmp", "<=": "cmp", ">": "cmp", ">=": "cmp", "==": "cmp", "!=": "cmp",
                 "and": "other", "or": "other"}
_CALL_CLASS = {"exp": "exp", "max": "max", "min": "max", "recip": "div"}


def expr_ops(expr: Expr, counts: Counter | None = None) -> Counter:
    """Operations of one evaluation of a value expression (constants folded)."""
    counts = Counter() if counts is None else counts
    if _is_constant(expr) or isinstance(expr, (Access, Name, Num)):
        return counts
    if isinstance(expr, Unary):
        if expr.op == "not":
            counts["other"] += 1
        return expr_ops(expr.operand, counts)
    if isinstance(expr, Binary):
        counts[_BINARY_CLASS[expr.op]] += 1
        expr_ops(expr.lhs, counts)
        return expr_ops(expr.rhs, counts)
    if isinstance(expr, Call):
        counts[_CALL_CLASS.get(expr.func, "other")] += 1
        for arg in expr.args:
            expr_ops(arg, counts)
        return counts
    return counts


def einsum_profile(einsum: Einsum) -> tuple[Counter, Counter]:
    """Operations per existing iteration point and per existing output point."""
    per_point, per_output = Counter(), Counter()
    if einsum.reducer == "sum":
        # A sign is free: -(a * b) costs what a * b costs.
        factors = [(f.expr, f.divisor) for f in product_factors(einsum.body).factors]
        variable = [(f, d) for f, d in factors if not _is_constant(f)]
        constant = [(f, d) for f, d in factors if _is_constant(f)]
        plain = [f for f, d in variable if not d]
        if len(plain) >= 2:
            per_point["mac"] += 1
            per_point["mul"] += len(plain) - 2
        else:
            per_point["add"] += 1
        per_point["div"] += sum(1 for _, d in variable if d)
        if constant:
            per_output["mul"] += 1
        for f, _ in variable:
            expr_ops(f, per_point)
    else:
        expr_ops(einsum.body, per_point)
        if einsum.reducer in ("max", "min"):
            per_point["max"] += 1
        elif einsum.reducer == "prod":
            per_point["mul"] += 1
    return per_point, per_output
