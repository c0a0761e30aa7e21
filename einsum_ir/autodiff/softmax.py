"""Finding softmaxes over a streamed rank, so that the gradient saves their log-sum-exp.

The pattern, as users write it (3-pass and deferred-division forms alike)::

    GM[o]    = max[r] S           # S: any expression over o and r
    SN[o, r] = exp(S - GM[o])
    SD[o]    = sum[r] SN[o, r]

FlashAttention-2 saves LSE[o] = GM[o] + log(SD[o]) and recomputes the probabilities
P = exp(S - LSE) in the backward pass instead of saving them: with GM read as LSE, SN *is* P and
SD is exactly 1. That is only sound when the outputs do not depend on the shift GM, which holds when
every output is homogeneous of degree 0 in (SN, SD) — checked by :func:`_shift_invariant`. Where it
does not hold the pass differentiates the cascade as written (the arg-max rule for GM).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..ir import Access, Binary, Call, Cascade, Einsum, Expr, Name, Num, Role, Unary


@dataclass(frozen=True)
class Softmax:
    gm: Einsum  # the row max, read as the saved log-sum-exp in the backward pass
    sn: Einsum  # the numerator, exp(S - GM): the probabilities in the backward pass
    sd: Einsum  # the denominator: 1 in the backward pass

    @property
    def rows(self) -> tuple[str, ...]:
        return self.gm.output_vars


def find_softmaxes(cascade: Cascade) -> tuple[Softmax, ...]:
    found = []
    for gm in cascade.einsums:
        if gm.reducer != "max" or gm.where is not None or gm.role is not Role.DEF:
            continue
        match = _match(cascade, gm)
        if match is not None and _shift_invariant(cascade, match):
            found.append(match)
    return tuple(found)


def _readers(cascade: Cascade, tensor: str) -> list[Einsum]:
    return [e for e in cascade.einsums if any(a.tensor == tensor for a in e.reads())]


def _match(cascade: Cascade, gm: Einsum) -> Softmax | None:
    """GM's numerator and denominator; GM's other readers (the second pass of the 2-pass form)
    are left to :func:`_shift_invariant`, which accepts GM only inside ``exp(x - GM)``."""
    for sn in _readers(cascade, gm.name):
        found = _match_numerator(cascade, gm, sn)
        if found is not None:
            return found
    return None


def _match_numerator(cascade: Cascade, gm: Einsum, sn: Einsum) -> Softmax | None:
    body = sn.body
    if (sn.reducer is not None or sn.where is not None or sn.role is not Role.DEF
            or not (isinstance(body, Call) and body.func == "exp")):
        return None
    arg = body.args[0]
    if not (isinstance(arg, Binary) and arg.op == "-" and arg.lhs == gm.body
            and arg.rhs == Access(gm.name, gm.output.indices)):
        return None
    if set(sn.output_vars) != set(gm.output_vars) | set(gm.reduced):
        return None
    for sd in _readers(cascade, sn.name):
        if (sd.reducer == "sum" and sd.where is None and sd.role is Role.DEF
                and tuple(sd.reduced) == tuple(gm.reduced) and sd.body == sn.output
                and sd.output.indices == gm.output.indices):
            return Softmax(gm, sn, sd)
    return None


def _shift_invariant(cascade: Cascade, sm: Softmax) -> bool:
    """Every output has degree 0 in (SN, SD), both of degree 1; None marks a tensor whose degree is
    not defined (a sum of terms of different degrees, a function of a non-invariant value)."""
    degree: dict[str, int | None] = {}
    for einsum in cascade.einsums:
        if einsum.name in (sm.sn.name, sm.sd.name):
            degree[einsum.name] = 1
            continue
        if einsum.name == sm.gm.name:
            degree[einsum.name] = None  # read bare, the shift shows: only exp(x - GM) is scaled
            continue
        d = _degree(einsum.body, degree, sm.gm.name)
        if einsum.reducer == "prod" and d != 0:
            d = None
        if einsum.role is not Role.DEF and d != 0:
            d = None
        degree[einsum.name] = d
    return all(degree.get(o.name, 0) == 0 for o in cascade.outputs)


def _degree(expr: Expr, degree: dict[str, int | None], gm: str = "") -> int | None:
    if _shifted(expr, gm) and _degree(expr.args[0].lhs, degree, gm) == 0:
        return 1  # exp(x - GM): with GM read as the LSE, divided by SD like SN
    if isinstance(expr, (Num, Name)):
        return 0
    if isinstance(expr, Access):
        return degree.get(expr.tensor, 0)
    if isinstance(expr, Unary):
        d = _degree(expr.operand, degree, gm)
        return d if expr.op == "-" else (0 if d == 0 else None)
    if isinstance(expr, Binary):
        a, b = _degree(expr.lhs, degree, gm), _degree(expr.rhs, degree, gm)
        if a is None or b is None:
            return None
        if expr.op == "*":
            return a + b
        if expr.op == "/":
            return a - b
        if expr.op in ("+", "-"):
            return a if a == b else None
        return 0 if a == b == 0 else None
    if isinstance(expr, Call):
        ds = [_degree(a, degree, gm) for a in expr.args]
        if expr.func in ("max", "min") and ds[0] is not None and ds[0] == ds[1]:
            return ds[0]
        return 0 if all(d == 0 for d in ds) else None
    return None


def _shifted(expr: Expr, gm: str) -> bool:
    """``expr`` is ``exp(x - GM[...])``."""
    return (isinstance(expr, Call) and expr.func == "exp" and isinstance(expr.args[0], Binary)
            and expr.args[0].op == "-" and isinstance(expr.args[0].rhs, Access)
            and expr.args[0].rhs.tensor == gm)
