"""Reads of tensors (loads, inlined Einsums, recurrences) and the Einsums that reduce them; the
reductions themselves are in reductions.py, the validity masks of the reads in masks.py."""
from __future__ import annotations

import math

from dataclasses import replace

from einsum_ir.ir import Access, Binary, Einsum, Name, Num

from .data import gather_index, is_gather
from .reductions import ReduceGen
from .tile_ir import BroadcastTo, Conj, Load, Offset, Var
from .tiles import (
    STEP,
    Tile,
    _err,
    located,
    prefix_name,
)


class ReadGen(ReduceGen):
    def read(self, acc: Access) -> Tile:
        low = self.low
        name = acc.tensor
        rec = low.a.recurrences.get(name)
        if rec is not None and name in self.spec.phase_reads:
            return self.load(self._final_in_scratch(acc, rec))
        if name in low.inputs or name in self.spec.phase_reads:
            return self.load(acc)
        if rec is not None:
            index = acc.indices[rec.axis]
            step = rec.var
            if isinstance(index, Name) and not index.is_index:
                if name not in self.finals:
                    raise _err(f"{name} is read at its final iterate before its recurrence is "
                               f"lowered", acc)
                self.check_same(acc, rec.update, skip=rec.axis)
                return self.finals[name]
            if isinstance(index, Name) and index.name == step and name in self.mode.scan_pre:
                # the state before step n: the exclusive prefix sum computed between kernels
                return self.load(Access(prefix_name(name), acc.indices, acc.span))
            at = self._step_read(index, step)
            if at == 0:
                if name not in self.carried:
                    raise _err(f"{name}[..., {step}] is read outside its recurrence loop", acc)
                self.check_same(acc, rec.update, skip=rec.axis)
                axes = self.rec_axes(rec)
                return Tile(Var(self.carried[name]), axes, may_inf=True, variant=True)
            if at == 1:
                self.check_same(acc, rec.update, skip=rec.axis)
                return self.rec_update(name)
            raise _err(f"{name} is read at an index the Triton lowering cannot map onto its "
                       f"recurrence loop (use {step}, {step}+1 or the final {step.upper()})", acc)
        if name in self.finals:  # a finished stream reduction
            defs = low.defs[name]
            self.check_same(acc, defs[0])
            return self.finals[name]
        einsum = low.sole_definition(name, acc)
        if einsum in self.stream_reductions():
            raise _err(f"{name} is read before the loop that reduces it has finished", acc)
        return self.inline(einsum, acc)

    def _step_read(self, index, step: str) -> int | None:
        """Which state a read of a recurrence at ``index`` takes in the loop: 0 the carried one
        (before step ``it``), 1 the one after it, None neither. Inside a loop the index's value
        decides (a consumer of a reversed recurrence reads ``R[N - 1 - n]`` at position ``n =
        N - 1 - it``); elsewhere, and in a forward loop where the value is not known, the
        spelling ``R[n]`` / ``R[n+1]``."""
        if self.loop is not None:
            steps = self.eval_int(index).steps
            if steps in ((1, 0, 0), (1, 0, 1)):
                return steps[2]
            if steps is not None or self.loop.loop.reverse:
                return None
        if isinstance(index, Name) and index.name == step:
            return 0
        if (isinstance(index, Binary) and index.op == "+" and isinstance(index.lhs, Name)
                and index.lhs.name == step and isinstance(index.rhs, Num) and index.rhs.value == 1):
            return 1
        return None

    def _final_in_scratch(self, acc: Access, rec) -> Access:
        """A recurrence finished by an earlier kernel is in scratch without its step axis: only
        its final iterate can be read there."""
        index = acc.indices[rec.axis]
        if not (isinstance(index, Name) and not index.is_index):
            raise _err(f"{acc.tensor} is read at a step of its recurrence in a later kernel, "
                       f"which only has its final iterate {acc.tensor}[..., {rec.var.upper()}]",
                       acc)
        kept = tuple(i for k, i in enumerate(acc.indices) if k != rec.axis)
        return Access(acc.tensor, kept, acc.span)

    def check_same(self, acc: Access, einsum: Einsum, skip=None):
        """Refuses a read of a finished (or carried) value at other indices than the program's
        own: those values exist only at the bindings outside any inlined Einsum, so the
        definition's indices are evaluated there (inside an inlined ``T3[p / 2, m]`` the read
        ``T2[p]`` is at ``p / 2``, not at this program's ``p``)."""
        home = self.home_bind if self.home_bind is not None else self.bind
        for k, (i, j) in enumerate(zip(acc.indices, einsum.output.indices, strict=True)):
            if k == skip:
                continue
            vi = self.eval_int(i)
            vj = self._eval_at(j, home) if isinstance(j, Name) else None
            if vj is None or vi.value != vj.value:
                raise _err(f"{acc.tensor} is finished in a loop and read here at a shifted index; "
                           f"the Triton lowering keeps only this program's own values", acc)

    def _eval_at(self, expr, bind: dict):
        saved, self.bind = self.bind, bind
        try:
            return self.eval_int(expr)
        finally:
            self.bind = saved

    def rec_axes(self, rec) -> tuple:
        axes = []
        for k, i in enumerate(rec.update.output.indices):
            if k == rec.axis:
                continue
            axes += list(self.eval_int(i).axes)
        return self.low.order(axes)

    def inline(self, einsum: Einsum, acc: Access) -> Tile:
        """Evaluates ``einsum`` at the access's indices (recomputed, never stored)."""
        bound = {}
        for i, j in zip(acc.indices, einsum.output.indices, strict=True):
            if not (isinstance(j, Name) and j.is_index):
                raise _err(f"{einsum.name} cannot be inlined at this access", acc)
            bound[j.name] = self.eval_int(i)
        captured = sorted(v for v in einsum.reduced for b in bound.values() if v in b.axes)
        if captured:  # one tile axis cannot be both the reader's index and the reduced one
            raise _err(f"{einsum.name} reduces over {captured[0]}, which the positions it is read "
                       f"at here also vary along; one kernel cannot inline it", acc)
        t = self._inlined_at(einsum, bound)
        # points read past the intermediate's extent do not exist: this access's own bounds
        # (the same positions read as ``T[m]`` at ``m = n + 1`` and as ``T[n + 1]`` differ)
        outside = self._extent_terms(einsum, acc, t.axes)
        if outside:
            t = replace(t, terms=t.terms | outside,
                        variant=t.variant or any(tm.variant for tm in outside))
        return t

    def _inlined_at(self, einsum: Einsum, bound: dict) -> Tile:
        """``einsum``'s value at the ``bound`` positions, computed once per positions."""
        key = (einsum.name, tuple((v, b.value, b.axes) for v, b in sorted(bound.items())))
        for memo in (self.memo(True), self.memo(False)):
            if key in memo:
                return memo[key]
        canon, axis_of = self._canonical(einsum, bound)
        for memo in (self.memo(True), self.memo(False)):
            if canon in memo:  # the same positions over other axes: computed once, so that
                t, seen = memo[canon]  # S[p,m2] > S[p,m] is exactly false at m2 == m
                renamed = _relabelled(t, {seen[v]: axis_of[v] for v in seen})
                if renamed is not None and renamed.axes == self.low.order(renamed.axes):
                    return renamed
        saved, home = self.bind, self.home_bind
        self.home_bind = saved if home is None else home  # the bindings outside every inlining
        self.bind = {**{k: v for k, v in saved.items() if k not in einsum.reduced}, **bound}
        for v in einsum.reduced:
            self.bind.pop(v, None)
        try:
            t = self.einsum_value(einsum)
        finally:
            self.bind, self.home_bind = saved, home
        t = self.materialize(t, einsum.name)
        (self.memo(t.variant))[key] = t
        self.memo(t.variant).setdefault(canon, (t, axis_of))
        return t

    def _canonical(self, einsum: Einsum, bound: dict) -> tuple:
        """The inline key with whole-tile aranges (``offs_nc``, ``offs_c2``: positions 0 to
        BLOCK - 1 of a full or column tile) named by their block size and extent instead of
        their axis."""
        parts, axis_of = [], {}
        for v, b in sorted(bound.items()):
            axis = b.axes[0] if len(b.axes) == 1 else None
            blk = self.low.roles.block.get(axis) if axis is not None else None
            if blk is not None and not blk[3] and self.low.roles.role.get(axis) in ("full", "col") \
                    and b.value == Var(self.names.offs(axis)):
                parts.append((v, "arange", blk[1], blk[2]))  # block size and extent
                axis_of[v] = axis
            else:
                parts.append((v, b.value, b.axes))
        return ("inline-positions", einsum.name, tuple(parts)), axis_of

    def load(self, acc: Access) -> Tile:
        low = self.low
        name = acc.tensor
        ranks = low.inputs[name].ranks if name in low.inputs else \
            tuple(self.spec.phase_reads[name])
        gathers = {k: gather_index(self, i, self.size_code(ranks[k]))
                   for k, i in enumerate(acc.indices) if is_gather(i)}
        idx = [gathers[k][0] if k in gathers else self.eval_int(i)
               for k, i in enumerate(acc.indices)]
        axes = low.order(sum((i.axes for i in idx), ()))
        self.need2d(axes, acc)
        ptr = self.pointer(name)
        strides = self.sig.strides[name]
        parts, terms = [], []
        for k, i in enumerate(idx):
            parts.append((self.bcast(i.value, i.axes, axes), Var(strides[k])))
            if k in gathers:  # bounds-checked positions (backends/triton/data.py)
                terms.append(gathers[k][1])
            elif not i.axes:  # a grid index or a loop counter: exact, no padding
                term = self._scalar_extent_term(acc.indices[k], i, ranks[k], axes)
                if term is not None:
                    terms.append(term)
            elif (term := self._tile_extent_term(acc.indices[k], i, ranks[k])) is not None:
                terms.append(term)
        # (the same position read with other bounds: an inlined Einsum's own padding here)
        key = ("load", name, tuple((i.value, i.axes) for i in idx), tuple(terms))
        for memo in (self.memo(True), self.memo(False)):
            if key in memo:
                return memo[key]
        mask_parts = [self.bcast(tm.mask, tm.axes, axes) for tm in terms]
        variant = any(i.variant for i in idx) or any(tm.variant for tm in terms)
        mask = Conj(tuple(mask_parts)) if mask_parts else None
        var = self.emit(name, Load(ptr, Offset(tuple(parts)), mask), variant)
        kind = "native" if name in low.inputs else "f32"
        # an ``empty nan`` input (an intermediate an earlier kernel wrote, backends/gpu/
        # partition.py intermediate_decl) or a scratch final of an earlier phase: a NaN in
        # memory is an empty point
        nan = name in low.inputs and math.isnan(low.inputs[name].empty)
        t = Tile(var, axes, kind, frozenset(terms), frozenset(terms), False, variant,
                 src=ptr if kind == "native" else None,
                 may_nan=nan or name in self.spec.nan_reads)
        (self.memo(variant))[key] = t
        return t

    def pointer(self, name: str) -> Var:
        ptr = Var(self.names.ptr(name))
        if name not in self.sig.pointers:
            self.sig.pointers.append(name)
            if name in self.mode.extra:
                self.sig.strides[name] = [self.names.stride(name, k)
                                      for k in range(len(self.mode.extra[name]))]
                return ptr
            n = len(self.low.inputs[name].axes) if name in self.low.inputs else (
                len(self.spec.phase_reads.get(name) or self.low.outputs[name].axes)
                if name in self.spec.phase_reads or name in self.low.outputs else
                len(self.scratch_axes(name)))
            self.sig.strides[name] = [self.names.stride(name, k) for k in range(n)]
        return ptr

    def scratch_axes(self, name):
        rec = self.low.a.recurrences.get(name)
        if rec is not None:  # the final iterate: the step axis is gone
            return [i.name.upper() for k, i in enumerate(rec.update.output.indices)
                    if k != rec.axis]
        (e,) = self.low.defs[name]
        return [i.name.upper() for i in e.output.indices]

    # ----------------------------------------------------------------- einsums
    def stream_reductions(self):
        return self.low.stream_reductions

    def einsum_value(self, einsum: Einsum, stream_var: str | None = None) -> Tile:
        """The value of ``einsum`` in the current bindings; a reduction over ``stream_var`` is
        reduced only along this block's tile (the caller accumulates across iterations)."""
        self.evaluating.append(einsum)  # padding is relative to it (masks.MaskGen.padding)
        try:
            with located(einsum):
                return self._einsum_value(einsum)
        finally:
            self.evaluating.pop()

    def _einsum_value(self, einsum: Einsum) -> Tile:
        pred = None
        if einsum.where is not None:
            pred = self.eval_pred(einsum.where)
        reduced = [v for v in einsum.reduced]
        if not reduced:
            t = self.eval_value(einsum.body)
            if pred is not None:
                t = self.mask(t, pred)
            return t
        if len(reduced) > 1:
            raise _err("a reduction over several indices is outside the Triton lowering's reach; "
                       "split it into one Einsum per index", einsum)
        (r,) = reduced
        rb = self.default_bind(r, einsum)
        if len(rb.axes) != 1:
            raise _err(f"the reduction over {r} is outside the Triton lowering's reach", einsum)
        ax = rb.axes[0]
        if einsum.reducer == "sum":
            dot = self.try_dot(einsum, ax, pred)
            if dot is not None:
                return dot
        t = self.eval_value(einsum.body)
        if pred is not None:
            t = self.mask(t, pred)
        if any(ax in tm.axes and not set(tm.axes) <= set(t.axes) for tm in t.terms):
            # the mask of the reduction spans more than the value (``1 where C[p,nc] < 1``,
            # ``LG[m2] where m2 <= p``): the value is spread over the mask's axes
            t = self._spread(t, einsum)
        if ax not in t.axes:
            raise _err(f"the reduced index {r} does not vary in this tile", einsum)
        need, terms, nan = self._reduction_mask(einsum, t, ax, r), t.terms, t.may_nan
        if nan:  # a NaN an operation made is an empty point: the reduction skips it
            t, seen = self._skip_nan(t, einsum.reducer)
            terms = terms | {seen}
        out = self._reduce(einsum, t, ax, need, nan)
        return self.with_points(out, einsum, terms, ax)



    # ----------------------------------------------------------------- recurrences
    def rec_update(self, name: str) -> Tile:
        if self.loop is not None and name in self.loop.newval:
            return self.loop.newval[name]
        if name not in self.carried:
            raise _err(f"{name}[..., {self.low.a.recurrences[name].var}+1] is read outside its "
                       f"recurrence loop", self.low.a.recurrences[name].update)
        rec = self.low.a.recurrences[name]
        saved = self.bind  # the update and its group count steps, whichever way positions run
        self.bind = {**saved, rec.var: STEP}
        try:
            t = self.einsum_value(rec.update)
        finally:
            self.bind = saved
        axes = self.rec_axes(rec)
        value = self.f32(t)
        if tuple(t.axes) != tuple(axes):
            value = BroadcastTo(self.bcast(value, t.axes, axes) if t.axes else value,
                                self.shape_of(axes))
        var = self.emit(name.lower() + "_next", value, True)
        may_inf = t.may_inf
        out = Tile(var, axes, "f32", frozenset(), frozenset(), may_inf, True, max_of=t.max_of,
                   may_nan=t.may_nan)
        self.loop.newval[name] = out
        return out


# ----------------------------------------------------------------------------------- utilities

def _relabelled(t: Tile, rename: dict) -> Tile | None:
    """``t`` over renamed axes (the same positions), or None when a fact of it names an axis
    it cannot rename (a term computed over the old axes stays valid: same positions)."""
    if not rename or all(a == b for a, b in rename.items()):
        return t
    if len(set(rename.values())) != len(rename):
        return None

    def axes(x):
        return tuple(rename.get(a, a) for a in x)

    def terms(ts):
        return frozenset(replace(tm, axes=axes(tm.axes)) for tm in ts)

    return replace(t, axes=axes(t.axes), terms=terms(t.terms), zero_terms=terms(t.zero_terms),
                   ninf_terms=terms(t.ninf_terms), lin=None, diff=None, dot=None,
                   max_of=frozenset())
