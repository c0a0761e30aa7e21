"""Sums of products of two tiles over a shared axis as ``tl.dot``, with the -inf masking at the source."""
from __future__ import annotations

from dataclasses import replace

from einsum_ir.exprs import product_factors
from einsum_ir.ir import Einsum

from .tile_ir import Assign, BinOp, Call, Cast, Const, Dot, If, Node, Var, Where
from .tiles import (
    Idx,
    Term,
    Tile,
    _err,
    _simple,
    conj,
    ordered_terms,
)
from .values import ValueGen

_MINUS_INF = Const(float("-inf"))


class DotGen(ValueGen):
    def try_dot(self, einsum: Einsum, ax: str, pred: Idx | None) -> Tile | None:
        """``sum[ax]`` of a product of two 2-D tiles sharing ``ax`` as ``tl.dot`` (other factors
        scale the result); None when the body is not such a product."""
        product = product_factors(einsum.body)
        tiles = [(self.eval_value(f.expr), f.divisor) for f in product.factors]
        pair = _dot_pair(tiles, ax)
        if pair is None and (tiles := self._fold_vectors(tiles, ax, einsum)) is not None:
            pair = _dot_pair(tiles, ax)
        if pair is None:
            return None
        with_ax, ka, kb, oa, ob = pair
        if pred is not None and ax in pred.axes and \
                not any(set(pred.axes) <= set(k.axes) for k in (ka, kb)):
            return None  # the predicate spans both operands' other axes: no operand holds it
        if product.negated:  # the sign goes on one operand: tl.dot(-a, b)
            ka = self.negate(ka)
        lo = self.low
        for a in (oa, ob, ax):
            blk = lo.roles.block.get(a)
            if blk and blk[1] < 16:
                raise _err(f"tl.dot needs tiles of at least 16 along {a} (got {blk[1]})", einsum)
        # operands in [other, ax] / [ax, other] order, validity zeroed where needed
        bound = self.bound_term(einsum.reduced[0])
        zeroed = set()

        def operand(t: Tile, first: bool, other_t: Tile):
            return self._dot_operand(t, other_t, (oa, ax) if first else (ax, ob), ax, bound, pred,
                                     zeroed)
        ca = operand(ka, True, kb)
        cb = operand(kb, False, ka)
        out = (oa, ob)
        code = Dot(ca, cb)
        axes = lo.order(out)
        if axes != out:
            code = Call("trans", (code,))
        variant = ka.variant or kb.variant or (pred is not None and pred.variant)
        terms = frozenset(tm for tm in ka.terms | kb.terms if ax not in tm.axes)
        ninf = frozenset()
        if pred is not None and ax not in pred.axes and lo.feeds_max(einsum.name):
            code, ninf = self.minus_inf_at_source(einsum, pred, code, axes, terms)
        t = Tile(code, axes, "f32", terms, frozenset(), False, variant, ninf_terms=ninf)
        t = self.materialize(t, einsum.name)
        # (``zeroed``: the masks the operands applied, where a NaN they had is, among them)
        along = ka.terms | kb.terms | zeroed | ({Term(pred.value, pred.axes, pred.variant)}
                                                if pred is not None and ax in pred.axes else set())
        t = self.with_points(t, einsum, along, ax)
        if not ninf and axes == out:  # the plain tl.dot(a, b): "+ acc" may accumulate in it
            t = replace(t, dot=(ca, cb))
        for k, (other, inv) in enumerate(tiles):
            if k in with_ax:
                continue
            t = self.binary("/" if inv else "*", t, other, einsum)
        if pred is not None and ax not in pred.axes:
            t = self.mask(t, pred)
        elif pred is not None:
            rest = Idx(pred.value, pred.axes, pred.variant)
            t = replace(t, variant=t.variant or rest.variant)
        return t

    def _fold_vectors(self, tiles: list, ax: str, einsum: Einsum) -> list | None:
        """The factors with the ones over ``ax`` alone (a gate ``g[m]``, a row of a program on
        the grid ``B[q,m]``) multiplied into the first 2-D factor along ``ax``, so that two
        operands of ``tl.dot`` remain; None where folding leaves no such pair."""
        vectors = [k for k, (t, _) in enumerate(tiles) if tuple(t.axes) == (ax,)]
        rest = [k for k, (t, _) in enumerate(tiles) if ax in t.axes and k not in vectors]
        others = [frozenset(tiles[k][0].axes) - {ax} for k in rest]
        if not vectors or len(rest) != 2 or others[0] == others[1] or any(
                len(tiles[k][0].axes) != 2 or tiles[k][1] for k in rest):
            return None  # no dot after folding either: nothing is computed
        into = rest[0]
        t = tiles[into][0]
        for k in vectors:
            t = self.binary("/" if tiles[k][1] else "*", t, tiles[k][0], einsum)
        return [(t, False) if k == into else f for k, f in enumerate(tiles) if k not in vectors]

    def minus_inf_at_source(self, einsum, pred, code, axes, terms):
        """Scores a max reads are -inf where the predicate fails, at the dot: the max needs no
        mask and exp gives 0. Blocks the predicate covers entirely skip the mask (FlexAttention's
        full blocks, the tutorial's off-band stage), in the same loop. Returns (code, -inf set)."""
        rows = {v for v, r in self.low.roles.role.items() if r in ("row", "chunk_row")}
        ninf = frozenset(tm for tm in terms | {Term(pred.value, pred.axes, pred.variant)}
                         if set(tm.axes) - rows)
        cond = self.partial_block_condition(einsum, pred, ninf)
        if cond is None:
            return Where(self.mask_var(list(ninf), axes), code, _MINUS_INF), ninf
        var = self.emit(einsum.name, code, True)
        mask = conj(self.bcast(tm.mask, tm.axes, axes) for tm in ordered_terms(ninf))
        self.loop.body.append(If(cond, (Assign(var.name, Where(mask, var, _MINUS_INF)),),
                                  "a block the predicate cuts"))
        return var, ninf

    def _dot_operand(self, t: Tile, other_t: Tile, want, ax, bound, pred, zeroed) -> Node:
        """An operand of ``tl.dot``: zero where it is not valid, in the other operand's dtype
        when that one is loaded, transposed to ``want``. A product is zero where one factor is
        zero and the other finite: only a loaded operand (its padding reads 0, its values are
        finite) may stay unmasked where the other one is zero; a computed one (``exp`` of a
        score past the keys' extent overflows fp16) is masked at every invalid point."""
        need = [tm for tm in t.terms if ax in tm.axes]
        if bound is not None and bound not in need:
            need.append(bound)
        if pred is not None and ax in pred.axes and set(pred.axes) <= set(t.axes):
            # a predicate over the other operand's axes too (``where m <= p`` of V[m,f] *
            # E[p,m]) masks only the operand that spans it: zero there, the product is zero
            need.append(Term(pred.value, pred.axes, pred.variant))
        finite = t.kind == "native"
        need = [tm for tm in need if tm not in t.zero_terms
                and not (finite and (tm in other_t.zero_terms or tm in zeroed))]
        zeroed.update(need)
        code = Cast(t.value) if t.kind == "int" else t.value
        if t.may_nan:  # a NaN an operation made is an empty point: it contributes nothing
            code = code if _simple(code) else self.emit("nan_in", code, t.variant)
            zeroed.add(Term(BinOp("==", code, code), t.axes, t.variant))
            code = Where(BinOp("==", code, code, wrap=False), code, Const(0.0))
        if need:
            code = Where(self.mask_var(need, t.axes), code, Const(0.0))
        if t.kind != "native" and other_t.kind == "native" or \
                self._stored(t) and other_t.kind == "native" and not self._stored(other_t):
            # an intermediate an earlier kernel wrote is fp32 in memory: as a computed operand
            code = Cast(code, other_t.src)
        return code if tuple(t.axes) == want else Call("trans", (code,))

    def _stored(self, t: Tile) -> bool:
        """Whether ``t`` is loaded from an input an earlier kernel wrote (``Config.stored``)."""
        return t.kind == "native" and any(t.src == Var(self.names.ptr(name))
                                          for name in self.low.cfg.stored)


def _dot_pair(tiles, ax):
    """(indices of the two factors along ``ax``, their tiles, their other axes), or None."""
    with_ax = [k for k, (t, _) in enumerate(tiles) if ax in t.axes]
    if len(with_ax) != 2:
        return None
    (ka, ta_inv), (kb, tb_inv) = tiles[with_ax[0]], tiles[with_ax[1]]
    if ta_inv or tb_inv or len(ka.axes) != 2 or len(kb.axes) != 2:
        return None
    oa = next(a for a in ka.axes if a != ax)
    ob = next(a for a in kb.axes if a != ax)
    if oa == ob or any(ax in other.axes for k, (other, _) in enumerate(tiles) if k not in with_ax):
        return None
    return with_ax, ka, kb, oa, ob
