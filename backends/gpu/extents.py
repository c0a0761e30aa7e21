"""Whether an index expression can leave a rank's extent: interval arithmetic on its affine form.

Every index variable ``v`` ranges over ``0 .. V - 1`` (``V`` the size of its rank); an index
``sum(c * v) + sizes + const`` (einsum_ir.affine) therefore ranges over ``[lo, hi]`` with ``lo``
taking ``V - 1`` for negative coefficients and ``hi`` for positive ones. Sizes that are not
compiled into the kernel stay symbols; a bound is *proved* only when it holds for every value of
them (the forms' size coefficients all have the right sign), so a kernel compiled once stays right
for other shapes. An index outside the linear fragment (``h / G``, ``p % C``) is never proved.

``padded``: tile positions past a rank's extent are computed too (then masked); for a memory read
they count, so a variable with a negative coefficient can take the index below 0.
"""
from __future__ import annotations

from dataclasses import dataclass

from einsum_ir.affine import Affine, affine_of
from einsum_ir.exprs import rank_root
from einsum_ir.ir import Expr, Num

from .plan import Lowering


@dataclass(frozen=True)
class Reach:
    """Which side of ``0 .. extent - 1`` an index may leave (True: not proved inside)."""

    below: bool
    above: bool


def _baked(low: Lowering):
    return lambda name: int(low.sizes[name]) if low.is_baked(name) and name in low.sizes else None


def size_form(low: Lowering, rank: str) -> Affine:
    """A rank's size as an affine form of the runtime sizes (a derived rank expanded once)."""
    baked = _baked(low)
    if baked(rank) is not None:
        return Affine(const=baked(rank))
    decl = low.c.size_decl(rank)
    if decl is not None and decl.default is not None and not isinstance(decl.default, Num):
        form = affine_of(decl.default, baked)
        if form is not None:
            return form
    return Affine(sizes=((rank, 1),))


def _nonneg(form: Affine) -> bool:
    """``form >= 0`` for every size >= 0 (its coefficients, merged, are all >= 0)."""
    coefs: dict = {}
    for name, c in form.sizes:
        coefs[name] = coefs.get(name, 0) + c
    return form.const >= 0 and all(c >= 0 for c in coefs.values())


def in_linear_fragment(low: Lowering, index: Expr) -> bool:
    return affine_of(index, _baked(low)) is not None


def reach(low: Lowering, index: Expr, rank: str, extra: int = 0, padded: bool = False) -> Reach:
    """Whether ``index`` may be negative / may reach ``size(rank) + extra``; ``padded``: over
    the tile positions past the variables' extents too (a memory read computes them)."""
    form = affine_of(index, _baked(low))
    if form is None:
        return Reach(True, True)
    lo = hi = Affine(sizes=form.sizes, const=form.const)
    for var, c in form.indices:
        if c < 0 and padded:
            return Reach(True, True)
        span = (size_form(low, var.upper()) - Affine(const=1)).scale(c)
        lo, hi = (lo + span, hi) if c < 0 else (lo, hi + span)
    last = size_form(low, rank) + Affine(const=extra - 1)
    return Reach(not _nonneg(lo), padded and bool(form.indices) or not _nonneg(last - hi))


def within_own_position(low: Lowering, index: Expr, rank: str) -> bool:
    """Whether ``index`` is at most the position of ``rank``'s own index (``m``, or a split's
    ``m1 * M0 + m0``) plus a constant <= 0: where the tile divides the rank (the ``EVEN_``
    shortcut), such an index never passes the extent. ``m + 1`` may (a read past the end)."""
    form = affine_of(index, _baked(low))
    if form is None or form.const > 0 or form.sizes:
        return False
    coef = dict(form.indices)
    root = rank_root(low.c, rank)
    if len(coef) == 1 and list(coef.values()) == [1] \
            and rank_root(low.c, next(iter(coef)).upper()) == root:
        return True
    split = next((s for s in low.c.splits if rank_root(low.c, s.rank) == root), None)
    if split is None or len(coef) != 2:
        return False
    roots = {rank_root(low.c, v.upper()): c for v, c in coef.items()}
    inner = _baked(low)(split.inner)
    return inner is not None and roots.get(rank_root(low.c, split.outer)) == inner \
        and roots.get(rank_root(low.c, split.inner)) == 1
