"""Values of the Triton lowering: index values, tiles with the facts the rewrites read, and loop
bounds as tile-IR nodes.

A :class:`Tile` is a tile-IR node (backends.triton.tile_ir) over tile axes plus facts about it
(validity :class:`Term` s, where it is zero or -inf, whether it is a scaled value, a difference or a
dot); the rewrites of the lowering (exp2 scale folding, the safe running max, dot accumulation,
-inf at the source) read those facts, never the spelling.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

from einsum_ir.affine import CeilDiv, FloorDiv, Linear, Max, Min
from einsum_ir.errors import CascadeError

from .render import LOG2E, OPS, expr  # noqa: F401  (LOG2E: the tiles' scale constant)
from .tile_ir import LOOP_VAR, BinOp, Call, Conj, Const, Int, Node, Op, Var, is_simple

IDENTITY = {"sum": Const(0.0), "max": Const(float("-inf")), "min": Const(float("inf")),
            "prod": Const(1.0)}


NSPLIT_ARG = "#nsplit"  # the slice count of a split state phase (not a size of the cascade)


def increments_name(tensor: str) -> str:
    """The scratch tensor of a scanned recurrence's increments (no cascade name has a '#')."""
    return f"{tensor}#inc"


def prefix_name(tensor: str) -> str:
    """The scratch tensor of a scanned recurrence's exclusive prefix sums."""
    return f"{tensor}#pre"


def _err(msg, node=None, hint=None, reason=None):
    return CascadeError(msg, getattr(node, "span", None), hint, reason=reason)


@contextmanager
def located(einsum):
    """A refusal raised while lowering ``einsum`` without a location of its own points at the
    Einsum (an expression a rewrite built, or a broadcast, has no span)."""
    try:
        yield
    except CascadeError as exc:
        if exc.span is not None or getattr(einsum, "span", None) is None:
            raise
        raise CascadeError(exc.message, einsum.span, exc.hint, exc.source, exc.file,
                           reason=exc.reason) from None


# ------------------------------------------------------------------------------------------ values


@dataclass(frozen=True)
class Idx:
    """An integer index value over physical axes (no axes: a scalar)."""

    value: Node
    axes: tuple = ()
    variant: bool = False
    composite: tuple | None = None  # (outer Idx, size, inner Idx) for x = outer*size + inner
    # (a, b, c): the value a * it + b * S + c in a recurrence loop of S steps (counter it), where
    # known; which step a recurrence read takes, whichever way the positions run
    steps: tuple | None = None


STEP = Idx(LOOP_VAR, (), True, steps=(1, 0, 0))  # the counter of a recurrence loop


@dataclass(frozen=True)
class Term:
    """A validity conjunct: a boolean tile over ``axes``; ``variant``: it changes in the loop."""

    mask: Node
    axes: tuple
    variant: bool


@dataclass(frozen=True)
class Tile:
    """A value over tile axes and the facts the rewrites read (nodes, never text)."""

    value: Node
    axes: tuple = ()
    kind: str = "f32"  # f32 | native | int
    terms: frozenset = frozenset()  # validity conjuncts (Term)
    zero_terms: frozenset = frozenset()  # conjuncts outside which the value is known to be 0
    may_inf: bool = False
    variant: bool = False
    src: Node | None = None  # pointer whose element type a native tile has
    lin: tuple | None = None  # (base node, c): the value is base * c (c a constant)
    diff: tuple | None = None  # (a, b): the value is a - b
    ninf_terms: frozenset = frozenset()  # conjuncts outside which the value is -inf
    max_of: frozenset = frozenset()  # values of tiles this row value bounds from above (a max)
    dot: tuple | None = None  # (a, b): the value is tl.dot(a, b), so "+ acc" can accumulate in it
    const: float | None = None  # the value, when it is a compile-time constant
    empty_at: float | None = None  # a max/min over masked points: this identity means no point
    may_nan: bool = False  # an operation may make NaN here (0 / 0): the interpreter's empty point


# ---------------------------------------------------------------------------------- helpers


_UNION = ("+", "max", "min")


def _bounded_by(a: Tile, b: Tile) -> bool:
    values = {a.value} | ({a.lin[0]} if a.lin else set())
    return bool(values & b.max_of)


def _name_of(value: Node) -> str:
    """A hint for a value's name: its own name when it is one."""
    return value.name if isinstance(value, Var) else "row"


def _simple(value: Node) -> bool:
    return is_simple(value)


def conj(items) -> Node:
    """The conjunction of mask terms (one term is itself)."""
    items = tuple(items)
    return items[0] if len(items) == 1 else Conj(items)


def ordered_terms(terms) -> list:
    """Validity terms in their spelling's order: masks conjoin them in a stable order, the same
    in every run (a node's hash is not)."""
    return sorted(set(terms), key=lambda tm: (expr(tm.mask), tm.axes, tm.variant))


def _is_ident(value, var, names):
    return var is not None and value == Var(names.offs(var))


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
    """A constant as a tile."""
    return Tile(Const(value), may_inf=math.isinf(value), const=value, may_nan=math.isnan(value))


def op(name: str, *args: Node) -> Op:
    """An element-wise operation of the spelling table (render.OPS)."""
    if name not in OPS:
        raise KeyError(name)
    return Op(name, args)


def _product(product, sym) -> Node:
    out = None
    for x in product:
        out = sym(x) if out is None else BinOp("*", out, sym(x), wrap=False)
    return out


def _linear_node(lin: Linear, sym) -> Node:
    """sum(coef * product) + const, spelled as written (no parentheses)."""
    parts = [(_product(p, sym) if abs(c) == 1 else BinOp("*", Int(abs(c)), _product(p, sym),
                                                          wrap=False), c < 0)
             for p, c in lin.terms]
    if lin.const:
        parts.append((Int(abs(lin.const)), lin.const < 0))
    if not parts:
        return Int(0)
    (first, negative), out = parts[0], None
    out = Op("neg_bare", (first,)) if negative else first
    for x, negative in parts[1:]:
        out = BinOp("-" if negative else "+", out, x, wrap=False)
    return out


def bound_node(expr, sym) -> Node:
    """A bound expression (backends.gpu.bounds) as a node; ``sym`` gives a symbol's node."""
    if isinstance(expr, Linear):
        return _linear_node(expr, sym)
    if isinstance(expr, (Max, Min)):
        a, b = (bound_node(x, sym) for x in expr.items)
        return Call("maximum" if isinstance(expr, Max) else "minimum", (a, b))
    if isinstance(expr, (FloorDiv, CeilDiv)):
        den = bound_node(expr.den, sym)
        num = Call("maximum", (bound_node(expr.num, sym), Int(0)))
        if isinstance(expr, CeilDiv):
            num = BinOp("-", BinOp("+", num, den, wrap=False), Int(1))
        # a product divides as one operand: x // (3 * BLOCK_S), not (x // 3) * BLOCK_S
        return BinOp("//", num, den if is_simple(den) else Op("paren", (den,)))
    return Call("cdiv", (bound_node(expr.a, sym), bound_node(expr.b, sym)))
