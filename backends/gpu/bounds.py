"""Loop bounds of a planned kernel, as typed bound expressions (einsum_ir.affine).

A loop step (one block of the streamed rank) may be skipped when every unit's contribution there
is empty. A unit's contribution is empty where any Einsum of its "empty-if" set is: intersecting
operations propagate emptiness, union operations (``+``, ``max``, ``min``) only when both sides
are empty, and a recurrence's own carried value is neutral (an update whose local parts are empty
keeps the state). The predicates of those Einsums, in the linear fragment, give the range of the
loop counter by interval arithmetic over the block: causal attention stops at the diagonal, a
sliding window visits only the window's blocks. A disjunction (a window plus sinks, ``m < S or
p - W < m``) gives a union of ranges: the loop runs over their hull and the steps in the gaps are
skipped (``LoopBounds.parts``), so the blocks visited are exactly those some part meets.

Symbols of the bounds: ``("size", NAME)`` a size of the cascade, ``("block", var)`` the tile of an
index variable, ``("pid",)`` the row block of the program, ``("idx", var)`` a grid index. The
Triton renderer spells them; the cost model and the tests evaluate them.
"""
from __future__ import annotations

from dataclasses import dataclass

from einsum_ir.analysis.skipped_step import keeps_state
from einsum_ir.affine import BoundExpr, CDiv, CeilDiv, FloorDiv, Linear, Max, Min, constraints_of
from einsum_ir.data_masks import reads_tensors
from einsum_ir.ir import Access, Binary, Call, Unary

from .plan import Lowering
from .schedule import Loop

PID = ("pid",)
ZERO = Linear()

_TOP = object()  # the neutral "empty-if" set of a recurrence's carried value
_UNION = ("+", "max", "min")


def _meet(a, b):  # union ops: empty only where both sides are
    if a is _TOP:
        return b
    if b is _TOP:
        return a
    return a & b


def _join(a, b):  # intersecting ops: empty where either side is
    if a is _TOP or b is _TOP:
        return _TOP
    return a | b


def _empties_expr(low: Lowering, expr, own, cache):
    if isinstance(expr, Access):
        t = expr.tensor
        if t in own and t in low.a.recurrences:
            return _TOP
        if t in low.inputs or t in low.stream_red_names or t in low.a.recurrences:
            return frozenset()
        (d,) = low.defs[t]
        return empties_einsum(low, d, own, cache)
    if isinstance(expr, Unary):
        return _empties_expr(low, expr.operand, own, cache)
    if isinstance(expr, Binary):
        a = _empties_expr(low, expr.lhs, own, cache)
        b = _empties_expr(low, expr.rhs, own, cache)
        return _meet(a, b) if expr.op in _UNION else _join(a, b)
    if isinstance(expr, Call):
        sets = [_empties_expr(low, x, own, cache) for x in expr.args]
        out = sets[0]
        for x in sets[1:]:
            out = _meet(out, x) if expr.func in ("max", "min") else _join(out, x)
        return out
    return frozenset()


def empties_einsum(low: Lowering, e, own, cache):
    """The Einsums whose emptiness makes ``e``'s value empty (``_TOP``: never empty alone)."""
    key = (e.name, e.output, frozenset(own))
    if key in cache:
        return cache[key]
    cache[key] = frozenset()  # cycles: nothing
    out = _empties_expr(low, e.body, own, cache)
    if e.where is not None:
        out = _join(out, frozenset({e.name}))
    cache[key] = out
    return out


@dataclass(frozen=True)
class StepRange:
    """Loop counter bounds: ``lo`` and ``hi`` are ``None`` where the predicate gives none."""

    lo: BoundExpr | None
    hi: BoundExpr | None


@dataclass(frozen=True)
class LoopBounds:
    """``for it in range(lo, hi)``; ``notes``: the predicates the bounds come from; ``parts``:
    where the steps visited are a union of ranges inside the hull ``[lo, hi)``, those ranges
    as ``(lo, hi)`` pairs (empty: every step of the hull is visited)."""

    count: BoundExpr
    lo: BoundExpr
    hi: BoundExpr
    notes: tuple[str, ...] = ()
    parts: tuple[tuple[BoundExpr, BoundExpr], ...] = ()


def _baked(low: Lowering):
    return lambda name: int(low.sizes[name]) if low.is_baked(name) and name in low.sizes else None


