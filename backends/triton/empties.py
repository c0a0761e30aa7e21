"""A guard of the single-kernel lowering: a reduction must not add the empty points of a value
that a loop has finished.

A stream reduction's or recurrence's final value (an accumulator, or its copy in scratch
between phases) keeps no validity terms: where its definition's ``where`` (or an ancestor's)
leaves points of its own indices empty, the final holds the reducer's identity or NaN there. A
later reduction over such an index would add those points (``sum[na] NQ * exp(AV)`` with ``AV``
empty past ``na < NV``), where the interpreter adds nothing. The lowering refuses that read at
its Einsum, so the multi-kernel partition cuts there and restores the empty points by the
predicate (``backends/triton/program.py``)."""
from __future__ import annotations

from einsum_ir.ir import Einsum, Name, index_vars

from .program import ancestor_terms
from .tiles import _err


def refuse_reductions_over_empty_finals(low) -> None:
    """Raises at the first Einsum that reduces over an index at which it reads (directly or
    through inlined elementwise Einsums) a finished loop value with empty points there."""
    finals = set(low.stream_red_names) | set(low.a.recurrences)
    for e in low.c.einsums:
        if not e.reduced:
            continue
        for acc, indices in _reads_through_elementwise(low, e, finals):
            empty_at = _empty_axes(low.c, acc.tensor)
            for k, i in enumerate(indices):
                if k in empty_at and isinstance(i, Name) and i.name in e.reduced:
                    raise _err(f"{e.name} reduces over {i.name} reading {acc.tensor}, which a "
                               f"loop finishes with empty points along {i.name} (a 'where' of "
                               f"its definition); one kernel would add them", e,
                               hint="the multi-kernel lowering cuts here and restores them")


def _reads_through_elementwise(low, einsum: Einsum, finals: set):
    """The reads of finished loop values by ``einsum``, following reads of elementwise
    intermediates (which the lowering inlines), with their indices in ``einsum``'s names."""
    todo = [(acc, acc.indices) for acc in einsum.reads()]
    seen = set()
    while todo:
        acc, indices = todo.pop()
        key = (acc.tensor, tuple(map(str, indices)))
        if acc.tensor in low.inputs or key in seen:
            continue
        seen.add(key)
        if acc.tensor in finals:
            yield acc, indices
            continue
        defs = low.defs.get(acc.tensor, ())
        for d in defs:
            if d.reduced:
                continue
            names = {o.name: i for o, i in zip(d.output.indices, indices, strict=True)
                     if isinstance(o, Name)}
            for inner in d.reads():
                todo.append((inner, tuple(names.get(i.name) if isinstance(i, Name) else None
                                          for i in inner.indices)))


def _empty_axes(cascade, name: str) -> set[int]:
    """The positions of ``name``'s own indices that a ``where`` of its definition or of an
    ancestor's constrains (the points there may be empty)."""
    defs = cascade.definitions(name)
    if len(defs) != 1:
        return set()
    own = [i.name if isinstance(i, Name) else None for i in defs[0].output.indices]
    out = set()
    for term in ancestor_terms(cascade, name):
        used = set(index_vars(term))
        if used <= {n for n in own if n}:
            out |= {k for k, n in enumerate(own) if n in used}
    return out


__all__ = ["refuse_reductions_over_empty_finals"]
