"""Regions: sets of integer points as unions of conjunctions of affine constraints.

The existence of an Einsum's points (its predicate, the points its operands have, reads inside an
extent) is, for the masks attention uses, a union of convex integer polytopes over its index
variables. This module is the algebra of such sets at fixed sizes (every size is a number here):

* :class:`Form` is ``sum(coef * var) + const`` over integers; a constraint is ``form <= 0``.
* A :data:`Region` is a tuple of conjunctions (frozensets of forms): their union. ``TRUE`` is one
  empty conjunction, ``FALSE`` none.
* :class:`Lowering` turns index and predicate expressions into forms and regions. ``e / D`` and
  ``e % D`` (``D`` a positive constant) introduce an auxiliary variable ``q = floor(e / D)`` with
  its defining constraints ``0 <= e - D*q <= D - 1`` (``e % D`` is then ``e - D*q``): ``q`` is
  determined by the other variables, so counting points with it counts the same points.
* :mod:`einsum_ir.analysis.projection` removes variables (the reduced indices of a reduction).

Anything outside this fragment raises :class:`Unsupported`; the caller then counts another way.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product
from typing import Mapping

from ..ir import Binary, Call, Expr, Name, Num, Unary

Box = Mapping[str, tuple[int, int]]  # variable -> (lowest, highest) value, inclusive
MAX_DISJUNCTS = 64
MAX_CONSTRAINTS = 256


class Unsupported(Exception):
    """The expression or set is outside what regions represent exactly."""


class TooCostly(Unsupported):
    """The set is represented, but counting its points exactly would take too long."""


@dataclass(frozen=True)
class Form:
    """``sum(c * v for v, c in coefs) + const``; ``coefs`` sorted by variable, no zero."""

    coefs: tuple[tuple[str, int], ...] = ()
    const: int = 0

    @staticmethod
    def of(coefs: Mapping[str, int], const: int = 0) -> Form:
        return Form(tuple(sorted((v, c) for v, c in coefs.items() if c)), const)

    @staticmethod
    def var(name: str) -> Form:
        return Form(((name, 1),))

    def __add__(self, other: Form) -> Form:
        merged = dict(self.coefs)
        for v, c in other.coefs:
            merged[v] = merged.get(v, 0) + c
        return Form.of(merged, self.const + other.const)

    def scale(self, k: int) -> Form:
        return Form.of({v: c * k for v, c in self.coefs}, self.const * k)

    def __sub__(self, other: Form) -> Form:
        return self + other.scale(-1)

    def plus(self, k: int) -> Form:
        return Form(self.coefs, self.const + k)

    def coef(self, var: str) -> int:
        return dict(self.coefs).get(var, 0)

    @property
    def vars(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.coefs)

    def bounds(self, box: Box) -> tuple[int, int]:
        """The least and greatest value over ``box``."""
        lo = hi = self.const
        for v, c in self.coefs:
            a, b = box[v]
            lo += c * (a if c > 0 else b)
            hi += c * (b if c > 0 else a)
        return lo, hi

    def substitute(self, env: Mapping[str, Form]) -> Form:
        out = Form(const=self.const)
        for v, c in self.coefs:
            out = out + (env[v].scale(c) if v in env else Form(((v, c),)))
        return out


Conjunction = frozenset  # of Form, each meaning form <= 0
Region = tuple  # of Conjunction: their union
TRUE: Region = (frozenset(),)
FALSE: Region = ()


def _contradicts(conj: Conjunction) -> bool:
    """Whether two constraints of ``conj`` bound one form from both sides with nothing between
    (``f + c <= 0`` and ``-f + c' <= 0`` with ``c + c' > 0``: distinct residue classes are)."""
    tightest: dict = {}
    for f in conj:
        tightest[f.coefs] = max(tightest.get(f.coefs, f.const), f.const)
    return any(c + tightest.get(tuple((v, -k) for v, k in coefs), -(1 << 62)) > 0
               for coefs, c in tightest.items())


def conj_and(a: Region, b: Region) -> Region:
    out = tuple(z for z in (x | y for x, y in product(a, b)) if not _contradicts(z))
    if len(out) > MAX_DISJUNCTS:
        raise Unsupported(f"an intersection of {len(out)} conjunctions")
    return _dedupe(out)


def conj_or(a: Region, b: Region) -> Region:
    if TRUE[0] in a or TRUE[0] in b:
        return TRUE
    out = _dedupe(a + b)
    if len(out) > MAX_DISJUNCTS:
        raise Unsupported(f"a union of {len(out)} conjunctions")
    return out


def conj_not(a: Region) -> Region:
    out = TRUE
    for conj in a:
        out = conj_and(out, tuple(frozenset({f.scale(-1).plus(1)}) for f in conj))
    return out


def _dedupe(region: Region) -> Region:
    return tuple(dict.fromkeys(region))


def simplify(conj: Conjunction, box: Box) -> Conjunction | None:
    """``conj`` without constraints the box implies and with only the tightest of parallel ones;
    None when the box proves it empty."""
    tightest: dict = {}
    for f in conj:
        lo, hi = f.bounds(box)
        if lo > 0:
            return None
        if hi <= 0:
            continue
        if f.const > tightest.get(f.coefs, Form(const=-(1 << 62))).const:
            tightest[f.coefs] = f
    for coefs, f in tightest.items():  # f <= 0 and g <= 0 with g's coefficients -f's
        g = tightest.get(tuple((v, -c) for v, c in coefs))
        if g is not None and f.const + g.const > 0:
            return None
    return frozenset(tightest.values())


def simplify_region(region: Region, box: Box) -> Region:
    out = []
    for conj in region:
        s = simplify(conj, box)
        if s is not None:
            if not s:
                return TRUE
            out.append(s)
    return _dedupe(tuple(out))


def substitute(region: Region, env: Mapping[str, Form]) -> Region:
    return tuple(frozenset(f.substitute(env) for f in conj) for conj in region)


# ----------------------------------------------------------------------------- lowering


class Lowering:
    """Index and predicate expressions of one Einsum as forms and regions.

    ``box`` holds the Einsum's index variables; auxiliary quotient variables are added to it, and
    their defining constraints to ``defs`` (a conjunction every region of the Einsum is met with).
    """

    def __init__(self, box: dict[str, tuple[int, int]], sizes: Mapping[str, int]):
        self.box = box
        self.sizes = sizes
        self.defs: set = set()
        self.aux: dict = {}  # auxiliary -> (form, d): it is floor(form / d)
        self._quotients: dict = {}

    def form(self, expr: Expr) -> Form:
        if isinstance(expr, Num):
            if float(expr.value).is_integer():
                return Form(const=int(expr.value))
            raise Unsupported("a non-integer constant in an index")
        if isinstance(expr, Name):
            if not expr.is_index:
                return Form(const=int(self.sizes[expr.name]))
            return Form.var(expr.name)
        if isinstance(expr, Unary) and expr.op == "-":
            return self.form(expr.operand).scale(-1)
        if isinstance(expr, Binary) and expr.op in ("+", "-"):
            a, b = self.form(expr.lhs), self.form(expr.rhs)
            return a + b if expr.op == "+" else a - b
        if isinstance(expr, Binary) and expr.op == "*":
            a, b = self.form(expr.lhs), self.form(expr.rhs)
            if a.coefs and b.coefs:
                raise Unsupported("a product of two index variables")
            return b.scale(a.const) if not a.coefs else a.scale(b.const)
        if isinstance(expr, Binary) and expr.op in ("/", "%"):
            num, den = self.form(expr.lhs), self.form(expr.rhs)
            if den.coefs or den.const <= 0:
                raise Unsupported("a division by a non-constant or non-positive divisor")
            q = self._quotient(num, den.const)
            return q if expr.op == "/" else num - q.scale(den.const)
        raise Unsupported(f"{type(expr).__name__} in an index expression")

    def _quotient(self, num: Form, d: int) -> Form:
        if not num.coefs:
            return Form(const=num.const // d)
        if d == 1:
            return num
        key = (num, d)
        if key not in self._quotients:
            name = f"{num.vars[0]}#q{len(self._quotients)}"
            lo, hi = num.bounds(self.box)
            self.box[name] = (lo // d, hi // d)
            q = Form.var(name)
            self.defs.add(q.scale(d) - num)  # d*q <= num
            self.defs.add(num - q.scale(d) - Form(const=d - 1))  # num - d*q <= d - 1
            self._quotients[key] = q
            self.aux[name] = (num, d)
        return self._quotients[key]

    def predicate(self, expr: Expr) -> Region:
        if isinstance(expr, Binary) and expr.op in ("and", "or"):
            a, b = self.predicate(expr.lhs), self.predicate(expr.rhs)
            return conj_and(a, b) if expr.op == "and" else conj_or(a, b)
        if isinstance(expr, Unary) and expr.op == "not":
            return conj_not(self.predicate(expr.operand))
        if isinstance(expr, Binary) and expr.op in ("<", "<=", ">", ">=", "==", "!="):
            out = FALSE
            for (ga, a), (gb, b) in product(self.pieces(expr.lhs), self.pieces(expr.rhs)):
                out = conj_or(out, conj_and(((ga | gb),), _compare(expr.op, a, b)))
            return out
        raise Unsupported(f"{type(expr).__name__} as a predicate")

    def pieces(self, expr: Expr) -> list[tuple[Conjunction, Form]]:
        """A piecewise-affine expression (``abs``, ``min``, ``max``) as disjoint (guard, form)."""
        if isinstance(expr, Call) and expr.func in ("abs", "min", "max"):
            args = [self.pieces(a) for a in expr.args]
            if len(args) != (1 if expr.func == "abs" else 2):
                raise Unsupported(f"{expr.func} of {len(args)} arguments")
            if expr.func == "abs":
                args = [args[0], [(g, f.scale(-1)) for g, f in args[0]]]
            out = []
            for (ga, a), (gb, b) in product(*args):
                keep_a = a - b if expr.func == "min" else b - a  # a wins when this <= 0
                out.append((ga | gb | {keep_a}, a))
                out.append((ga | gb | {keep_a.scale(-1).plus(1)}, b))
            return out
        if isinstance(expr, Binary) and expr.op in ("+", "-") and _has_call(expr):
            out = []
            for (ga, a), (gb, b) in product(self.pieces(expr.lhs), self.pieces(expr.rhs)):
                out.append((ga | gb, a + b if expr.op == "+" else a - b))
            return out
        if isinstance(expr, Unary) and expr.op == "-" and _has_call(expr):
            return [(g, f.scale(-1)) for g, f in self.pieces(expr.operand)]
        return [(frozenset(), self.form(expr))]


def _has_call(expr: Expr) -> bool:
    if isinstance(expr, Call):
        return True
    if isinstance(expr, Binary):
        return _has_call(expr.lhs) or _has_call(expr.rhs)
    return isinstance(expr, Unary) and _has_call(expr.operand)


def _compare(op: str, a: Form, b: Form) -> Region:
    le = a - b  # a <= b
    if op == "<=":
        return (frozenset({le}),)
    if op == "<":
        return (frozenset({le.plus(1)}),)
    if op == ">=":
        return (frozenset({le.scale(-1)}),)
    if op == ">":
        return (frozenset({le.scale(-1).plus(1)}),)
    if op == "==":
        return (frozenset({le, le.scale(-1)}),)
    return (frozenset({le.plus(1)}), frozenset({le.scale(-1).plus(1)}))  # !=
