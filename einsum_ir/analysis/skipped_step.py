"""Whether a skipped step keeps every recurrence's state: the soundness of skipping empty steps.

The GPU lowering's loop bounds (``backends.gpu.bounds``) skip the steps where some Einsum that a
unit's contribution needs is empty over the whole block; the accelerator model
(``simulator.problem``) does not run a recurrence step where nothing that feeds it exists.
Skipping keeps a recurrence's state, so it is right only where the update,
evaluated with that Einsum empty, gives the carried value back: ``max(RM[n], LM)`` does, and so does
the online softmax's ``PRM * RD[n] + SLD`` (``PRM = exp(RM[n] - RM[n + 1])`` is 1 once RM is kept);
a decay ``0.5 * T[n] + X`` does not (the interpreter decays the state on every step).

The update is evaluated on a small abstract domain: empty, the kept state of a recurrence of the
loop, a known constant, or unknown (``None``). Every recurrence of the loop is assumed kept while
each is checked; the check of all of them makes the assumption hold (a step's Einsums are acyclic).
"""
from __future__ import annotations

import math
import operator
from dataclasses import dataclass

from collections.abc import Callable

from einsum_ir.ir import Access, Binary, Call, Einsum, Num, Unary


@dataclass(frozen=True)
class Empty:
    """No point exists."""


@dataclass(frozen=True)
class State:
    """The value a recurrence had before the step."""

    tensor: str


@dataclass(frozen=True)
class Const:
    value: float


EMPTY = Empty()
_UNION = ("+", "max", "min")  # an empty side leaves the other
_ARITH = {"+": operator.add, "-": operator.sub, "*": operator.mul}


Defs = Callable[[str], "Einsum | None"]  # the one Einsum of a tensor inside the step, or None


def keeps_state(update: Einsum, states: frozenset, empties: frozenset, defs: Defs) -> bool:
    """Whether ``update`` gives its recurrence's state back in a step where the Einsums
    ``empties`` have no point (the others unknown), with the recurrences ``states`` kept.
    ``defs(tensor)``: the Einsum computing ``tensor`` within the step, None where its value is
    not known there (an input, a value finished before the step, a recurrence of another loop)."""
    return _Step(defs, states, empties).einsum(update) == State(update.output.tensor)


class _Step:
    """One skipped step, where the Einsums ``empties`` have no point."""

    def __init__(self, defs: Defs, states: frozenset, empties: frozenset):
        self.defs, self.states, self.empties = defs, states, empties
        self.memo: dict = {}

    def einsum(self, e: Einsum):
        if e.name in self.empties:
            return EMPTY
        key = (e.name, e.output)
        if key not in self.memo:
            self.memo[key] = None  # cycles: unknown
            body = self.expr(e.body)
            partial = e.reducer is not None or e.where is not None
            self.memo[key] = body if body is EMPTY or not partial else None
        return self.memo[key]

    def expr(self, x):
        if isinstance(x, Num):
            return Const(float(x.value))
        if isinstance(x, Access):
            return self.access(x.tensor)
        if isinstance(x, Unary):
            v = self.expr(x.operand)
            if v is EMPTY:
                return EMPTY
            return Const(-v.value) if x.op == "-" and isinstance(v, Const) else None
        if isinstance(x, Binary):
            return _binary(x.op, self.expr(x.lhs), self.expr(x.rhs))
        if isinstance(x, Call):
            return _call(x.func, [self.expr(a) for a in x.args])
        return None  # an index or a size: some value

    def access(self, tensor: str):
        if tensor in self.states:
            return State(tensor)
        e = self.defs(tensor)
        return None if e is None else self.einsum(e)


def _binary(op: str, a, b):
    if op in _UNION and (a is EMPTY or b is EMPTY):
        return b if a is EMPTY else a
    if a is EMPTY or b is EMPTY:
        return EMPTY
    if isinstance(a, Const) and isinstance(b, Const):
        if op in _ARITH:
            return Const(_ARITH[op](a.value, b.value))
        return Const(a.value / b.value) if op == "/" and b.value != 0 else None
    if op == "-" and isinstance(a, State) and a == b:
        return Const(0.0)
    if op in ("+", "-") and b == Const(0.0) or op in ("*", "/") and b == Const(1.0):
        return a if isinstance(a, State) else None
    if op in ("+", "*") and a == Const(0.0 if op == "+" else 1.0):
        return b if isinstance(b, State) else None
    return None


def _call(func: str, args: list):
    if func in ("max", "min"):
        args = [a for a in args if a is not EMPTY]
        if not args:
            return EMPTY
        if all(a == args[0] for a in args) and isinstance(args[0], State):
            return args[0]
        if all(isinstance(a, Const) for a in args):
            return Const((max if func == "max" else min)(a.value for a in args))
        return None
    if any(a is EMPTY for a in args):
        return EMPTY
    if func == "exp" and len(args) == 1 and isinstance(args[0], Const):
        return Const(math.exp(args[0].value))
    return None
