"""Values of the Triton lowering: index values, tiles with the facts the peepholes read, and the
spelling of loop bounds.

A :class:`Tile` is a Triton expression over tile axes plus facts about it (validity conjuncts,
where it is zero or -inf, whether it is a scaled value, a difference or a dot); the peepholes of
the lowering (exp2 scale folding, the safe running max, dot accumulation, -inf at the source) read
those facts instead of the code.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

from einsum_ir.affine import CeilDiv, FloorDiv, Linear, Max, Min
from einsum_ir.errors import CascadeError

LOG2E = 1.4426950408889634
IDENTITY = {"sum": "0.0", "max": "float('-inf')", "min": "float('inf')", "prod": "1.0"}


NSPLIT_ARG = "#nsplit"  # the slice count of a split state phase (not a size of the cascade)


def increments_name(tensor: str) -> str:
    """The scratch tensor of a scanned recurrence's increments (no cascade name has a '#')."""
    return f"{tensor}#inc"


def prefix_name(tensor: str) -> str:
    """The scratch tensor of a scanned recurrence's exclusive prefix sums."""
    return f"{tensor}#pre"


def _err(msg, node=None, hint=None):
    return CascadeError(msg, getattr(node, "span", None), hint)


@contextmanager
def located(einsum):
    """A refusal raised while lowering ``einsum`` without a location of its own points at the
    Einsum (an expression a rewrite built, or a broadcast, has no span)."""
    try:
        yield
    except CascadeError as exc:
        if exc.span is not None or getattr(einsum, "span", None) is None:
            raise
        raise CascadeError(exc.message, einsum.span, exc.hint, exc.source, exc.file) from None


# ------------------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class Idx:
    """An integer index value: Triton code over physical axes (None axes = scalar)."""

    code: str
    axes: tuple = ()
    variant: bool = False
    composite: tuple | None = None  # (outer Idx, size, inner Idx) for x = outer*size + inner


@dataclass(frozen=True)
class Tile:
    code: str
    axes: tuple = ()
    kind: str = "f32"  # f32 | native | int
    terms: frozenset = frozenset()  # validity conjuncts: (code, axes, varies in the loop)
    zero_terms: frozenset = frozenset()  # conjuncts outside which the value is known to be 0
    may_inf: bool = False
    variant: bool = False
    src: str | None = None  # pointer whose element type a native tile has
    lin: tuple | None = None  # (base code, c): the value is base * c (c a constant)
    diff: tuple | None = None  # (a, b): the value is a - b (no inf - inf guard needed)
    ninf_terms: frozenset = frozenset()  # conjuncts outside which the value is -inf
    max_of: frozenset = frozenset()  # codes of tiles this row value bounds from above (a max)
    dot: tuple | None = None  # (a, b): the value is tl.dot(a, b), so "+ acc" can accumulate in it
    const: float | None = None  # the value, when it is a compile-time constant
    empty_at: float | None = None  # a max/min over masked points: this identity means no point
    may_nan: bool = False  # an operation may make NaN here (0 / 0): the interpreter's empty point


# ------------------------------------------------------------------------------------------ roles


# ------------------------------------------------------------------------------------- code gen


_UNION = ("+", "max", "min")


def _bounded_by(a: Tile, b: Tile) -> bool:
    codes = {a.code} | ({a.lin[0]} if a.lin else set())
    return bool(codes & b.max_of)


def _name_of(code: str) -> str:
    """A hint for a value's name: its code when that is a name."""
    return code if code.isidentifier() else "row"


def _simple(code: str) -> bool:
    return code.replace("_", "").isalnum()


def _is_ident(code, var, names):
    return var is not None and code == names.offs(var)


def _const_fold(fn, x):
    """``fn(x)`` for a constant ``x``, or None when ``fn`` has no folding here."""
    import math as m
    table = {"exp": m.exp, "log": m.log, "sqrt": m.sqrt, "abs": abs, "relu": lambda v: max(v, 0.0),
             "tanh": m.tanh, "recip": lambda v: 1 / v, "square": lambda v: v * v,
             "sigmoid": lambda v: 1 / (1 + m.exp(-v)), "floor": m.floor, "ceil": m.ceil}
    return float(table[fn](x)) if fn in table else None


