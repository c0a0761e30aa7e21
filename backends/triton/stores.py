"""Stores of finished values: outputs with their empty points, and the scratch intermediates."""
from __future__ import annotations

import math

from einsum_ir.errors import CascadeError
from einsum_ir.ir import Einsum

from .reads import ReadGen
from .tile_ir import (
    BinOp,
    BroadcastTo,
    Cast,
    Const,
    Offset,
    StoreStmt,
    Var,
    Where,
    Zeros,
)
from .tiles import (
    Tile,
    const_tile,
    _is_ident,
    located,
    conj,
    ordered_terms,
)



_NAN = Const(float("nan"))


def _bare(op: str, x, y) -> BinOp:
    return BinOp(op, x, y, wrap=False)


class StoreGen(ReadGen):
    """The stores of a phase: an output's empty points as its declared value, scratch as is."""

    # ----------------------------------------------------------------- stores
    def store_einsum(self, e: Einsum, in_loop=False):
        if e.name in self.finals:
            t = self.finals[e.name]
        else:
            t = self.einsum_value(e)
        with located(e):
            self.store(e.name, e.output.indices, t, cast=True, in_loop=in_loop)

    def store_scratch(self, name: str):
        (e,) = [x for x in self.low.defs[name]] if name not in self.low.a.recurrences else \
            [self.low.a.recurrences[name].update]
        t = self.finals[name]
        idx = [i for k, i in enumerate(e.output.indices)
               if name not in self.low.a.recurrences or k != self.low.a.recurrences[name].axis]
        t, empty = self._empty_as_nan(t, e)
        if empty:
            self.nan_finals.add(name)
        self.store(name, idx, t, cast=False)

    def _empty_as_nan(self, t: Tile, einsum: Einsum) -> tuple:
        """``t`` with NaN at its empty points, and whether it has any: the later phase that
        loads the scratch copy knows no validity terms, but a NaN there is an empty point to
        every reader (``Tile.may_nan``). Padding is left out: no store reaches it."""
        valid = self.validity_masks(t, t.axes, einsum=einsum)
        if not valid and t.empty_at is None:
            return t, False
        value = t.value
        if t.empty_at is not None:  # a max/min over no point
            value = Where(_bare("==", value, Const(t.empty_at)), _NAN, value)
        if valid:
            value = Where(conj(valid), value, _NAN)
        return Tile(value, t.axes, "f32", may_inf=t.may_inf, may_nan=True), True

    def _padding_terms(self, idx, axes) -> list:
        """The padding of the tiles a computed index is made of (``n * C + c`` with a block of c
        wider than C): the index's own bound (``< P``) lets the padded positions reach the next
        chunk's points, which another step writes."""
        out = []
        for var in dict.fromkeys(v for i in idx for v in i.axes
                                 if not _is_ident(i.value, v, self.names)):
            term = self.bound_term(var)
            if term is not None:
                out.append(self.bcast(term.mask, term.axes, axes))
        return out

    def store(self, name, indices, t: Tile, cast: bool, in_loop=False):
        low = self.low
        idx = [self.eval_int(i) for i in indices]
        axes = low.order(sum((i.axes for i in idx), ()))
        ptr = self.pointer(name)
        strides = self.sig.strides[name]
        ranks = [d for d in (low.outputs[name].ranks if name in low.outputs else
                             self.mode.extra[name] if name in self.mode.extra else
                             self.scratch_axes(name))]
        parts, terms = [], []
        for k, i in enumerate(idx):
            parts.append((self.bcast(i.value, i.axes, axes), Var(strides[k])))
            if i.axes:
                ext = self.size_code(ranks[k])
                var = i.axes[0] if len(i.axes) == 1 and _is_ident(i.value, i.axes[0], self.names) else None
                b = low.roles.block.get(var) if var else None
                if b and not b[3] and str(b[1]) == str(low.sizes.get(ranks[k])):
                    continue
                terms.append(self.bcast(BinOp("<", i.value, ext), i.axes, axes))
        terms += self._padding_terms(idx, axes)
        value = self.f32(t)
        if tuple(t.axes) != tuple(axes):
            if not set(t.axes) <= set(axes):
                raise CascadeError(f"cannot store {name}: its value spans {t.axes}")
            if t.axes:
                value = BroadcastTo(self.bcast(value, t.axes, axes), self.shape_of(axes))
            elif axes:  # a scalar (a constant need not be a tensor: tl.broadcast_to refuses it)
                value = BinOp("+", Zeros(self.shape_of(axes), "float32"), value)
        # an empty point is stored as the output's declared empty value (0 unless ``empty``)
        declared = float(low.outputs[name].empty) if name in low.outputs else 0.0
        empty = const_tile(declared).value
        # (where the value is 0 outside a term, an empty 0 needs no select there)
        zero = t.zero_terms if empty == Const(0.0) else frozenset()
        valid = self.validity_masks(t, axes, zero) if cast else []
        if valid:  # points outside the value's validity terms are empty
            value = Where(conj(valid), value, empty)
        if cast and t.empty_at is not None:  # a max/min over no point is empty
            value = Where(_bare("==", value, Const(t.empty_at)), empty, value)
        v = self.emit(name.lower() + "_out", value, in_loop)
        if cast and not math.isnan(declared):
            # a NaN an operation makes (0 / 0 of an empty row or a zero normaliser, inf - inf,
            # a negative base to a fractional power) is the interpreter's empty point (an
            # ``empty nan`` intermediate keeps it: its reader takes it for one)
            v2 = self.emit(name.lower() + "_val", Cast(Where(_bare("==", v, v), v, empty), ptr),
                           in_loop)
        else:
            v2 = v
        self.stmt(StoreStmt(ptr, Offset(tuple(parts)), v2, conj(terms) if terms else None,
                            atomic=self.mode.split_stream and not cast), in_loop)

    def validity_masks(self, t: Tile, axes, zero=frozenset(), einsum=None) -> list:
        """The masks over ``axes`` outside which ``t`` is empty, in a stable order: not the
        terms outside which it is already 0 (``zero``), nor, for ``einsum``, its padding."""
        return [self.bcast(tm.mask, tm.axes, axes) for tm in ordered_terms(t.terms)
                if set(tm.axes) <= set(axes) and tm not in zero
                and not (einsum is not None and self.padding(tm, einsum))]
