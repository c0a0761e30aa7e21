"""Value bounds of generated tensors, so that a random cascade stays well conditioned.

The strategy keeps an interval for every tensor it defines and guards each operation by it: a
denominator is kept away from zero, ``log`` and ``sqrt`` get a non-negative argument, ``exp`` a
bounded one, and large values are scaled down by a power of two (exact in floating point). A
mismatch between fp32 kernels and the float64 interpreter is then a bug, not rounding.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

CAP = 16.0  # largest magnitude a leaf read may carry into an expression


@dataclass(frozen=True)
class Iv:
    lo: float
    hi: float
    may_be_inf: bool = False  # a running max that starts at -inf and may stay there

    @property
    def mag(self) -> float:
        return max(abs(self.lo), abs(self.hi))

    def excludes_zero(self, margin: float = 0.25) -> bool:
        return self.lo > margin or self.hi < -margin

    def hull(self, other: "Iv") -> "Iv":
        return Iv(min(self.lo, other.lo), max(self.hi, other.hi), self.may_be_inf or other.may_be_inf)


# Inputs are standard normals: at these sizes no draw leaves (-5, 5).
INPUT = Iv(-5.0, 5.0)


def _corners(a: Iv, b: Iv, fn) -> Iv:
    vals = [fn(x, y) for x in (a.lo, a.hi) for y in (b.lo, b.hi)]
    return Iv(min(vals), max(vals))


def add(a: Iv, b: Iv) -> Iv:
    # '+' keeps the points either operand has, so either operand alone is a possible value.
    return Iv(a.lo + b.lo, a.hi + b.hi).hull(a).hull(b)


def sub(a: Iv, b: Iv) -> Iv:
    return Iv(a.lo - b.hi, a.hi - b.lo)


def mul(a: Iv, b: Iv) -> Iv:
    return _corners(a, b, lambda x, y: x * y)


def div(a: Iv, b: Iv) -> Iv:
    assert b.excludes_zero(0.0)
    return _corners(a, b, lambda x, y: x / y)


def union_minmax(a: Iv, b: Iv) -> Iv:
    return a.hull(b)


def abs_(a: Iv) -> Iv:
    lo = 0.0 if a.lo <= 0.0 <= a.hi else min(abs(a.lo), abs(a.hi))
    return Iv(lo, a.mag)


def square(a: Iv) -> Iv:
    m = abs_(a)
    return Iv(m.lo ** 2, m.hi ** 2)


def monotone(a: Iv, fn) -> Iv:
    return Iv(fn(a.lo), fn(a.hi))


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x)) if x > -700 else 0.0


def _elu(x: float) -> float:
    return x if x > 0 else math.expm1(x)


def _softplus(x: float) -> float:
    return math.log1p(math.exp(x)) if x < 30 else x


UNARY = {
    "exp": lambda a: monotone(a, math.exp),
    "log": lambda a: monotone(a, math.log),
    "sqrt": lambda a: monotone(a, math.sqrt),
    "abs": abs_,
    "relu": lambda a: Iv(max(a.lo, 0.0), max(a.hi, 0.0)),
    "sigmoid": lambda a: monotone(a, _sigmoid),
    "tanh": lambda a: monotone(a, math.tanh),
    "elu": lambda a: monotone(a, _elu),
    "silu": lambda a: Iv(min(-0.3, a.lo), max(a.hi, 0.0)),
    "gelu": lambda a: Iv(min(-0.2, a.lo), max(a.hi, 0.0)),
    "softplus": lambda a: monotone(a, _softplus),
    "square": square,
    "recip": lambda a: div(Iv(1.0, 1.0), a),
}


def reduce(a: Iv, reducer: str, count: int) -> Iv:
    """Bounds of a reduction over at most ``count`` existing points (at least one, or the result
    is empty)."""
    if reducer in ("max", "min"):
        return a
    if reducer == "sum":
        lo = a.lo if a.lo >= 0 else count * a.lo
        hi = a.hi if a.hi <= 0 else count * a.hi
        return Iv(lo, hi)
    m = a.mag
    if a.lo >= 0:
        powers = [a.lo ** k for k in (1, count)] + [a.hi ** k for k in (1, count)]
        return Iv(min(powers), max(powers))
    big = max(m, m ** count)
    return Iv(-big, big)