def _const_binary(op, x, y):
    table = {"+": lambda: x + y, "-": lambda: x - y, "*": lambda: x * y, "/": lambda: x / y,
             "max": lambda: max(x, y), "min": lambda: min(x, y), "pow": lambda: math.pow(x, y)}
    if op not in table:
        raise ValueError(op)
    return table[op]()


def const_tile(value: float) -> Tile:
    """A constant as a tile (its code is the literal)."""
    if math.isinf(value):
        return Tile("float('inf')" if value > 0 else "float('-inf')", may_inf=True, const=value)
    if math.isnan(value):
        return Tile("float('nan')", may_nan=True, const=value)
    return Tile(repr(value), const=value)


# the Triton spelling of every element-wise operation ({x}, {y}: the operands' code)
_E = repr(LOG2E)
CODE_FOR_OP = {
    "exp": "tl.exp2({x} * " + _E + ")",
    "log": "tl.log({x})",
    "sqrt": "tl.sqrt({x})",
    "abs": "tl.abs({x})",
    "relu": "tl.maximum({x}, 0.0)",
    "sigmoid": "(1.0 / (1.0 + tl.exp2(-{x} * " + _E + ")))",
    "tanh": "(1.0 - 2.0 / (tl.exp2({x} * " + repr(2 * LOG2E) + ") + 1.0))",
    "elu": "tl.where({x} > 0, {x}, tl.exp2(tl.minimum({x}, 0.0) * " + _E + ") - 1.0)",
    "silu": "({x} / (1.0 + tl.exp2(-{x} * " + _E + ")))",
    "gelu": "(0.5 * {x} * (2.0 - 2.0 / (tl.exp2(({x} + 0.044715 * {x} * {x} * {x}) * "
            + repr(2 * LOG2E * math.sqrt(2 / math.pi)) + ") + 1.0)))",
    "softplus": "tl.where({x} > 20.0, {x}, tl.log(1.0 + tl.exp2({x} * " + _E + ")))",
    "recip": "(1.0 / {x})",
    "square": "({x} * {x})",
    "floor": "tl.floor({x})",
    "ceil": "tl.ceil({x})",
    "+": "({x} + {y})",
    "-": "({x} - {y})",
    "*": "({x} * {y})",
    "/": "({x} / {y})",
    "%": "({x} % {y})",
    "max": "tl.maximum({x}, {y})",
    "min": "tl.minimum({x}, {y})",
    "safe_sub": "tl.where({x} == {y}, 0.0, {x} - {y})",  # inf - inf: an empty history gives 0
    **{c: "tl.where({x} " + c + " {y}, 1.0, 0.0)" for c in ("<", "<=", ">", ">=", "==", "!=")},
}


def code_for(op: str, x: str, y: str | None = None) -> str:
    return CODE_FOR_OP[op].format(x=x, y=y)


def _linear_code(lin: Linear, sym) -> str:
    """Readable code of sum(coef * product) + const."""
    out = ""
    for product, c in lin.terms:
        mag = "" if abs(c) == 1 else f"{abs(c)} * "
        out += (" - " if c < 0 else " + ") + mag + " * ".join(sym(x) for x in product)
    if lin.const:
        out += (" - " if lin.const < 0 else " + ") + str(abs(lin.const))
    out = out.strip()
    if not out:
        return "0"
    return out[2:] if out.startswith("+ ") else "-" + out[2:]


def render_bound(expr, sym) -> str:
    """Triton code of a bound expression; ``sym`` spells a symbol."""
    if isinstance(expr, Linear):
        return _linear_code(expr, sym)
    if isinstance(expr, (Max, Min)):
        fn = "tl.maximum" if isinstance(expr, Max) else "tl.minimum"
        a, b = (render_bound(x, sym) for x in expr.items)
        return f"{fn}({a}, {b})"
    if isinstance(expr, FloorDiv):
        den = render_bound(expr.den, sym)
        return f"(tl.maximum({render_bound(expr.num, sym)}, 0) // {den})"
    if isinstance(expr, CeilDiv):
        den = render_bound(expr.den, sym)
        return f"((tl.maximum({render_bound(expr.num, sym)}, 0) + {den} - 1) // {den})"
    return f"tl.cdiv({render_bound(expr.a, sym)}, {render_bound(expr.b, sym)})"
