"""Validity masks of tile reads: extent terms from the interval analysis (an index that may
leave its rank), padding terms of tiles past a rank's extent, and their conjunctions."""
from __future__ import annotations

from dataclasses import replace

from backends.gpu.extents import in_linear_fragment, reach, within_own_position
from einsum_ir.errors import CascadeError
from einsum_ir.exprs import rank_root
from einsum_ir.ir import Access, Einsum

from .dots import DotGen
from .tile_ir import BinOp, Const, Int, Node, Reduce, Var, Where, Zeros
from .tiles import IDENTITY, Idx, Term, Tile, _is_ident, _simple, conj, ordered_terms


def _extent(size: Node, extra: int) -> Node:
    return BinOp("+", size, Int(extra), wrap=False) if extra else size


def _inside(value: Node, ext: Node, below: bool, above: bool) -> Node:
    """``value >= 0`` and/or ``value < ext``, as the reach of the index asks."""
    return conj(([BinOp(">=", value, Int(0))] if below else [])
                + ([BinOp("<", value, ext)] if above else []))


class MaskGen(DotGen):
    def _extent_terms(self, einsum: Einsum, acc: Access, axes: tuple) -> frozenset:
        """Validity terms of an inlined read whose indices may leave the intermediate's extent
        (``A[p, m + 1]`` at ``m = M - 1``), from the interval analysis (backends.gpu.extents)."""
        out = set()
        for k, i in enumerate(acc.indices):
            axis = self.low.a.shapes[einsum.name][k]
            if not in_linear_fragment(self.low, i):
                continue  # ``m / M0``, ``p % C``: the split's own ranges, not proved here
            idx = self.eval_int(i)
            if not idx.axes:
                term = self._scalar_extent_term(i, idx, axis.rank, axes, axis.extra)
                if term is not None:
                    out.add(term)
                continue
            r = reach(self.low, i, axis.rank, axis.extra)
            if not (r.below or r.above):
                continue
            code = _inside(idx.value, _extent(self.size_code(axis.rank), axis.extra), r.below,
                           r.above)
            memo = self.memo(idx.variant)
            if ("mask", code) not in memo:
                memo[("mask", code)] = self.emit(f"in_{einsum.name.lower()}", code, idx.variant)
            out.add(Term(memo[("mask", code)], idx.axes, idx.variant))
        return frozenset(out)

    def _scalar_extent_term(self, index, i: Idx, rank: str, axes: tuple, extra: int = 0):
        """The validity term of a scalar index that may leave ``rank`` (``X[m + 1]`` with ``m``
        a grid index) over the tile ``axes``, or None when the interval analysis proves it
        inside. (The index is broadcast before the compare: Triton's interpreter refuses a
        scalar predicate in a mask.)"""
        if not in_linear_fragment(self.low, index):
            return None  # ``h / G`` into ``HK = H / G``: the derived rank's own range
        r = reach(self.low, index, rank, extra)
        if not (r.below or r.above):
            return None
        x = BinOp("+", i.value, Zeros(self.shape_of(axes), "int32")) if axes else i.value
        code = _inside(x, _extent(self.size_code(rank), extra), r.below, r.above)
        memo = self.memo(i.variant)
        if ("mask", code) not in memo:
            memo[("mask", code)] = self.emit(f"in_{rank.lower()}", code, i.variant)
        return Term(memo[("mask", code)], tuple(axes), i.variant)

    def _tile_extent_term(self, index, i: Idx, rank_k: str):
        """The mask term of a tile index into an axis of rank ``rank_k``: ``< extent`` (with
        the EVEN_ shortcut on the streamed rank), ``>= 0`` where the interval analysis cannot
        prove the index non-negative; None when the tile covers the axis exactly."""
        low = self.low
        ext = self.size_code(rank_k)
        if len(i.axes) == 1 and _is_ident(i.value, i.axes[0], self.names):
            var = i.axes[0]
            b = low.roles.block.get(var)
            if b and not b[3] and str(b[1]) == str(low.sizes.get(rank_k)) and \
                    isinstance(ext, Int) and str(ext.value) == b[2]:
                return None  # full tile exactly covers the axis: no mask
        term = BinOp("<", i.value, ext)
        stream_bound = None
        below = reach(low, index, rank_k, padded=True).below
        if below:
            term = BinOp("&", BinOp(">=", i.value, Int(0)), term)
        stream = low.roles.stream_rank  # an alias of the streamed rank has its extent
        if (stream and rank_root(low.c, rank_k) == rank_root(low.c, stream) and self.cur_block
                and i.variant and not below and within_own_position(low, index, rank_k)):
            term = BinOp("|", BinOp("<", i.value, ext), Var(self.names.even(rank_k)))
            self.sig.evens.setdefault(rank_k, set()).add(self.cur_block)
            stream_bound = (rank_k, self.cur_block)
        if not _simple(term):
            mkey = ("mask", term)
            memo = self.memo(i.variant)
            if mkey not in memo:
                memo[mkey] = self.emit(f"in_{rank_k.lower()}", term, i.variant)
            term = memo[mkey]
        if not below:  # ``value < extent``: padding where the value is an index variable's own
            self.pad_bounds.setdefault(term, set()).add((rank_k, i.value))
        if stream_bound is not None:
            self.bound_codes[term] = stream_bound
        return Term(term, i.axes, i.variant)

    def bound_term(self, var: str):
        """The validity of ``var``'s padded tile positions (None when the tile has no padding)."""
        low = self.low
        role = low.roles.role.get(var)
        b = self.default_bind(var)
        if len(b.axes) != 1 or b.value != Var(self.names.offs(var)):
            return None
        rank = var.upper()
        if role == "stream_plain":
            ext = self.size_code(rank)
            code = BinOp("|", BinOp("<", b.value, ext), Var(self.names.even(rank)))
            if self.cur_block:
                self.sig.evens.setdefault(rank, set()).add(self.cur_block)
            else:
                code = BinOp("<", b.value, ext)
        elif role in ("full", "col", "chunk_row"):
            blk = low.roles.block[var]
            if int(blk[1]) == int(low.sizes[rank]):
                return None
            code = BinOp("<", b.value, self.size_code(rank))
        else:
            return None
        mkey = ("mask", code)
        memo = self.memo(b.variant)
        if mkey not in memo:
            memo[mkey] = self.emit(f"in_{rank.lower()}", code, b.variant)
        self.pad_bounds.setdefault(memo[mkey], set()).add((rank, b.value))
        if role == "stream_plain" and self.cur_block:
            self.bound_codes[memo[mkey]] = (rank, self.cur_block)
        return Term(memo[mkey], b.axes, b.variant)

    def padding(self, tm: Term, einsum: Einsum | None = None) -> bool:
        """Whether ``tm`` masks only tile positions outside the iteration space of ``einsum``
        (default: the Einsum being evaluated, an inlined one inside its reader): it bounds, by
        its rank's extent, the value one of the Einsum's index variables of that rank takes here
        (``offs_m < M`` for ``m``, the index a split loop rebuilds for ``m``). Such positions
        are no point; any other bound is a read past an extent, whose points are empty: a
        split's tail ``m1 * M0 + m0 >= M`` where the Einsum's indices are ``m1, m0``, a shifted
        ``m + 1``, or an inlined Einsum's own padding seen from its reader."""
        bounds = self.pad_bounds.get(tm.mask)
        einsum = einsum if einsum is not None else (self.evaluating[-1] if self.evaluating
                                                    else None)
        if not bounds or einsum is None:
            return False
        c = self.low.c
        for v in (*einsum.output_vars, *einsum.reduced):
            value = self.bind[v].value if v in self.bind else Var(self.names.offs(v))
            root = rank_root(c, v.upper())
            if any(value == x and rank_root(c, r) == root for r, x in bounds):
                return True
        return False

    def mask_var(self, need, axes) -> Node:
        """The conjunction of validity terms over ``axes``, computed once per scope."""
        need = ordered_terms(need)
        code = conj(self.bcast(tm.mask, tm.axes, axes) for tm in need)
        if len(need) == 1 and _simple(code):
            return code
        variant = self.loop is not None and any(tm.variant for tm in need)
        key = ("validity", code)
        memo = self.memo(variant)
        if key not in memo:
            memo[key] = self.emit("valid", code, variant)
        return memo[key]

    def with_points(self, out: Tile, einsum: Einsum, terms, ax: str) -> Tile:
        """``out`` (``einsum`` reduced along ``ax`` over parts with validity ``terms``) empty
        where no part exists: a sum over no point is the output's empty value, not its 0 (a
        max/min marks that by its identity instead: ``empty_at``)."""
        if einsum.reducer in ("max", "min"):
            return out
        along = [tm for tm in ordered_terms(terms) if ax in tm.axes]
        bound = self.bound_term(einsum.reduced[0])
        if bound is not None and bound not in along:
            along.append(bound)
        if all(self.padding(tm, einsum) for tm in along):
            return out  # only padding masks the points: every kept position has one
        has = frozenset(self.any_point(g, ax, einsum.name.lower())
                        for g in self._point_groups(along, einsum))
        zero = has if IDENTITY[einsum.reducer] == Const(0.0) else frozenset()  # (no part: 0)
        return replace(out, terms=out.terms | has, zero_terms=out.zero_terms | zero,
                       variant=out.variant or any(tm.variant for tm in has))

    def _point_groups(self, along: list, einsum: Einsum) -> list:
        """The masks whose existence is computed together: all of them, or, where that needs a
        tile over more ranks than the mapping allows (masks over both operands' other axes of a
        dot), those over the same axes: some point for each, which may miss an empty row but
        never empties a row with points (a group of padding alone always has one)."""
        axes = self.low.order(tuple({a for tm in along for a in tm.axes}))
        try:
            self.need2d(axes, None)
            return [along]
        except CascadeError:
            groups = [[tm for tm in along if tm.axes == k]
                      for k in dict.fromkeys(tm.axes for tm in along)]
            return [g for g in groups if not all(self.padding(tm, einsum) for tm in g)]

    def any_point(self, terms, ax: str, hint: str) -> Term:
        """Whether a reduction along ``ax`` meets a point of ``terms`` (its masks along ``ax``,
        the tile's padding among them), as a validity term over their other axes: an additive
        reduction's accumulator keeps no record of it."""
        axes = self.low.order(tuple({a for tm in terms for a in tm.axes}))
        variant = any(tm.variant for tm in terms)
        found = Reduce("max", Where(self.mask_var(terms, axes), Int(1), Int(0)), axes.index(ax))
        has = self.emit(f"has_{hint}", BinOp(">", found, Int(0), wrap=False), variant)
        return Term(has, tuple(a for a in axes if a != ax), variant)

    def mask(self, t: Tile, pred: Idx) -> Tile:
        return replace(t, terms=t.terms | {Term(pred.value, pred.axes, pred.variant)},
                       variant=t.variant or pred.variant)

