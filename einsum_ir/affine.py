"""Affine index arithmetic as typed values: linear forms, predicates as constraints, bounds.

* :class:`Affine` is ``sum(coef * index) + sum(coef * size) + const`` over integers, built from
  an index or predicate expression by :func:`affine_of` (``None`` outside the linear fragment).
* :func:`constraints_of` turns a predicate into disjunctive normal form: a tuple of conjunctions,
  each a tuple of forms ``f`` meaning ``f <= 0``.
* :class:`Linear`, :class:`FloorDiv`, :class:`CeilDiv`, :class:`Max`, :class:`Min` and
  :class:`CDiv` are integer expressions over *symbols* (hashable keys such as
  ``("size", "M")``): loop bounds derived from the constraints. :func:`evaluate` computes them for
  given symbol values (the cost model, the tests); a code generator renders them.

Nothing here knows about a target: the backends decide what a symbol stands for.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Hashable, Mapping, Union

from .ir import Binary, Call, Expr, Name, Num, Unary


@dataclass(frozen=True)
class Affine:
    """``sum(c * v for v, c in indices) + sum(c * s for s, c in sizes) + const``."""

    indices: tuple[tuple[str, int], ...] = ()
    sizes: tuple[tuple[str, int], ...] = ()  # runtime sizes, kept symbolic
    const: int = 0

    def __add__(self, other: Affine) -> Affine:
        return Affine(_merge(self.indices, other.indices), self.sizes + other.sizes,
                      self.const + other.const)

    def scale(self, k: int) -> Affine:
        return Affine(tuple((v, c * k) for v, c in self.indices),
                      tuple((s, c * k) for s, c in self.sizes), self.const * k)

    def __neg__(self) -> Affine:
        return self.scale(-1)

    def __sub__(self, other: Affine) -> Affine:
        return self + (-other)

    @property
    def is_constant(self) -> bool:
        return not self.indices and not self.sizes

    def coef(self, index: str) -> int:
        return sum(c for v, c in self.indices if v == index)


def _merge(a, b):
    out: dict[str, int] = {}
    for v, c in a + b:
        out[v] = out.get(v, 0) + c
    return tuple(out.items())


def affine_of(expr: Expr, baked: Callable[[str], int | None]) -> Affine | None:
    """The linear form of an integer expression; ``baked(name)`` gives a size's value when it is
    a compile-time constant (else the size stays a symbol)."""
    if isinstance(expr, Num):
        return Affine(const=int(expr.value)) if float(expr.value).is_integer() else None
    if isinstance(expr, Name):
        if expr.is_index:
            return Affine(indices=((expr.name, 1),))
        value = baked(expr.name)
        return Affine(const=int(value)) if value is not None else Affine(sizes=((expr.name, 1),))
    if isinstance(expr, Unary) and expr.op == "-":
        inner = affine_of(expr.operand, baked)
        return None if inner is None else -inner
    if isinstance(expr, Binary) and expr.op in ("+", "-", "*"):
        a, b = affine_of(expr.lhs, baked), affine_of(expr.rhs, baked)
        if a is None or b is None:
            return None
        if expr.op == "+":
            return a + b
        if expr.op == "-":
            return a - b
        if a.is_constant:
            return b.scale(a.const)
        if b.is_constant:
            return a.scale(b.const)
    return None


Conjunction = tuple[Affine, ...]  # every form <= 0


def constraints_of(pred: Expr, baked: Callable[[str], int | None],
                   relax: bool = False) -> tuple[Conjunction, ...] | None:
    """A predicate as a disjunction of conjunctions of ``form <= 0``; ``None`` outside the linear
    fragment. An ``and`` with one non-linear side keeps the other (a necessary condition). With
    ``relax``, a comparison with floor division or modulo by constants gives a necessary linear
    condition (einsum_ir.relaxed): the forms then hold on a superset of the points."""
    if isinstance(pred, Binary) and pred.op == "and":
        a, b = constraints_of(pred.lhs, baked, relax), constraints_of(pred.rhs, baked, relax)
        if a is None or b is None:
            return a if b is None else b
        return tuple(x + y for x in a for y in b)
    if isinstance(pred, Binary) and pred.op == "or":
        a, b = constraints_of(pred.lhs, baked, relax), constraints_of(pred.rhs, baked, relax)
        return None if a is None or b is None else a + b
    if isinstance(pred, Binary) and pred.op in ("<", "<=", ">", ">=", "=="):
        lhs, rhs, op = pred.lhs, pred.rhs, pred.op
        if op in (">", ">="):
            lhs, rhs, op = rhs, lhs, {">": "<", ">=": "<="}[op]
        if isinstance(lhs, Call) and lhs.func == "abs" and op in ("<", "<="):
            x = lhs.args[0]
            both = Binary("and", Binary(op, x, rhs), Binary(op, Unary("-", x), rhs))
            return constraints_of(both, baked, relax)
        a, b = affine_of(lhs, baked), affine_of(rhs, baked)
        if a is None or b is None:
            return _relaxed(lhs, rhs, op, baked) if relax else None
        f = a - b
        if op == "<":  # integers: a < b  <=>  a - b + 1 <= 0
            f = f + Affine(const=1)
        if op == "==":
            return ((f, -f),)
        return ((f,),)
    return None


def _relaxed(lhs: Expr, rhs: Expr, op: str, baked) -> tuple[Conjunction, ...] | None:
    from .relaxed import relaxed_le

    diff = Binary("-", lhs, rhs)
    forms = [relaxed_le(diff, baked, strict=op == "<")]
    if op == "==":
        forms.append(relaxed_le(Binary("-", rhs, lhs), baked))
    return None if any(f is None for f in forms) else (tuple(forms),)


# ----------------------------------------------------------------------------- bound expressions

Symbol = Hashable


@dataclass(frozen=True)
class Linear:
    """``sum(coef * product(symbols)) + const``; terms keep their order (for readable code)."""

    terms: tuple[tuple[tuple[Symbol, ...], int], ...] = ()
    const: int = 0

    @staticmethod
    def of(*terms: tuple[tuple[Symbol, ...], int], const: int = 0) -> Linear:
        merged: dict = {}
        for product, coef in terms:
            merged[product] = merged.get(product, 0) + coef
        return Linear(tuple((p, c) for p, c in merged.items() if c != 0), const)


@dataclass(frozen=True)
class Max:
    items: tuple[BoundExpr, ...]


@dataclass(frozen=True)
class Min:
    items: tuple[BoundExpr, ...]


@dataclass(frozen=True)
class FloorDiv:
    """``floor(max(num, 0) / den)`` with ``den > 0``."""

    num: Linear
    den: Linear


@dataclass(frozen=True)
class CeilDiv:
    """``ceil(max(num, 0) / den)`` with ``den > 0``."""

    num: Linear
    den: Linear


@dataclass(frozen=True)
class CDiv:
    """``ceil(a / b)``: the number of tiles of size ``b`` covering ``a``."""

    a: Linear
    b: Linear


BoundExpr = Union[Linear, Max, Min, FloorDiv, CeilDiv, CDiv]


def evaluate(expr: BoundExpr, env: Mapping[Symbol, int]) -> int:
    """The value of a bound expression; ``env`` maps every symbol it uses to an integer."""
    if isinstance(expr, Linear):
        total = expr.const
        for product, coef in expr.terms:
            value = coef
            for sym in product:
                value *= env[sym]
            total += value
        return total
    if isinstance(expr, Max):
        return max(evaluate(x, env) for x in expr.items)
    if isinstance(expr, Min):
        return min(evaluate(x, env) for x in expr.items)
    if isinstance(expr, FloorDiv):
        return max(evaluate(expr.num, env), 0) // evaluate(expr.den, env)
    if isinstance(expr, CeilDiv):
        return -(-max(evaluate(expr.num, env), 0) // evaluate(expr.den, env))
    if isinstance(expr, CDiv):
        return -(-evaluate(expr.a, env) // evaluate(expr.b, env))
    raise TypeError(f"not a bound expression: {expr!r}")


def symbols(expr: BoundExpr) -> set:
    """The symbols a bound expression uses."""
    if isinstance(expr, Linear):
        return {s for product, _ in expr.terms for s in product}
    if isinstance(expr, (Max, Min)):
        return set().union(*(symbols(x) for x in expr.items))
    if isinstance(expr, (FloorDiv, CeilDiv)):
        return symbols(expr.num) | symbols(expr.den)
    return symbols(expr.a) | symbols(expr.b)
