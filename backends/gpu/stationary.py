"""Whether a skipped loop step keeps every recurrence's state: the soundness of block skipping.

``bounds.loop_bounds`` skips the steps where some Einsum that a unit's contribution needs is empty
over the whole block. Skipping keeps a recurrence's state, so it is right only where the update,
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

from einsum_ir.ir import Access, Binary, Call, Einsum, Num, Unary

from .plan import Lowering


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


def keeps_state(low: Lowering, update: Einsum, states: frozenset, deps) -> bool:
    """Whether ``update`` gives its recurrence's state back when any one Einsum of ``deps`` is
    empty (the others unknown), with the recurrences ``states`` kept."""
    kept = State(update.output.tensor)
    return all(_Step(low, states, empty).einsum(update) == kept for empty in deps)


class _Step:
    """One skipped step, where the Einsum ``empty`` has no point."""

    def __init__(self, low: Lowering, states: frozenset, empty: str):
        self.low, self.states, self.empty = low, states, empty
        self.memo: dict = {}

    def einsum(self, e: Einsum):
        if e.name == self.empty:
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
        low = self.low
        defs = low.defs.get(tensor, ())
        if tensor in low.inputs or tensor in low.stream_red_names or len(defs) != 1:
            return None  # finished before the loop, or a recurrence of another loop
        return self.einsum(defs[0])


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