def _form_terms(low: Lowering, form, loop: Loop, full: bool):
    """(A, terms, const, plain block) of ``form`` over the loop block, or None if an index
    has a role the bounds cannot range over. ``A``: the loop counter's coefficient; ``terms``
    and ``const`` the extreme of the rest over the block (max, or min with ``full``)."""
    roles = low.roles
    a_coef, terms, const, plain_blk = 0, [], form.const, None
    for key, coef in form.indices:
        if coef == 0:
            continue
        role = roles.role.get(key)
        if key == loop.var:
            a_coef += coef
            if loop.style == "plain":
                plain_blk = ("block", key)
                if (coef < 0) != full:  # the block's last position
                    terms.append(((plain_blk,), coef))
                    const -= coef
        elif role == "batch":
            terms.append(((("idx", key),), coef))
        elif role == "row":  # rows pid * BLOCK .. pid * BLOCK + BLOCK - 1
            terms.append(((PID, ("block", key)), coef))
            if (coef < 0) != full:
                terms.append(((("block", key),), coef))
                const -= coef
        elif role in ("col", "chunk_row", "full"):
            ext = low.sizes[key.upper()]
            const += coef * (0 if (coef > 0) != full else ext - 1)
        else:
            return None
    terms += [(((("size", name)),), coef) for name, coef in form.sizes]
    return a_coef, terms, const, plain_blk


def pred_range(low: Lowering, einsum, loop: Loop, full: bool = False) -> StepRange | None:
    """The loop counter range that may meet ``einsum``'s predicate (the hull of a
    disjunction's parts); with ``full``, the range where every point of the block meets it
    (None: unknown)."""
    if full and reads_tensors(einsum.where):
        return None  # (a data-dependent part, dropped from an ``and``, can fail anywhere)
    parts = pred_ranges(low, einsum, loop, full)
    if parts is None or full and len(parts) != 1:
        return None
    return _hull(parts)


def _hull(parts) -> StepRange:
    if len(parts) == 1:
        return parts[0]
    los, his = [r.lo for r in parts], [r.hi for r in parts]
    return StepRange(None if any(x is None for x in los) else _fold(Min, los),
                     None if any(h is None for h in his) else _fold(Max, his))


def pred_ranges(low: Lowering, einsum, loop: Loop, full: bool = False):
    """The loop counter ranges that may meet ``einsum``'s predicate: one per part of its
    disjunctive form (None: unknown)."""
    # (the steps that may meet it: a necessary condition will do, not for ``full``)
    clauses = constraints_of(einsum.where, _baked(low), relax=not full)
    if clauses is None:
        return None
    results = []
    for conj in clauses:
        lo_c, hi_c = [], []
        for form in conj:
            parts = _form_terms(low, form, loop, full)
            if parts is None:
                if full:
                    return None
                continue
            a_coef, terms, const, plain_blk = parts
            if a_coef == 0:
                continue
            if plain_blk is not None:
                den, a_terms, a_const = Linear.of(((plain_blk,), abs(a_coef))), \
                    [((plain_blk,), abs(a_coef))], 0
            else:
                den, a_terms, a_const = Linear(const=abs(a_coef)), [], abs(a_coef)
            if a_coef > 0:  # A*it + rest <= 0  ->  it <= floor(-rest / A): hi = (A - rest) // A
                num = Linear.of(*[(p, -c) for p, c in terms], *a_terms, const=-const + a_const)
                hi_c.append(FloorDiv(num, den))
            else:  # it >= ceil(rest / -A)
                lo_c.append(CeilDiv(Linear.of(*terms, const=const), den))
        results.append(StepRange(_fold(Max, lo_c), _fold(Min, hi_c)))
    return tuple(results)


def _fold(kind, items):
    """``kind(kind(a, b), c)``: nested as the code reads; None for no items."""
    items = list(items)
    if not items:
        return None
    out = items[0]
    for x in items[1:]:
        out = kind((out, x))
    return out


def step_count(low: Lowering, loop: Loop) -> BoundExpr:
    """The number of blocks of the loop's rank."""
    if loop.style == "split":
        split = low.split_outer_of(loop.var.upper())
        if split is None:  # a token recurrence: one step per index
            return Linear.of(((("size", loop.var.upper()),), 1))
        return CDiv(Linear.of(((("size", split.rank),), 1)), Linear.of(((("size", split.inner),), 1)))
    return CDiv(Linear.of(((("size", loop.var.upper()),), 1)),
                Linear.of(((("block", loop.var),), 1)))


def _targets(low: Lowering, loop: Loop):
    targets = []
    for kind, u in loop.units:
        if kind == "rec":
            own = {e.name for e in u}
            targets += [(e, own) for e in u if e.name in low.a.recurrences
                        and low.a.recurrences[e.name].update.id == e.id]
        else:
            targets.append((u, set()))
    return targets


MAX_PARTS = 4  # ranges of a union kept apart; beyond, their hull (every step of it visited)

