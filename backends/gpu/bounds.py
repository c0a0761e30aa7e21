"""Loop bounds of a planned kernel, as typed bound expressions (einsum_ir.affine).

A loop step (one block of the streamed rank) may be skipped when every unit's contribution there
is empty. A unit's contribution is empty where any Einsum of its "empty-if" set is: intersecting
operations propagate emptiness, union operations (``+``, ``max``, ``min``) only when both sides
are empty, and a recurrence's own carried value is neutral (an update whose local parts are empty
keeps the state). The predicates of those Einsums, in the linear fragment, give the range of the
loop counter by interval arithmetic over the block: causal attention stops at the diagonal, a
sliding window visits only the window's blocks.

Symbols of the bounds: ``("size", NAME)`` a size of the cascade, ``("block", var)`` the tile of an
index variable, ``("pid",)`` the row block of the program, ``("idx", var)`` a grid index. The
Triton renderer spells them; the cost model and the tests evaluate them.
"""
from __future__ import annotations

from dataclasses import dataclass

from einsum_ir.affine import BoundExpr, CDiv, CeilDiv, FloorDiv, Linear, Max, Min, constraints_of
from einsum_ir.data_masks import reads_tensors
from einsum_ir.ir import Access, Binary, Call, Unary

from .plan import Lowering
from .schedule import Loop
from .stationary import keeps_state

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
    """``for it in range(lo, hi)``; ``notes``: the predicates the bounds come from."""

    count: BoundExpr
    lo: BoundExpr
    hi: BoundExpr
    notes: tuple[str, ...] = ()


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
    """The loop counter range that may meet ``einsum``'s predicate; with ``full``, the range
    where every point of the block meets it (None: unknown)."""
    clauses = constraints_of(einsum.where, _baked(low))
    if clauses is None or full and (len(clauses) != 1 or reads_tensors(einsum.where)):
        return None  # (a data-dependent part, dropped from an ``and``, can fail anywhere)
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
    if len(results) == 1:
        return results[0]
    # a disjunction: the hull of its parts
    los, his = [r.lo for r in results], [r.hi for r in results]
    return StepRange(None if any(x is None for x in los) else _fold(Min, los),
                     None if any(h is None for h in his) else _fold(Max, his))


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


def loop_bounds(low: Lowering, loop: Loop) -> LoopBounds:
    """The blocks a loop visits: those where some unit's contribution may be non-empty."""
    from einsum_ir.printer import format_expr

    count = step_count(low, loop)
    unbounded = LoopBounds(count, ZERO, count)
    if loop.outputs or loop.reverse:  # (the predicates' ranges are of positions, not steps)
        return unbounded
    cache: dict = {}
    los, his, notes = [], [], []
    states = frozenset(e.name for kind, u in loop.units if kind == "rec" for e in u
                       if e.name in low.a.recurrences)
    for e, own in _targets(low, loop):
        deps = empties_einsum(low, e, own, cache)
        if deps is _TOP or not deps:
            return unbounded
        if own and not keeps_state(low, e, states, deps):  # a skipped step would change it
            return unbounded
        u_lo, u_hi = [], []
        for name in sorted(deps):
            pe = low.defs[name][0]
            r = pred_range(low, pe, loop)
            if r is None:
                continue
            note = f"{name}: where {format_expr(pe.where)}"
            if note not in notes:
                notes.append(note)
            if r.lo is not None:
                u_lo.append(r.lo)
            if r.hi is not None:
                u_hi.append(r.hi)
        if not u_lo and not u_hi:
            return unbounded
        los.append(_fold(Max, u_lo))
        his.append(_fold(Min, u_hi))
    lo, hi = ZERO, count
    if los and all(x is not None for x in los):
        lo = Max((_fold(Min, sorted(set(los), key=repr)), ZERO))
    if his and all(x is not None for x in his):
        hi = Min((_fold(Max, sorted(set(his), key=repr)), count))
    return LoopBounds(count, lo, hi, tuple(notes))


def bound_env(low: Lowering, sizes: dict, row_block: int = 0) -> dict:
    """Values of the bound symbols for resolved sizes and one row block (grid indices unset)."""
    env = {("size", k): v for k, v in sizes.items()}
    env.update({("block", v): int(b[1]) for v, b in low.roles.block.items()})
    env[PID] = row_block
    return env


def visited(bounds: LoopBounds, env: dict) -> range:
    """The loop counter values a program with these symbol values visits."""
    from einsum_ir.affine import evaluate

    return range(evaluate(bounds.lo, env), evaluate(bounds.hi, env))
