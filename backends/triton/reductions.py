"""Reductions along one tile axis: ``tl.sum``, ``tl.max``, ``tl.min`` and the product's
``tl.reduce``, with the masks a reduction must apply, NaNs an operation made skipped as empty
points, and the mark of a max/min over no point (``empty_at``)."""
from __future__ import annotations

from dataclasses import replace

from einsum_ir.ir import Einsum

from .masks import MaskGen
from .tile_ir import BinOp, Const, Reduce, Where, Zeros
from .tiles import IDENTITY, Term, Tile, _err

_EMPTY_AT = {"max": float("-inf"), "min": float("inf")}


class ReduceGen(MaskGen):
    def _skip_nan(self, t: Tile, reducer: str) -> tuple:
        """``t`` with its NaNs as the reducer's identity, and the term where it has none."""
        v = self.materialize(replace(t, value=self.f32(t), kind="f32"), "nan_in").value
        seen = BinOp("==", v, v, wrap=False)
        return (replace(t, value=Where(seen, v, IDENTITY[reducer]), kind="f32", lin=None,
                        src=None, may_nan=False), Term(BinOp("==", v, v), t.axes, t.variant))

    def _spread(self, t: Tile, einsum: Einsum) -> Tile:
        """``t``'s value over the axes of its validity terms too (a full tile)."""
        axes = self.low.order(t.axes + tuple(a for tm in t.terms for a in tm.axes))
        self.need2d(axes, einsum)
        value = BinOp("+", self.bcast(self.f32(t), t.axes, axes),
                      Zeros(self.shape_of(axes), "float32"))
        return replace(t, value=value, axes=axes, kind="f32", src=None, lin=None, dot=None,
                       const=None, zero_terms=frozenset(), max_of=frozenset())

    def _reduction_mask(self, einsum: Einsum, t: Tile, ax: str, r: str) -> list:
        """The validity terms a reduction along ``ax`` must apply: not those where the value is
        already the reducer's identity (0 for a sum, -inf for a max)."""
        need = [tm for tm in t.terms if ax in tm.axes]
        bt = self.bound_term(r)
        if bt is not None and bt not in need:
            need.append(bt)
        if einsum.reducer == "sum":
            need = [tm for tm in need if tm not in t.zero_terms]
        if einsum.reducer == "max":
            need = [tm for tm in need if tm not in t.ninf_terms]
        return need

    def _reduce(self, einsum: Einsum, t: Tile, ax: str, need: list, skips_nan: bool) -> Tile:
        """``tl.sum``/``tl.max``/``tl.min`` along ``ax`` (``skips_nan``: of a value whose NaNs
        were replaced by the identity); the max of a positively scaled value is the scaled max
        of the value (one multiply per row instead of per element)."""
        max_of = frozenset({t.value} | ({t.lin[0]} if t.lin else set())) \
            if einsum.reducer == "max" else frozenset()
        x = self.f32(t)
        if t.empty_at is not None and IDENTITY[einsum.reducer] != Const(t.empty_at):
            # an empty max/min read by another reducer contributes nothing
            x = Where(BinOp("==", x, Const(t.empty_at), wrap=False), IDENTITY[einsum.reducer], x)
        masked = [tm for tm in need if not self.padding(tm, einsum)]  # not the tile's padding
        # (an operand's own empty points, a max/min of a max/min over no point, make empty ones)
        empty_at = _EMPTY_AT.get(einsum.reducer) if (masked or t.ninf_terms or skips_nan
                                                      or t.empty_at is not None) else None
        if need:
            m = self.mask_var(need, t.axes)
            x = Where(m, x, IDENTITY[einsum.reducer])
        if (einsum.reducer in ("max", "min") and t.lin is not None and t.lin[1] > 0
                and not any(tm.mask == x for tm in need)):
            base, c = t.lin
            inner = base if not need else Where(self.mask_var(need, t.axes), base,
                                                IDENTITY[einsum.reducer])
            axis = t.axes.index(ax)
            out_axes = tuple(a for a in t.axes if a != ax)
            terms = frozenset(tm for tm in t.terms if ax not in tm.axes)
            return Tile(BinOp("*", Reduce(einsum.reducer, inner, axis), Const(c)), out_axes, "f32", terms,
                        frozenset(), bool(need) or t.may_inf or bool(t.ninf_terms), t.variant,
                        max_of=max_of, empty_at=empty_at)
        if einsum.reducer not in ("sum", "max", "min", "prod"):
            raise _err(f"the reducer {einsum.reducer} is outside the Triton lowering's reach",
                       einsum)
        axis = t.axes.index(ax)
        out_axes = tuple(a for a in t.axes if a != ax)
        terms = frozenset(tm for tm in t.terms if ax not in tm.axes)
        return Tile(Reduce(einsum.reducer, x, axis), out_axes, "f32", terms, frozenset(),
                    einsum.reducer in ("max", "min") and (bool(need) or bool(t.ninf_terms))
                    or t.may_inf, t.variant, max_of=max_of, empty_at=empty_at)
