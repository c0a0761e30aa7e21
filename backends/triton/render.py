"""The Triton spelling of every tile-IR node kind, in one place, and statements as source lines.

``OPS`` spells the element-wise operations (``{x}``, ``{y}``: the operands), ``CALLS`` the ``tl``
functions; :data:`SPELL` maps every node class to its spelling. Nothing else in the backend
writes Triton expression text.
"""
from __future__ import annotations

import math

from .tile_ir import (
    Arange,
    Assign,
    BinOp,
    Bool,
    Blank,
    BroadcastTo,
    Call,
    Cast,
    Comment,
    Conj,
    Const,
    Disj,
    Dot,
    Expand,
    For,
    Full,
    If,
    Insert,
    Int,
    Load,
    Offset,
    Op,
    Permute,
    ProgramId,
    Reduce,
    Select,
    Shape,
    StoreStmt,
    Var,
    Where,
    Zeros,
)

LOG2E = 1.4426950408889634
_E = repr(LOG2E)

# element-wise operations ({x}, {y}: the operands' code)
OPS = {
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
    "safe_sub": "tl.where({x} == {y}, 0.0, {x} - {y})",  # an online softmax: empty max - empty max
    **{c: "tl.where({x} " + c + " {y}, 1.0, 0.0)" for c in ("<", "<=", ">", ">=", "==", "!=")},
    # index and mask operations
    "neg": "(-{x})",
    "neg_bare": "-{x}",
    "paren": "({x})",
    "invert": "(~{x})",
    "not": "(not {x})",
    "to_int": "{x}.to(tl.int32)",  # a gather's positions (integers stored as floats)
}

CALLS = {"maximum": "tl.maximum", "minimum": "tl.minimum", "abs": "tl.abs", "cdiv": "tl.cdiv",
         "exp2": "tl.exp2", "log2": "tl.log2", "floor": "tl.floor", "sqrt": "tl.sqrt",
         "trans": "tl.trans", "program_id": "tl.program_id", "min": "min", "max": "max"}
REDUCE = {"sum": "tl.sum", "max": "tl.max", "min": "tl.min"}
# reducers Triton has no builtin for: tl.reduce with a combine function the module defines
COMBINE = {"prod": "_product"}
COMBINE_LINES = {"prod": ("@triton.jit", "def _product(a, b):", "    return a * b", "", "")}


def combine_lines(reducers) -> list[str]:
    """The module-level definitions of the combine functions of ``reducers``."""
    return [line for fn in reducers for line in COMBINE_LINES[fn]]


def const_text(value: float) -> str:
    if math.isinf(value):
        return "float('inf')" if value > 0 else "float('-inf')"
    if math.isnan(value):
        return "float('nan')"
    return repr(value)


def _op(n: Op) -> str:
    x = expr(n.args[0])
    y = expr(n.args[1]) if len(n.args) > 1 else None
    return OPS[n.op].format(x=x, y=y)


def _binop(n: BinOp) -> str:
    text = f"{expr(n.x)} {n.op} {expr(n.y)}"
    return f"({text})" if n.wrap else text


def _load(n: Load) -> str:
    if n.mask is None:
        return f"tl.load({expr(n.ptr)} + {expr(n.offset)})"
    return f"tl.load({expr(n.ptr)} + {expr(n.offset)}, mask={expr(n.mask)}, other=0.0)"


def _dot(n: Dot) -> str:
    acc = "" if n.acc is None else f", {expr(n.acc)}"
    return f"tl.dot({expr(n.a)}, {expr(n.b)}{acc})"


def _cast(n: Cast) -> str:
    to = "tl.float32" if n.like is None else f"{expr(n.like)}.dtype.element_ty"
    return f"{expr(n.x)}.to({to})"


def _permute(n: Permute) -> str:
    if tuple(n.dims) == (1, 0):  # the 2-D transpose, as the tutorials write it
        return f"tl.trans({expr(n.x)})"
    return f"tl.permute({expr(n.x)}, ({', '.join(str(d) for d in n.dims)}))"


SPELL = {
    Var: lambda n: n.name,
    Int: lambda n: str(n.value),
    Const: lambda n: const_text(n.value),
    Bool: lambda n: str(bool(n.value)),
    ProgramId: lambda n: f"tl.program_id({n.axis})",
    Arange: lambda n: f"tl.arange(0, {expr(n.block)})",
    Op: _op,
    BinOp: _binop,
    Call: lambda n: f"{CALLS[n.fn]}({', '.join(expr(a) for a in n.args)})",
    Where: lambda n: f"tl.where({expr(n.cond)}, {expr(n.x)}, {expr(n.y)})",
    Select: lambda n: f"({expr(n.x)} if {expr(n.cond)} else {expr(n.y)})",
    Offset: lambda n: " + ".join(f"{expr(i)} * {expr(s)}" for i, s in n.terms),
    Conj: lambda n: " & ".join(expr(x) for x in n.items),
    Disj: lambda n: " | ".join(expr(x) for x in n.items),
    Load: _load,
    Dot: _dot,
    Reduce: lambda n: f"tl.reduce({expr(n.x)}, {n.axis}, {COMBINE[n.fn]})" if n.fn in COMBINE
    else f"{REDUCE[n.fn]}({expr(n.x)}, axis={n.axis})",
    Shape: lambda n: "[" + ", ".join(expr(b) for b in n.blocks) + "]",
    Full: lambda n: f"tl.full({expr(n.shape)}, {expr(n.value)}, tl.float32)",
    Zeros: lambda n: f"tl.zeros({expr(n.shape)}, tl.{n.dtype})",
    BroadcastTo: lambda n: f"tl.broadcast_to({expr(n.x)}, {expr(n.shape)})",
    Cast: _cast,
    Expand: lambda n: f"{expr(n.x)}[:, None]" if n.side == "row" else f"{expr(n.x)}[None, :]",
    Insert: lambda n: f"{expr(n.x)}[{', '.join('None' if k else ':' for k in n.new)}]",
    Permute: _permute,
}


def expr(node) -> str:
    """The Triton source of an expression node."""
    return SPELL[type(node)](node)


def _store(s: StoreStmt) -> str:
    op = "tl.atomic_add" if s.atomic else "tl.store"
    mask = "" if s.mask is None else f", mask={expr(s.mask)}"
    return f"{op}({expr(s.ptr)} + {expr(s.offset)}, {expr(s.value)}{mask})"


def lines(stmts, indent: str = "") -> list[str]:
    """Source lines of statements (a loop's or an if's body one level deeper)."""
    out = []
    for s in stmts:
        if isinstance(s, Assign):
            out.append(f"{indent}{s.target} = {expr(s.value)}")
        elif isinstance(s, StoreStmt):
            out.append(indent + _store(s))
        elif isinstance(s, For):
            out.append(f"{indent}for it in range({expr(s.lo)}, {expr(s.hi)}):")
            out += lines(s.body, indent + "    ")
        elif isinstance(s, If):
            note = f"  # {s.note}" if s.note else ""
            out.append(f"{indent}if {expr(s.cond)}:{note}")
            out += lines(s.body, indent + "    ")
        elif isinstance(s, Comment):
            out.append(f"{indent}# {s.text}")
        elif isinstance(s, Blank):
            out.append("")
        else:
            raise TypeError(f"not a statement: {s!r}")
    return out
