"""The schedule of a planned kernel: loops over the streamed rank, phases, the scan decision.

The :class:`Planner` puts every recurrence group and every reduction over the streamed rank into a
loop level (a value needed after the reduction it depends on is finished gets a later loop) and
into a phase (reductions that do not involve the row rank go to a first kernel whose results are
written to scratch memory). :func:`schedule` returns the immutable :class:`KernelPlan`, with the
decision whether the recurrences run as a parallel scan made there, once.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from einsum_ir.ir import Access, Binary, Einsum, Name, Num, walk

from .direction import reads_reversed, reversed_recurrences
from .plan import Config, Lowering, _err


@dataclass(frozen=True)
class Loop:
    """One loop over the streamed rank."""

    level: int
    style: str  # "split" (outer var stepped, inner tile) or "plain" (tiled stream var)
    var: str  # the stepped var (m1 / n) or the plain var (m)
    units: tuple = ()  # ("rec", group) | ("sred", einsum)
    outputs: tuple = ()  # output Einsums stored inside the loop
    reverse: bool = False  # positions count down: step it is position (steps - 1 - it)


@dataclass
class _LoopBuilder:
    """A loop while the planner fills it."""

    level: int
    style: str
    var: str
    units: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    reverse: bool = False

    def freeze(self) -> Loop:
        return Loop(self.level, self.style, self.var, tuple(self.units), tuple(self.outputs),
                    self.reverse)


class Planner:
    def __init__(self, low: Lowering):
        self.low = low
        a = low.a
        self.rec_groups = [g for g, v in zip(a.order, a.step_vars, strict=True) if v is not None]
        self.rec_of = {}
        for g in self.rec_groups:
            for e in g:
                self.rec_of[e.name] = g
        self.sred = {e.name: e for e in low.stream_reductions}
        self.reverse = reversed_recurrences(low, self.rec_groups)
        self.loop_of: dict = {}  # unit key -> level
        self._level_cache = {}

    def unit_level(self, key):
        if key in self.loop_of:
            return self.loop_of[key]
        if key in self.rec_of:
            group = self.rec_of[key]
            own = {e.name for e in group}
            lvl = 0
            # the initial values are read before the loop: a final iterate they read (R[0] =
            # Z[N]) puts the group in a later loop
            inits = [self.low.a.recurrences[e.name].init for e in group
                     if e.name in self.low.a.recurrences]
            for e in [*group, *inits]:
                lvl = max(lvl, self.reads_level(e, own))
            for e in group:
                self.loop_of[e.name] = lvl
            return lvl
        e = self.sred[key]
        self.loop_of[key] = lvl = self.reads_level(e, set())
        return lvl

    def reads_level(self, einsum, own) -> int:
        lvl = 0
        for acc in einsum.reads():
            lvl = max(lvl, self.access_level(acc, own))
        return lvl

    def access_level(self, acc, own) -> int:
        low, t = self.low, acc.tensor
        if t in low.inputs:
            return 0
        if t in self.rec_of and t not in low.a.recurrences:
            return 0 if t in own else self.unit_level(t)
        if t in self.rec_of:
            rec = low.a.recurrences[t]
            idx = acc.indices[rec.axis]
            final = isinstance(idx, Name) and not idx.is_index
            if t in own and not final:
                return 0
            return self.unit_level(t) + (1 if final else 0)
        if t in self.sred:
            return self.unit_level(t) + 1
        return self.reads_level(low.sole_definition(t, acc), own)

    def iterates_row(self, einsum, seen=None) -> bool:
        row = self.low.roles.row
        if row is None or self.low.roles.role[row] != "row":
            return False
        seen = seen or set()
        if row in einsum.iteration_space:
            return True
        for acc in einsum.reads():
            t = acc.tensor
            if t in self.low.inputs or t in seen:
                continue
            seen.add(t)
            for e in self.low.defs[t]:
                if self.iterates_row(e, seen):
                    return True
        return False

    def plan(self):
        low = self.low
        units = []
        for g in self.rec_groups:
            units.append(("rec", g))
        for e in low.stream_reductions:
            units.append(("sred", e))
        phases = {0: [], 1: []}
        two_phase = low.roles.row is not None and low.roles.role[low.roles.row] == "row"
        for kind, u in units:
            einsums = u if kind == "rec" else [u]
            lvl = self.unit_level(einsums[0].name)
            if two_phase and not any(self.iterates_row(e) for e in einsums):
                phases[0].append((lvl, kind, u))
            else:
                phases[1].append((lvl, kind, u))
        if not phases[0]:
            phases = {1: phases[1]}
        out = {}
        for ph, lst in phases.items():
            loops: list[_LoopBuilder] = []
            for lvl, kind, u in sorted(lst, key=lambda x: x[0]):
                if kind == "rec":
                    var = low.a.recurrences[u[0].name].var if u[0].name in low.a.recurrences else \
                        next(low.a.recurrences[e.name].var for e in u if e.name in low.a.recurrences)
                    style = "split"
                    rev = any(e.name in self.reverse for e in u)
                else:
                    var = next(v for v in u.reduced if low.roles.role.get(v) == "stream_plain")
                    style = "plain"
                    rev = reads_reversed(low, u, self.reverse)
                loop = next((lp for lp in loops if lp.level == lvl and lp.style == style
                             and lp.var == var and lp.reverse == rev), None)
                if loop is None:
                    loop = _LoopBuilder(lvl, style, var, reverse=rev)
                    loops.append(loop)
                loop.units.append((kind, u))
            out[ph] = loops
        final_phase = max(out) if out else 1
        out.setdefault(final_phase, [])
        post = [e for e in (self._output_einsum(d) for d in low.c.outputs)
                if not self._place_in_loop(e, out[final_phase])]
        frozen = {ph: tuple(lp.freeze() for lp in sorted(loops, key=lambda lp: lp.level))
                  for ph, loops in out.items()}
        return frozen, post

    def _output_einsum(self, d):
        low = self.low
        (e,) = [x for x in low.defs[d.name] if d.name not in low.a.recurrences] or [None]
        if e is None:
            raise _err(f"output {d.name} is a recurrence; write its final iterate to an output", d)
        return e

    def _place_in_loop(self, e, loops) -> bool:
        """Puts an output that iterates the streamed rank into the loop that produces it (a
        store per step); False for an output stored after the loops."""
        low = self.low
        stream_out = [v for v in e.output_vars if low.roles.role.get(v) in
                      ("stream_outer", "stream_plain", "reshape")]
        if e.name in self.sred or not stream_out:
            return False
        v = stream_out[0]
        style = "plain" if low.roles.role[v] == "stream_plain" else "split"
        lvl = self.reads_level(e, set())
        rev = reads_reversed(low, e, self.reverse)
        loop = next((lp for lp in loops if lp.level == lvl and lp.style == style
                     and lp.reverse == rev), None)
        if loop is None:
            var = v if style == "plain" else next((r.var for r in low.a.recurrences.values()), None)
            if var is None:
                raise _err(f"output {e.name} iterates the streamed rank; the Triton lowering "
                           f"cannot place it in a loop", e)
            loop = _LoopBuilder(lvl, style, var, reverse=rev)
            loops.append(loop)
        loop.outputs.append(e)
        return True


def _scan_plan(low: Lowering, phases, post):
    """Recurrences that are running sums of independent increments, ``S[n+1] = S[n] + X[n]``,
    can run all steps in parallel: increments, an exclusive prefix sum, then the steps again
    reading ``S[n]`` from memory (the chunked form of flash-linear-attention). Returns
    ``[(tensor, update, X)]`` when every recurrence of the cascade has that form."""
    roles = low.roles
    if list(phases) != [1] or len(phases[1]) != 1 or post:
        return None
    loop = phases[1][0]
    if loop.reverse or loop.style != "split" or not loop.units or any(k != "rec" for k, _ in loop.units):
        return None
    if low.split_outer_of(loop.var.upper()) is None:
        return None  # a token recurrence: the steps kernel's grid is the chunks of a split
    if roles.row is not None and roles.role[roles.row] == "row":
        return None  # grid axis 0 is taken by row blocks
    recs = low.a.recurrences
    plan = []
    for _, group in loop.units:
        for e in group:
            if e.name not in recs:
                return None
            rec = recs[e.name]
            if e.id != rec.update.id:
                continue
            inc = _independent_increment(low, e, rec)
            if inc is None:
                return None
            plan.append((e.name, e, inc))
    # every other read of a recurrence must be of the state before the step
    for e in low.c.einsums:
        for acc in e.reads():
            rec = recs.get(acc.tensor)
            if rec is None or e.id == rec.update.id:
                continue
            idx = acc.indices[rec.axis]
            if not (isinstance(idx, Name) and idx.name == rec.var):
                return None
    return plan or None


def _independent_increment(low: Lowering, e, rec):
    """``X`` of an update ``S[n+1] = S[n] + X`` with a constant start and ``X`` reading no
    recurrence, else None."""
    body = e.body
    if not isinstance(rec.init.body, Num) or not (isinstance(body, Binary) and body.op == "+"):
        return None
    carried = [i if k != rec.axis else Name(rec.var) for k, i in enumerate(e.output.indices)]
    own = [side for side in (body.lhs, body.rhs) if isinstance(side, Access)
           and side.tensor == e.name and list(side.indices) == carried]
    if len(own) != 1:
        return None
    inc = body.rhs if own[0] is body.lhs else body.lhs
    return None if _reads_recurrence(low, inc) else inc


def _reads_recurrence(low, expr, seen=None) -> bool:
    seen = seen if seen is not None else set()
    for node in walk(expr):
        if isinstance(node, Access):
            t = node.tensor
            if t in low.a.recurrences:
                return True
            if t in low.inputs or t in seen:
                continue
            seen.add(t)
            for d in low.defs.get(t, ()):
                if _reads_recurrence(low, d.body, seen):
                    return True
    return False


@dataclass(frozen=True)
class KernelPlan:
    """Roles and tiles (``lowering``), the loops of each phase, the Einsums stored after the
    loops (``post``) and the scan plan (``scan``: None for sequential loops)."""

    lowering: Lowering
    phases: Mapping[int, list]
    post: tuple[Einsum, ...]
    scan: tuple | None


def schedule(low: Lowering, config: Config) -> KernelPlan:
    """The plan of the kernels for a lowering context and a mapping."""
    phases, post = Planner(low).plan()
    scan = _scan_plan(low, phases, post) if config.scan else None
    return KernelPlan(low, phases, tuple(post), tuple(scan) if scan else None)
