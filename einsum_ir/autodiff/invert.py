"""Scatters turned into gathers: a gradient's ``e == j`` solved for the summed indices.

The VJP of a read at a computed index scatters: ``dK[.., j, ..] = sum[..] ... where e == j``,
which iterates the summed indices against every ``j``. Where ``e`` is invertible the pass
substitutes the solution instead, so the gradient reads at computed indices (a gather):

* ``a*I + b == j``, ``a`` and ``b`` the outer and inner indices of a split with inner rank ``I``:
  ``a = j / I``, ``b = j % I``;
* ``p / C == n`` and ``p % C == c`` together: ``p = n*C + c``;
* ``h / G == k`` alone: ``h = k*G + g``, ``g`` summed over an alias rank of ``G``.

Points a solution reaches past an extent (a partial last tile, ``H`` not a multiple of ``G``) are
reads outside the tensor: empty, as the scatter never reached them.
"""
from __future__ import annotations

from ..exprs import rank_root
from ..ir import Binary, Cascade, Expr, Name


def _var(e: Expr, reduced) -> str | None:
    return e.name if isinstance(e, Name) and e.is_index and e.name in reduced else None


def _split_form(cascade: Cascade, lhs: Expr, j: str, reduced):
    """``a*I + b`` of a split whose rank is j's: {a: j / I, b: j % I}, or None."""
    if not (isinstance(lhs, Binary) and lhs.op == "+" and isinstance(lhs.lhs, Binary)
            and lhs.lhs.op == "*"):
        return None
    a, size, b = _var(lhs.lhs.lhs, reduced), lhs.lhs.rhs, _var(lhs.rhs, reduced)
    if a is None or b is None or a == b or not isinstance(size, Name) or size.is_index:
        return None
    root = lambda r: rank_root(cascade, r)  # noqa: E731
    for split in cascade.splits:
        if (root(split.rank) == root(j.upper()) and root(split.outer) == root(a.upper())
                and root(split.inner) == root(b.upper()) == root(size.name)):
            return {a: Binary("/", Name(j), size), b: Binary("%", Name(j), size)}
    return None


def _quotient(eq: Expr, reduced):
    """``p / C == j`` or ``p % C == j``: (op, p, C, j), or None."""
    lhs = eq.lhs
    if (isinstance(lhs, Binary) and lhs.op in ("/", "%") and isinstance(lhs.rhs, Name)
            and not lhs.rhs.is_index and _var(lhs.lhs, reduced)):
        return lhs.op, lhs.lhs.name, lhs.rhs.name, eq.rhs.name
    return None


def solve(cascade: Cascade, equalities: list[Expr], reduced, alias):
    """(substitution, new summed indices, equalities left) for ``equalities`` (each ``e == j``,
    j a gradient index) over the summed indices ``reduced``."""
    subst: dict[str, Expr] = {}
    left: list[Expr] = []
    added: list[str] = []
    quotients = {}
    for eq in equalities:
        found = _split_form(cascade, eq.lhs, eq.rhs.name, set(reduced) - set(subst))
        q = None if found else _quotient(eq, set(reduced) - set(subst))
        if found:
            subst.update(found)
        elif q:
            quotients.setdefault((q[1], q[2]), {})[q[0]] = (q[3], eq)
        else:
            left.append(eq)
    for (p, size), ops in quotients.items():
        if "/" in ops and "%" in ops:
            subst[p] = Binary("+", Binary("*", Name(ops["/"][0]), Name(size)), Name(ops["%"][0]))
        elif "/" in ops:
            g = alias(size, set(reduced) | {ops["/"][0]})
            subst[p] = Binary("+", Binary("*", Name(ops["/"][0]), Name(size)), Name(g))
            added.append(g)
        else:
            left.append(ops["%"][1])
    return subst, tuple(added), left


def tidy(expr: Expr | None) -> Expr | None:
    """Folds ``x / C * C + x % C`` (a split index solved and put back together) to ``x``."""
    from ..ir import Access, Call, Unary

    if isinstance(expr, Access):
        return Access(expr.tensor, tuple(tidy(i) for i in expr.indices), expr.span)
    if isinstance(expr, Unary):
        return Unary(expr.op, tidy(expr.operand), expr.span)
    if isinstance(expr, Call):
        return Call(expr.func, tuple(tidy(a) for a in expr.args), expr.span)
    if not isinstance(expr, Binary):
        return expr
    expr = Binary(expr.op, tidy(expr.lhs), tidy(expr.rhs), expr.span)
    lhs, rhs = expr.lhs, expr.rhs
    if (expr.op == "+" and isinstance(lhs, Binary) and lhs.op == "*"
            and isinstance(lhs.lhs, Binary) and lhs.lhs.op == "/"
            and isinstance(rhs, Binary) and rhs.op == "%"
            and lhs.lhs.lhs == rhs.lhs and lhs.lhs.rhs == lhs.rhs == rhs.rhs):
        return rhs.lhs
    return expr
