"""Random element-wise expressions over given leaves, guarded by their value bounds.

Every leaf is used once; leaves are combined with ``+ - * /``, ``max(a, b)``, ``min(a, b)`` and
wrapped in unary functions; ``pow`` appears as a square/cube, a root of a positive value, or a
decay ``pow(0.9, p - m)``; indices appear as values (``p - m``) and sizes, or now and then the
real parameter ``CAP``, as constants.
"""
from __future__ import annotations

from hypothesis import strategies as st

from einsum_ir.ir import Call, Expr, Name, Num, Unary

from . import intervals as iv_
from .context import Ctx, binary, num
from .intervals import CAP, Iv

Leaf = tuple[Expr, Iv]
REAL_PARAM = 1.5  # the value of the real parameter CAP when a cascade uses one

_SAFE_UNARY = ("abs", "relu", "sigmoid", "tanh", "elu", "silu", "gelu", "softplus", "square")


def _positive(e: Expr, iv: Iv) -> Leaf:
    """``abs(e) + 1``: a value at least 1."""
    a = iv_.abs_(iv)
    return binary("+", Call("abs", (e,)), num(1)), Iv(a.lo + 1, a.hi + 1)


def _shrink(e: Expr, iv: Iv) -> Leaf:
    """Scales a value into [-CAP, CAP] by a power of two (exact)."""
    k = 0
    while iv.mag / 2 ** k > CAP:
        k += 1
    if not k:
        return e, iv
    return binary("*", e, num(2.0 ** -k)), Iv(iv.lo / 2 ** k, iv.hi / 2 ** k)


def unary(draw, e: Expr, iv: Iv) -> Leaf:
    func = draw(st.sampled_from(_SAFE_UNARY + ("exp", "log", "sqrt", "recip", "pow", "neg")))
    if func == "neg":
        return Unary("-", e), Iv(-iv.hi, -iv.lo)
    if func == "exp":
        if iv.hi > 8:
            e, iv = Call("tanh", (e,)), iv_.UNARY["tanh"](iv)
        return Call("exp", (e,)), iv_.UNARY["exp"](iv)
    if func in ("log", "sqrt"):
        if iv.lo < (0.05 if func == "log" else 0.0):
            e, iv = _positive(e, iv)
        return Call(func, (e,)), iv_.UNARY[func](iv)
    if func == "recip":
        if not iv.excludes_zero():
            e, iv = _positive(e, iv)
        return Call("recip", (e,)), iv_.UNARY["recip"](iv)
    if func == "pow":
        return _pow(draw, e, iv)
    out = Call(func, (e,)), iv_.UNARY[func](iv)
    return _shrink(*out)


def _pow(draw, e: Expr, iv: Iv) -> Leaf:
    kind = draw(st.sampled_from(["square", "cube", "root", "three_halves"]))
    if kind in ("square", "cube"):
        k = 2 if kind == "square" else 3
        e, iv = _shrink(e, iv) if iv.mag <= 4 else _shrink(Call("tanh", (e,)), Iv(-1, 1))
        m = iv.mag ** k
        lo = 0.0 if k == 2 else -m
        return _shrink(Call("pow", (e, num(k))), Iv(lo, m))
    if iv.lo <= 0:
        e, iv = _positive(e, iv)
    k = 0.5 if kind == "root" else 1.5
    return _shrink(Call("pow", (e, num(k))), Iv(iv.lo ** k, iv.hi ** k))


def index_value(draw, ctx: Ctx, vars_: tuple[str, ...]) -> Leaf | None:
    """An index used as a value (ALiBi's ``p - m``), or a decay ``pow(0.9, p - m)``."""
    plain = [v for v in vars_ if v in ("p", "m", "e", "f", "m0", "m1")]
    if not plain:
        return None
    x = draw(st.sampled_from(plain))
    others = [v for v in plain if v != x]
    if others and draw(st.booleans()):
        y = draw(st.sampled_from(others))
        e: Expr = binary("-", Name(x), Name(y))
        iv = Iv(-(ctx.extent(y) - 1), ctx.extent(x) - 1)
    else:
        e, iv = Name(x), Iv(0, ctx.extent(x) - 1)
    if draw(st.booleans()):
        base = draw(st.sampled_from([0.9, 0.5]))
        vals = [base ** iv.lo, base ** iv.hi]
        return Call("pow", (num(base), e)), Iv(min(vals), max(vals))
    return _shrink(binary("*", e, num(0.25)), Iv(iv.lo * 0.25, iv.hi * 0.25))


def combine2(draw, a: Leaf, b: Leaf) -> Leaf:
    op = draw(st.sampled_from(["+", "-", "*", "/", "max", "min"]))
    (ea, ia), (eb, ib) = a, b
    if op == "+":
        return _shrink(binary("+", ea, eb), iv_.add(ia, ib))
    if op == "-":
        return _shrink(binary("-", ea, eb), iv_.sub(ia, ib))
    if op == "*":
        return _shrink(binary("*", ea, eb), iv_.mul(ia, ib))
    if op == "/":
        if not ib.excludes_zero():
            eb, ib = _positive(eb, ib)
        return _shrink(binary("/", ea, eb), iv_.div(ia, ib))
    return Call(op, (ea, eb)), iv_.union_minmax(ia, ib)


def expression(draw, ctx: Ctx, leaves: list[Leaf], vars_: tuple[str, ...]) -> Leaf:
    """Combines every leaf into one expression; ``vars_`` are the indices the leaves use."""
    pool = list(leaves)
    if draw(st.integers(0, 4)) == 0:
        extra = index_value(draw, ctx, vars_)
        if extra is not None:
            pool.append(extra)
    if draw(st.integers(0, 4)) == 0:
        value = draw(st.sampled_from([0.5, 2, 1.5, -1, 3]))
        pool.append((num(value), Iv(value, value)))
    elif draw(st.integers(0, 29)) == 0:  # a real parameter (param CAP = 1.5): interpreter only
        ctx.params.add("CAP")
        ctx.sizes["CAP"] = REAL_PARAM
        pool.append((Name("CAP"), Iv(REAL_PARAM, REAL_PARAM)))
    while len(pool) > 1:
        i = draw(st.integers(0, len(pool) - 1))
        a = pool.pop(i)
        j = draw(st.integers(0, len(pool) - 1))
        b = pool.pop(j)
        if not isinstance(a[0], Num) and draw(st.integers(0, 2)) == 0:
            a = unary(draw, *a)
        pool.append(combine2(draw, a, b))
    e, iv = pool[0]
    if draw(st.integers(0, 2)) == 0:
        e, iv = unary(draw, e, iv)
    return e, iv
