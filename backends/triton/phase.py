"""One kernel (phase): program ids, the loops over the streamed rank, stores."""
from __future__ import annotations

from dataclasses import replace

from backends.gpu.bounds import loop_bounds, pred_range
from backends.gpu.schedule import Loop
from einsum_ir.ir import Name

from .kernel import LoopScope
from .stores import StoreGen
from .rules import dead_assignments
from .tile_ir import (
    LOOP_VAR,
    Arange,
    Assign,
    BinOp,
    Blank,
    Call,
    Comment,
    Conj,
    Const,
    Disj,
    For,
    Full,
    If,
    Int,
    Op,
    ProgramId,
    Var,
    Where,
    Zeros,
    chain_calls,
)
from .tiles import (
    IDENTITY,
    NSPLIT_ARG,
    STEP,
    Idx,
    Term,
    Tile,
    _err,
    increments_name,
    prefix_name,
    bound_node,
    conj,
    ordered_terms,
)


def _first_einsum(loop: Loop):
    kind, u = loop.units[0] if loop.units else ("", None)
    return u[0] if kind == "rec" else u


def _bare(op: str, x, y) -> BinOp:
    return BinOp(op, x, y, wrap=False)


def _accumulate(reducer: str, acc: Var, part):
    """One step of a loop-carried accumulator."""
    if reducer == "max":
        return Call("maximum", (acc, part))
    if reducer == "min":
        return Call("minimum", (acc, part))
    return _bare("+" if reducer == "sum" else "*", acc, part)


