"""Helpers over IR expressions and declarations that several stages share (one copy each).

* :func:`product_factors` splits a value expression into the factors of a product;
* :func:`rank_root` follows rank aliases (``rank D = C``).
"""
from __future__ import annotations

from dataclasses import dataclass

from .ir import Binary, Cascade, Expr, Name, Unary, index_vars


@dataclass(frozen=True)
class Factor:
    """One factor of a product: ``expr``, or its reciprocal when ``divisor`` is set."""

    expr: Expr
    divisor: bool = False


@dataclass(frozen=True)
class Product:
    """``(-1 if negated else 1) * prod(f.expr or 1 / f.expr for f in factors)``."""

    negated: bool
    factors: tuple[Factor, ...]

    def multiplicands(self) -> tuple[Expr, ...]:
        """The factors that are not divisors."""
        return tuple(f.expr for f in self.factors if not f.divisor)


def product_factors(expr: Expr) -> Product:
    """``expr`` as a signed product of factors, so that the value is exactly the product.

    The rules, chosen so that every consumer sees the same factors:

    * ``a * b`` splits into the factors of ``a`` and of ``b``;
    * ``a / b`` splits ``a`` and adds ``b`` as one divisor; a divisor is never split further
      (``a / (b / c)`` has the one divisor ``b / c``, and ``a / -b`` the divisor ``-b``);
    * a unary minus anywhere along the product flips the sign (``-a * b`` and ``a * -b`` are
      ``negated`` products of ``a`` and ``b``): the sign is free for counting work and a factor
      of ``-1`` for evaluation;
    * anything else is one factor.
    """
    negated, factors = _split(expr, False)
    return Product(negated, tuple(factors))


def _split(expr: Expr, negated: bool) -> tuple[bool, list[Factor]]:
    if isinstance(expr, Binary) and expr.op == "*":
        negated, lhs = _split(expr.lhs, negated)
        negated, rhs = _split(expr.rhs, negated)
        return negated, lhs + rhs
    if isinstance(expr, Binary) and expr.op == "/":
        negated, lhs = _split(expr.lhs, negated)
        return negated, lhs + [Factor(expr.rhs, True)]
    if isinstance(expr, Unary) and expr.op == "-":
        return _split(expr.operand, not negated)
    return negated, [Factor(expr)]


def rank_root(cascade: Cascade, rank: str) -> str:
    """Follows aliases (``rank D = C``: a size declared as another size's name) to the name they
    end at, so that equal ranks compare equal; a cycle of aliases stops where it closes."""
    seen: set[str] = set()
    while rank not in seen:
        decl = cascade.size_decl(rank)
        if decl is None or not isinstance(decl.default, Name):
            return rank
        seen.add(rank)
        rank = decl.default.name
    return rank


def coverage(lhs: Expr, rhs: Expr) -> tuple[bool, bool]:
    """Whether each operand of ``lhs + rhs`` (or ``-``) uses every index variable the pair uses.

    The empty-point rule of ``+`` and ``-`` (a missing operand is the identity) applies between
    operands that cover each other's indices; an operand broadcast along indices it lacks (a row
    statistic ``GM[b,h,p]`` against scores ``S[b,h,p,m]``, a constant) creates no points along
    them, so ``exp(S - GM)`` keeps the points of ``S``. Neither covering (``A[p] + B[m]``): the
    points both have."""
    a, b = set(index_vars(lhs)), set(index_vars(rhs))
    return a >= b, b >= a
