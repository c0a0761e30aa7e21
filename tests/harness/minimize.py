"""Shrinks a failing case by hand-written reductions (hypothesis shrinks only what it generated in
the same run): drop outputs and the Einsums only they need, drop or weaken masks, replace an
expression by one of its operands, lower sizes. A reduction is kept when the case still verifies
and still fails the same way."""
from __future__ import annotations

from dataclasses import replace
from typing import Callable, Iterator

from einsum_ir import format_cascade
from einsum_ir.errors import CascadeError
from einsum_ir.ir import Access, Binary, Call, Cascade, Expr, Name, Num, Unary
from einsum_ir.passes import DeadEinsums

from .strategy import Case


def _children(expr: Expr) -> tuple[Expr, ...]:
    if isinstance(expr, Binary):
        return (expr.lhs, expr.rhs)
    if isinstance(expr, Unary):
        return (expr.operand,)
    if isinstance(expr, Call):
        return expr.args
    return ()


def _rebuild(expr: Expr, kids: tuple[Expr, ...]) -> Expr:
    if isinstance(expr, Binary):
        return replace(expr, lhs=kids[0], rhs=kids[1])
    if isinstance(expr, Unary):
        return replace(expr, operand=kids[0])
    return replace(expr, args=tuple(kids))


def simpler(expr: Expr) -> Iterator[Expr]:
    """``expr`` with one operator node replaced by one of its operands (or by 1)."""
    kids = _children(expr)
    for kid in kids:
        yield kid
    if kids and not isinstance(expr, Access):
        yield Num(1)
    for i, kid in enumerate(kids):
        for small in simpler(kid):
            yield _rebuild(expr, kids[:i] + (small,) + kids[i + 1:])


def _pruned(cascade: Cascade) -> Cascade:
    """Without the Einsums no output needs, and without the inputs nothing reads."""
    pruned = DeadEinsums()(cascade)
    read = {a.tensor for e in pruned.einsums for a in e.reads()}
    return replace(pruned, inputs=tuple(d for d in pruned.inputs if d.name in read))


def _renamed(expr: Expr, old: str, new: str) -> Expr:
    if isinstance(expr, Access):
        return replace(expr, tensor=new if expr.tensor == old else expr.tensor)
    kids = _children(expr)
    return _rebuild(expr, tuple(_renamed(k, old, new) for k in kids)) if kids else expr


def _inlined_copies(cascade: Cascade) -> Iterator[Cascade]:
    """``T[i, j] = S[i, j]`` removed, its readers reading S."""
    outputs = {d.name for d in cascade.outputs}
    for e in cascade.einsums:
        body = e.body
        if (e.name in outputs or e.where is not None or e.reducer is not None
                or not isinstance(body, Access) or body.indices != e.output.indices
                or len(cascade.definitions(e.name)) != 1):
            continue
        rest = [x for x in cascade.einsums if x is not e]
        yield cascade.replace_einsums(
            replace(x, body=_renamed(x.body, e.name, body.tensor),
                    where=x.where and _renamed(x.where, e.name, body.tensor)) for x in rest)


def _axes(cascade: Cascade) -> dict:
    axes = {d.name: d.axes for d in cascade.inputs}
    for e in cascade.einsums:
        axes.setdefault(e.name, tuple(i.name if isinstance(i, Name) else "" for i in e.output.indices))
    return axes


def _plain_index(expr: Expr, axes: dict) -> Iterator[Expr]:
    """``expr`` with one affine index (``p / 2``, ``m + 1``) replaced by the axis's own index."""
    if isinstance(expr, Access):
        names = axes.get(expr.tensor, ())
        for k, index in enumerate(expr.indices):
            if not isinstance(index, Name) and k < len(names) and names[k]:
                yield replace(expr, indices=expr.indices[:k] + (Name(names[k]),) + expr.indices[k + 1:])
        return
    kids = _children(expr)
    for i, kid in enumerate(kids):
        for small in _plain_index(kid, axes):
            yield _rebuild(expr, kids[:i] + (small,) + kids[i + 1:])


def _candidates(cascade: Cascade) -> Iterator[Cascade]:
    for d in cascade.sizes:
        yield replace(cascade, sizes=tuple(s for s in cascade.sizes if s is not d))
    if len(cascade.outputs) > 1:
        for decl in cascade.outputs:
            yield replace(cascade, outputs=tuple(d for d in cascade.outputs if d is not decl))
    yield from _inlined_copies(cascade)
    for k, e in enumerate(cascade.einsums):
        def put(new, k=k):
            return cascade.replace_einsums(cascade.einsums[:k] + (new,) + cascade.einsums[k + 1:])
        if e.where is not None:
            yield put(replace(e, where=None))
            for small in simpler(e.where):
                yield put(replace(e, where=small))
        for small in simpler(e.body):
            yield put(replace(e, body=small))
        for small in _plain_index(e.body, _axes(cascade)):
            yield put(replace(e, body=small))
    for d in cascade.sizes:
        if isinstance(d.default, Num) and d.default.value > 1:
            for value in sorted({1, 2, d.default.value // 2, d.default.value - 1}):
                if 0 < value < d.default.value:
                    sizes = tuple(replace(s, default=Num(value)) if s is d else s for s in cascade.sizes)
                    yield replace(cascade, sizes=sizes)


def candidates(cascade: Cascade) -> Iterator[Cascade]:
    for cand in _candidates(cascade):
        yield _pruned(cand)


def minimize(case: Case, fails: Callable[[Case], bool], budget: int = 400) -> Case:
    """The smallest case reachable by single reductions that ``fails`` still accepts."""
    best, tried = case, 0
    if best.sim_scale != 1 and fails(Case(best.text, 1)):
        best = Case(best.text, 1)
    improved = True
    while improved and tried < budget:
        improved = False
        for cand in candidates(best.cascade):
            text = format_cascade(cand)
            if len(text) >= len(best.text) and cand.sizes == best.cascade.sizes:
                continue
            if text == best.text:
                continue
            trial = Case(text, best.sim_scale)
            try:
                _ = trial.cascade  # verifies
            except CascadeError:
                continue
            tried += 1
            if fails(trial):
                best, improved = trial, True
                break
            if tried >= budget:
                break
    return best
