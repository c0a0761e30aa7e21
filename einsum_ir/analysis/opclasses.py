"""Operation classes: what one evaluation of an Einsum's body costs, by class of operation.

The classes (:data:`OP_CLASSES`) are shared by the work analysis, the accelerator specs (each unit
prices the classes it runs) and the GPU cost model:

* a sum whose body is a product of two or more tensor factors (a contraction) is one ``mac`` per
  point; each further factor adds a ``mul`` (``div`` for a divisor); constant factors are hoisted
  out of the sum (one ``mul`` per output point); a sign is free;
* any other sum is one ``add`` per point; a ``max``/``min`` reduction one ``max``; ``prod`` one
  ``mul``;
* operators in the body: ``+``/``-`` are ``add``, ``*`` ``mul``, ``/`` ``div`` (``mul`` by a
  constant divisor: its reciprocal is folded), comparisons ``cmp``, binary ``max``/``min``
  ``max``, ``exp`` ``exp``, ``recip`` ``div``; every other function, ``%``, ``and``/``or``/``not``
  are ``other`` (a unit may price a function by name, see :func:`resolve_named`); constant
  subexpressions are folded (free);
* in a reduction, a subexpression that does not use the reduced indices is evaluated once per
  output point (``sum[m] A[p,m] * V[m,f] / S[p]`` divides once per output).
"""
from __future__ import annotations

from collections import Counter

from ..exprs import product_factors
from ..ir import FUNCTIONS, Access, Binary, Call, Einsum, Expr, Name, Num, Unary, walk

OP_CLASSES = ("mac", "add", "mul", "max", "exp", "div", "cmp", "other")
_CALL_CLASS = {"exp": "exp", "max": "max", "min": "max", "recip": "div"}
# Functions counted as ``other``, which a unit may also price by name (``tanh: {cycles: 4}``).
NAMED_FUNCTIONS = tuple(f for f in FUNCTIONS if f not in _CALL_CLASS)


def _is_constant(expr: Expr) -> bool:
    return not any(isinstance(n, Access) or (isinstance(n, Name) and n.is_index) for n in walk(expr))


def _uses(expr: Expr, vars_) -> bool:
    return any(isinstance(n, Name) and n.is_index and n.name in vars_ for n in walk(expr))


_BINARY_CLASS = {"+": "add", "-": "add", "*": "mul", "/": "div", "%": "other",
                 "<": "cmp", "<=": "cmp", ">": "cmp", ">=": "cmp", "==": "cmp", "!=": "cmp",
                 "and": "other", "or": "other"}


def op_class(op: str) -> str:
    """The class an operation counts in: a named function is ``other``."""
    return "other" if op in NAMED_FUNCTIONS else op


def resolve_named(counts, unit_ops) -> dict:
    """``counts`` (which may name functions) as a unit with ``unit_ops`` runs them: a function
    the unit prices by name stays, any other counts as ``other``."""
    out: dict = {}
    for op, n in counts.items():
        key = op if op in unit_ops or op not in NAMED_FUNCTIONS else "other"
        out[key] = out.get(key, 0) + n
    return out


def expr_ops(expr: Expr, counts: Counter | None = None, named: bool = False,
             hoist: tuple = (), per_output: Counter | None = None) -> Counter:
    """Operations of one evaluation of a value expression (constants folded). A division by a
    constant is a multiply (by the folded reciprocal). ``named``: functions counted as ``other``
    are counted under their name. ``hoist``: the reduced indices; a subexpression that uses none
    of them is evaluated once per output point and counted in ``per_output``."""
    counts = Counter() if counts is None else counts
    if _is_constant(expr) or isinstance(expr, (Access, Name, Num)):
        return counts
    if hoist and per_output is not None and not _uses(expr, hoist):
        return expr_ops(expr, per_output, named)
    recurse = dict(named=named, hoist=hoist, per_output=per_output)
    if isinstance(expr, Unary):
        if expr.op == "not":
            counts["other"] += 1
        return expr_ops(expr.operand, counts, **recurse)
    if isinstance(expr, Binary):
        op = _BINARY_CLASS[expr.op]
        counts["mul" if op == "div" and _is_constant(expr.rhs) else op] += 1
        expr_ops(expr.lhs, counts, **recurse)
        return expr_ops(expr.rhs, counts, **recurse)
    if isinstance(expr, Call):
        op = _CALL_CLASS.get(expr.func, "other")
        counts[expr.func if named and op == "other" else op] += 1
        for arg in expr.args:
            expr_ops(arg, counts, **recurse)
        return counts
    return counts


def einsum_profile(einsum: Einsum, named: bool = False, scale: bool = True) -> tuple[Counter, Counter]:
    """Operations per existing iteration point and per existing output point.

    Subexpressions that do not use the reduced indices are per-output work. ``named``: see
    :func:`expr_ops`; ``scale``: count the multiply by a constant hoisted out of a contraction
    (the accelerator model folds it into an operand)."""
    per_point, per_output = Counter(), Counter()
    hoist = tuple(einsum.reduced)
    if einsum.reducer == "sum":
        # A sign is free: -(a * b) costs what a * b costs.
        factors = [(f.expr, f.divisor) for f in product_factors(einsum.body).factors]
        inner = [(f, d) for f, d in factors if _uses(f, hoist)] if hoist else factors
        outer = [(f, d) for f, d in factors if (f, d) not in inner]
        plain = [f for f, d in inner if not d]
        if len(plain) >= 2:
            per_point["mac"] += 1
            per_point["mul"] += len(plain) - 2
        else:
            per_point["add"] += 1
        per_point["div"] += sum(1 for _, d in inner if d)
        for f, _ in inner:
            expr_ops(f, per_point, named, hoist, per_output)
        if scale and any(_is_constant(f) for f, _ in outer):
            per_output["mul"] += 1
        for f, d in outer:
            if not _is_constant(f):
                per_output["div" if d else "mul"] += 1
                expr_ops(f, per_output, named)
    else:
        expr_ops(einsum.body, per_point, named, hoist, per_output)
        if einsum.reducer in ("max", "min"):
            per_point["max"] += 1
        elif einsum.reducer == "prod":
            per_point["mul"] += 1
    return per_point, per_output