class PhaseGen(StoreGen):
    def run(self) -> list:
        """The kernel's statements."""
        low = self.low
        roles = low.roles
        head = []
        # program ids: rows (axis 0) and batch (axis 1)
        if roles.row and roles.role[roles.row] == "row" and self.mode.has_row:
            v = roles.row
            head.append(Assign("pid_r", ProgramId(0)))
            offs = self.names.offs(v)
            head.append(Assign(offs, _bare("+", _bare("*", Var("pid_r"), self.blk(v)),
                                           Arange(self.blk(v)))))
            self.memo_inv[("offs", v)] = offs
        if roles.batch:
            head.append(Assign("pid_b", ProgramId(1)))
            rem = Var("pid_b")
            for k, v in enumerate(reversed(roles.batch)):
                ext = self.size_code(v.upper())
                if k == len(roles.batch) - 1:
                    head.append(Assign(self.names.idx(v), rem))
                else:
                    head.append(Assign(self.names.idx(v), _bare("%", rem, ext)))
                    quotient = self.fresh(f"rem_{k}")
                    head.append(Assign(quotient, _bare("//", rem, ext)))
                    rem = Var(quotient)
        self.lines = head
        for k, loop in enumerate(self.spec.loops):
            self.emit_loop(k, loop)
        # after the loops: outputs and scratch
        for e in self.spec.post:
            self.store_einsum(e)
        for name in self.spec.store_finals:
            self.store_scratch(name)
        return dead_assignments(self.lines)

    # ----------------------------------------------------------------- loops
    def bound_code(self, expr):
        """A typed loop bound (backends.gpu.bounds) as a node."""
        return bound_node(expr, self.symbol_code)

    def symbol_code(self, sym):
        kind = sym[0]
        if kind == "size":
            return self.size_code(sym[1])
        if kind == "block":
            return self.blk(sym[1])
        if kind == "pid":
            return Var("pid_r")
        return Var(self.names.idx(sym[1]))

    def closure_of(self, einsum, seen=None):
        seen = seen if seen is not None else {}
        if einsum.name in seen:
            return seen.values()
        seen[einsum.name] = einsum
        for acc in einsum.reads():
            t = acc.tensor
            if t in self.low.inputs:
                continue
            for e in self.low.defs[t]:
                if e.name in self.low.a.recurrences and e.name != einsum.name:
                    continue
                if e.name in self.low.stream_red_names:
                    continue
                self.closure_of(e, seen)
        return list(seen.values())

    def partial_block_condition(self, einsum, pred, ninf):
        """The condition "this loop step needs the mask", or None to mask every step."""
        low = self.low
        if self.loop is None or self.mode.parallel:
            return None
        loop = self.loop.loop
        full = pred_range(low, einsum, loop, full=True)
        if full is None:
            return None
        parts = []
        if full.lo is not None:
            parts.append(BinOp("<", LOOP_VAR, self.emit("full_lo", self.bound_code(full.lo), False)))
        if full.hi is not None:
            parts.append(BinOp(">=", LOOP_VAR,
                               self.emit("full_hi", self.bound_code(full.hi), False)))
        if not parts:
            return None
        for tm in ninf:
            code = tm.mask
            if code == pred.value:
                continue
            if code in self.bound_codes:
                rank, blk = self.bound_codes[code]
                self.sig.blocks.add(blk)
                step_end = _bare("*", Op("paren", (_bare("+", LOOP_VAR, Int(1)),)), Var(blk))
                parts.append(BinOp(">", step_end, self.size_code(rank)))
                continue
            return None  # another kind of emptiness: mask every step
        return Disj(tuple(parts)) if len(parts) > 1 else parts[0]

    def emit_loop(self, k: int, loop: Loop):
        """``for it in range(lo, hi)`` over the streamed rank: carried state initialised before,
        updated in the body, finished values after."""
        bounds = loop_bounds(self.low, loop)
        self._loop_comments(k, loop, bounds.notes)
        self.carried = {}
        accs = self._loop_state(loop)
        visits, lo, hi = self._visited_parts(k, bounds)
        lo, hi = self._loop_range(k, lo, hi)
        self.loop = LoopScope(loop, self._loop_block(loop))
        saved = dict(self.bind)
        self._bind_loop_var(loop)
        self._loop_body(loop, accs)
        body, self.loop = self.loop.body, None
        if visits is not None:  # the gaps of a union of ranges: every unit is empty there
            body = [If(visits, tuple(body), "a step in a part of the union of ranges")]
        self.lines.append(For(lo, hi, tuple(body)))
        self.bind = saved
        self._loop_finish(loop, accs)

    def _visited_parts(self, k: int, bounds):
        """(the condition "step ``it`` is in some part of the bounds' union", lo, hi): the
        condition is None where every step of ``range(lo, hi)`` is visited; a union's hull is
        spelled over its parts."""
        lo, hi = self.bound_code(bounds.lo), self.bound_code(bounds.hi)
        if not bounds.parts or self.mode.parallel:
            return None, lo, hi
        terms, los, his = [], [], []
        for i, (lo_i, hi_i) in enumerate(bounds.parts):
            los.append(self.emit(f"lo_{k}_{i}", self.bound_code(lo_i), False))
            his.append(self.emit(f"hi_{k}_{i}", self.bound_code(hi_i), False))
            terms.append(Conj((BinOp(">=", LOOP_VAR, los[-1]), BinOp("<", LOOP_VAR, his[-1]))))
        lo = Call("maximum", (chain_calls("minimum", los), Int(0)))
        hi = Call("minimum", (chain_calls("maximum", his), self.bound_code(bounds.count)))
        return Disj(tuple(terms)), lo, hi

    def _loop_comments(self, k: int, loop: Loop, notes):
        units = {e.name for kind, u in loop.units for e in (u if kind == "rec" else [u])}
        desc = ", ".join(sorted(units | {e.name for e in loop.outputs}
                                | {self.names.tensor(increments_name(n))
                                   for n, _, _ in self.mode.scan_inc}))
        self.lines.append(Blank())
        self.lines.append(Comment(f"loop {k} over the streamed rank ({loop.var}, {loop.style}): "
                                  f"{desc}"))
        if loop.reverse:
            self.lines.append(Comment(f"reversed: step it is position {loop.var.upper()} - 1 - "
                                      f"it, the positions count down"))
        if self.mode.parallel:
            self.lines.append(Comment("one step per program: the programs of grid axis 0 run "
                                      "the steps in parallel"))
            if self.mode.scan_pre:
                self.lines.append(Comment("the state before each step is read from its prefix "
                                          "sum (" + ", ".join(self.names.tensor(prefix_name(n))
                                                              for n in sorted(self.mode.scan_pre)) + ")"))
        else:
            for n in notes:
                self.lines.append(Comment(f"bounds derived from {n}"))

    def _loop_state(self, loop: Loop) -> dict:
        """Initial values of the carried recurrences (self.carried) and of the accumulators."""
        low = self.low
        accs = {}
        for kind, u in loop.units:
            if kind != "rec":
                axes = low.order(sum((self.eval_int(i).axes for i in u.output.indices), ()))
                name = self.emit(u.name.lower() + "_acc",
                                 Full(self.shape_of(axes), IDENTITY[u.reducer])
                                 if axes else IDENTITY[u.reducer], False)
                accs[u.name] = (name, axes)
                continue
            for e in u:
                if e.name in low.a.recurrences and e.name not in self.carried:
                    rec = low.a.recurrences[e.name]
                    init = self.einsum_value(rec.init)
                    axes = self.rec_axes(rec)
                    value = self.f32(init)
                    value = _bare("+", Zeros(self.shape_of(axes)),
                                  self.bcast(value, init.axes, axes) if init.axes else value) \
                        if axes else value
                    self.carried[e.name] = self.emit(e.name.lower(), value, False).name
        return accs

    def _loop_range(self, k: int, lo, hi) -> tuple:
        """The loop's (lo, hi); a parallel loop makes one step per program, a split one a
        slice."""
        if self.mode.parallel:
            lo = ProgramId(0)
        lo_n = self.emit(f"lo_{k}", lo, False)
        hi_n = self.emit(f"hi_{k}", _bare("+", lo_n, Int(1)) if self.mode.parallel else hi, False)
        if self.mode.split_stream:
            nsplit = self.names.keyed(("nsplit",), "NSPLIT")
            self.lines.append(Comment(f"this program reduces one of {nsplit} slices of the loop"))
            chunk = Var(self.fresh(f"chunk_{k}"))
            self.lines.append(Assign(chunk.name, Call("cdiv", (_bare("-", hi_n, lo_n),
                                                                Var(nsplit)))))
            self.lines.append(Assign(lo_n.name, _bare("+", lo_n, _bare("*", ProgramId(0), chunk))))
            self.lines.append(Assign(hi_n.name, Call("minimum", (_bare("+", lo_n, chunk), hi_n))))
            if NSPLIT_ARG not in self.sig.sizes:
                self.sig.sizes.append(NSPLIT_ARG)
        return lo_n, hi_n

    def _loop_block(self, loop: Loop):
        """The block constexpr of the loop's tile (None for a split without a tiled inner)."""
        roles = self.low.roles
        if loop.style == "plain":
            return roles.block[loop.var][0]
        split = self.low.split_outer_of(loop.var.upper())
        if split is None:  # a token recurrence: no tile
            return None
        return next((roles.block[v][0] for v in roles.role
                     if v.upper() == split.inner and v in roles.block), None)

    def _bind_loop_var(self, loop: Loop):
        """The loop's index values: ``it`` itself (split) or its block of offsets (plain)."""
        roles = self.low.roles
        if loop.style == "split":
            here = self.bind[loop.var] = self.position_of_step(loop)
            split = self.low.split_outer_of(loop.var.upper())
            for v, r in roles.role.items():
                if split is not None and r == "reshape" and v.upper() == split.rank:
                    inner_v = next((x for x, rr in roles.role.items()
                                    if x.upper() == split.inner and rr in ("chunk_row", "col")),
                                   None)
                    if inner_v is None:
                        raise _err(f"{v} (= {split.outer.lower()} * {split.inner} + "
                                   f"{split.inner.lower()}) is used here, but no tile walks "
                                   f"{split.inner.lower()} in this loop; the Triton lowering "
                                   f"cannot rebuild {v}", _first_einsum(loop))
                    inner = self.default_bind(inner_v)
                    size = self.index_size_code(split.inner)
                    rebuilt = BinOp("+", _bare("*", here.value, size), inner.value)
                    self.bind[v] = Idx(rebuilt, inner.axes, True, (here, size, inner))
            return
        v = loop.var
        blk = self.blk(v)
        local = self.fresh(f"arange_{v}")
        offs = self.names.offs(v)
        self.loop.body.append(Assign(offs, _bare("+", _bare("*", LOOP_VAR, blk), Arange(blk))))
        if ("arange", v) not in self.memo_inv:
            self.lines.append(Assign(local, Arange(blk)))
            self.memo_inv[("arange", v)] = local
        self.bind[v] = Idx(Var(offs), (v,), True,
                           (Idx(LOOP_VAR, (), True), blk,
                            Idx(Var(self.memo_inv[("arange", v)]), (v,))))

    def position_of_step(self, loop: Loop) -> Idx:
        """The position of step ``it`` of a recurrence loop: ``it``, or ``S - 1 - it`` where the
        positions count down (a reversed recurrence, backends/gpu/direction.py)."""
        if not loop.reverse:
            return STEP
        last = _bare("-", self.size_code(loop.var.upper()), Int(1))
        return Idx(Op("paren", (_bare("-", last, LOOP_VAR),)), (), True, steps=(-1, 1, -1))

    def _loop_body(self, loop: Loop, accs: dict):
        low = self.low
        for kind, u in loop.units:
            if kind == "rec":  # plain members of the group are inlined on demand
                for e in u:
                    if e.name in low.a.recurrences:
                        self.rec_update(e.name)
                continue
            name, axes = accs[u.name]
            t = self.einsum_value(u, stream_var=loop.var)
            part = self.f32(t)
            if tuple(t.axes) != tuple(axes):
                part = self.bcast(part, t.axes, axes)
            # validity over the kept axes: a step's empty points add the identity; the terms
            # the loop does not change make the finished value's empty points
            # (a tile's padding is not a point: the store's mask leaves it out)
            kept = [tm for tm in ordered_terms(t.terms)
                    if set(tm.axes) <= set(axes) and not self.padding(tm, u)]
            # (a sum's step that is 0 outside a term adds nothing there: no select)
            zero = t.zero_terms if u.reducer == "sum" else frozenset()
            stepwise = [self.bcast(tm.mask, tm.axes, axes) for tm in kept
                        if tm.variant and tm not in zero]
            if stepwise:
                part = Where(conj(stepwise), part, IDENTITY[u.reducer])
            has = self._any_step(u, [tm for tm in kept if tm.variant], axes)
            self.acc_facts[u.name] = (t.empty_at, frozenset(tm for tm in kept if not tm.variant),
                                      has)
            self.loop.body.append(Assign(name.name, _accumulate(u.reducer, name, part)))
        for name, upd, inc in self.mode.scan_inc:
            rec = low.a.recurrences[name]
            idx = [Name(rec.var) if k == rec.axis else i for k, i in enumerate(upd.output.indices)]
            self.store(increments_name(name), idx, self._increment(self.eval_value(inc), upd),
                       cast=False, in_loop=True)
        for e in loop.outputs:
            self.store_einsum(e, in_loop=True)
        for name, var in self.carried.items():
            if name in self.loop.newval:
                self.loop.body.append(Assign(var, self.loop.newval[name].value))

    def _increment(self, t: Tile, upd) -> Tile:
        """A running sum's increment as stored for the scan: 0 where it is empty (an empty
        increment leaves the state), not the value the tile has there."""
        masks = self.validity_masks(t, t.axes, t.zero_terms, upd)
        if not masks:
            return t
        return replace(t, value=Where(conj(masks), self.f32(t), Const(0.0)), kind="f32",
                       terms=frozenset(), src=None, lin=None)

    def _any_step(self, u, stepwise: list, axes) -> Var | None:
        """Beside an additive accumulator whose steps may all be empty (the terms of a step
        that vary in the loop), a count of whether some step met a point: what the sum keeps
        no record of (a max/min keeps its identity, ``empty_at``). None where no step is
        masked."""
        if not stepwise or u.reducer in ("max", "min"):
            return None
        has = Var(self.fresh(f"{u.name.lower()}_has"))
        self.lines.append(Assign(has.name, Zeros(self.shape_of(axes), "int32") if axes
                                 else Int(0)))
        step = Where(conj(self.bcast(tm.mask, tm.axes, axes) for tm in stepwise), Int(1), Int(0))
        self.loop.body.append(Assign(has.name, Call("maximum", (has, step))))
        return has

    def _loop_finish(self, loop: Loop, accs: dict):
        """The finished values: the carried state and the accumulators after the loop."""
        for name, var in self.carried.items():
            rec = self.low.a.recurrences[name]
            self.finals[name] = Tile(Var(var), self.rec_axes(rec), "f32", may_inf=True)
        for kind, u in loop.units:
            if kind == "sred":
                name, axes = accs[u.name]
                empty_at, terms, has = self.acc_facts.get(u.name, (None, frozenset(), None))
                zero = frozenset()
                if has is not None:  # a row no step met a point of is empty (its sum is 0)
                    found = self.emit(f"has_{u.name.lower()}", _bare(">", has, Int(0)), False)
                    terms = terms | {Term(found, axes, False)}
                    zero = frozenset({Term(found, axes, False)}) if u.reducer == "sum" else zero
                self.finals[u.name] = Tile(name, axes, "f32", terms, zero,
                                           may_inf=u.reducer in ("max", "min"), empty_at=empty_at)
        self.carried = {}
