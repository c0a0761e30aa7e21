"""Random ``where`` predicates over the indices an Einsum iterates.

Atoms are the masks attention uses (causal, sliding windows, absolute windows, dilations,
blocks and grids, a fixed prefix) over a pair of indices, or over a tile's position
``m1*M0 + m0``; they are combined with ``and``, ``or`` and ``not``.
"""
from __future__ import annotations

from hypothesis import strategies as st

from einsum_ir.ir import Binary, Call, Expr, Name, Unary

from .context import Ctx, binary, num


def _positions(vars_: tuple[str, ...]) -> list[Expr]:
    out: list[Expr] = [Name(v) for v in vars_ if v not in ("m1", "m0")]
    if "m1" in vars_ and "m0" in vars_:
        out.append(binary("+", binary("*", Name("m1"), Name("M0")), Name("m0")))
    elif "m1" in vars_:
        out.append(Name("m1"))
    return out


def _atom(draw, ctx: Ctx, x: Expr, y: Expr | None) -> Expr:
    if y is None:
        kind = draw(st.sampled_from(["lt_const", "mod_const", "ge_const"]))
        if kind == "lt_const":
            return binary("<", x, num(draw(st.integers(1, 6))))
        if kind == "ge_const":
            return binary(">=", x, num(draw(st.integers(1, 4))))
        return binary("==", binary("%", x, ctx.param("D")), num(0))
    kind = draw(st.sampled_from(["causal", "strict", "anti", "window", "abs_window", "dilated",
                                 "block", "grid", "ne"]))
    diff = binary("-", x, y)
    if kind == "causal":
        return binary("<=", y, x)
    if kind == "strict":
        return binary("<", y, x)
    if kind == "anti":
        return binary(">=", y, x)
    if kind == "window":
        return binary("<", binary("-", x, ctx.param("W")), y)
    if kind == "abs_window":
        return binary("<=", Call("abs", (diff,)), ctx.param("W"))
    if kind == "dilated":
        return binary("==", binary("%", diff, ctx.param("D")), num(0))
    if kind == "block":
        return binary("==", binary("/", x, ctx.param("D")), binary("/", y, ctx.param("D")))
    if kind == "grid":
        return binary("==", binary("%", x, ctx.param("D")), binary("%", y, ctx.param("D")))
    return binary("!=", x, y)


def predicate(draw, ctx: Ctx, vars_: tuple[str, ...]) -> Expr | None:
    """A predicate over ``vars_`` (or None: no mask)."""
    positions = _positions(vars_)
    if not positions or not draw(st.booleans()):
        return None

    def atom() -> Expr:
        x = draw(st.sampled_from(positions))
        others = [p for p in positions if p != x]
        y = draw(st.sampled_from(others)) if others and draw(st.integers(0, 3)) else None
        return _atom(draw, ctx, x, y)

    shape = draw(st.sampled_from(["atom"] * 4 + ["and", "or", "not"]))
    if shape == "atom":
        return atom()
    if shape == "not":
        return Unary("not", atom())
    return Binary(shape, atom(), atom())