_ALL = (StepRange(None, None),)


def _intersect(a: tuple, b: tuple) -> tuple:
    """Two unions of ranges intersected: the pairwise intersections of their parts."""
    if a == _ALL:
        return b
    if b == _ALL:
        return a
    out = []
    for x in a:
        for y in b:
            lo = _fold(Max, [v for v in (x.lo, y.lo) if v is not None])
            hi = _fold(Min, [v for v in (x.hi, y.hi) if v is not None])
            if StepRange(lo, hi) not in out:
                out.append(StepRange(lo, hi))
    return tuple(out) if len(out) <= MAX_PARTS else (_hull(out),)


def _target_ranges(low: Lowering, deps, loop: Loop, notes: list) -> tuple:
    """The steps where a unit whose contribution is empty where any of ``deps`` is may be
    non-empty: the intersection of the ranges that meet each dep's predicate."""
    from einsum_ir.printer import format_expr

    out = _ALL
    for name in sorted(deps):
        pe = low.defs[name][0]
        parts = pred_ranges(low, pe, loop)
        if parts is None or all(r.lo is None and r.hi is None for r in parts):
            continue
        note = f"{name}: where {format_expr(pe.where)}"
        if note not in notes:
            notes.append(note)
        out = _intersect(out, parts if len(parts) <= MAX_PARTS else (_hull(parts),))
    return out


def loop_bounds(low: Lowering, loop: Loop) -> LoopBounds:
    """The blocks a loop visits: those where some unit's contribution may be non-empty."""
    count = step_count(low, loop)
    unbounded = LoopBounds(count, ZERO, count)
    if loop.outputs or loop.reverse:  # (the predicates' ranges are of positions, not steps)
        return unbounded
    cache: dict = {}
    union, notes = [], []
    states = frozenset(e.name for kind, u in loop.units if kind == "rec" for e in u
                       if e.name in low.a.recurrences)
    for e, own in _targets(low, loop):
        deps = empties_einsum(low, e, own, cache)
        if deps is _TOP or not deps:
            return unbounded
        if own and not _skip_keeps(low, e, states, deps):  # a skipped step would change it
            return unbounded
        ranges = _target_ranges(low, deps, loop, notes)
        if ranges == _ALL:
            return unbounded
        union += [r for r in ranges if r not in union]
    if len(union) > MAX_PARTS:
        union = [_hull(union)]
    hull = _hull(union)
    lo = ZERO if hull.lo is None else Max((_sorted_fold(Min, [r.lo for r in union]), ZERO))
    hi = count if hull.hi is None else Min((_sorted_fold(Max, [r.hi for r in union]), count))
    parts = () if len(union) == 1 else tuple(
        (ZERO if r.lo is None else r.lo, count if r.hi is None else r.hi) for r in union)
    return LoopBounds(count, lo, hi, tuple(notes), parts)


def _skip_keeps(low: Lowering, update, states: frozenset, deps) -> bool:
    """Whether ``update`` keeps its state in a step where any one Einsum of ``deps`` is empty."""
    def defs(tensor: str):
        found = low.defs.get(tensor, ())
        if tensor in low.inputs or tensor in low.stream_red_names or len(found) != 1:
            return None  # finished before the loop, or a recurrence of another loop
        return found[0]

    return all(keeps_state(update, states, frozenset({d}), defs) for d in deps)


def _sorted_fold(kind, items):
    return _fold(kind, sorted(set(items), key=repr))


def bound_env(low: Lowering, sizes: dict, row_block: int = 0) -> dict:
    """Values of the bound symbols for resolved sizes and one row block (grid indices unset)."""
    env = {("size", k): v for k, v in sizes.items()}
    env.update({("block", v): int(b[1]) for v, b in low.roles.block.items()})
    env[PID] = row_block
    return env


def visited(bounds: LoopBounds, env: dict):
    """The loop counter values a program with these symbol values visits (ascending)."""
    from einsum_ir.affine import evaluate

    hull = range(evaluate(bounds.lo, env), evaluate(bounds.hi, env))
    if not bounds.parts:
        return hull
    spans = [(evaluate(lo, env), evaluate(hi, env)) for lo, hi in bounds.parts]
    return [it for it in hull if any(lo <= it < hi for lo, hi in spans)]


def visited_count(bounds: LoopBounds, env: dict) -> int:
    """How many steps :func:`visited` gives, without listing them where the hull is enough."""
    from einsum_ir.affine import evaluate

    if not bounds.parts:
        return max(0, evaluate(bounds.hi, env) - evaluate(bounds.lo, env))
    return len(visited(bounds, env))
