"""The direction of a recurrence loop, from the index arithmetic of the reads.

A recurrence ``R[n+1] = f(R[n])`` always steps forward in ``n``, but its consumers may read it at
reversed steps, ``R[N - 1 - n]`` (the gradient of a forward recurrence, ``cascade grad``): at
position ``n`` they need the state after ``N - 1 - n`` steps. Such a recurrence runs as a loop
whose positions count down: step ``it`` is position ``N - 1 - it``, where the consumers read the
carried state. The recurrence is *reversed* when a read outside its group indexes its step axis
with coefficient -1 on an index; reads forward and reversed by different consumers are refused.
"""
from __future__ import annotations

from einsum_ir.affine import affine_of
from einsum_ir.errors import CascadeError


def step_coefficient(index) -> int | None:
    """+1 or -1: how the step an access reads moves with the reader's index; None for a read
    at a fixed step (``R[0]``, the final ``R[N]``) or outside the affine fragment."""
    form = affine_of(index, lambda _name: None)
    coefs = {c for _, c in (form.indices if form is not None else ()) if c}
    if len(coefs) != 1 or not coefs <= {1, -1}:
        return None
    return coefs.pop()


def reversed_recurrences(low, rec_groups) -> frozenset:
    """The recurrences whose consumers (Einsums outside their group) read them at reversed
    steps; a recurrence read both ways is refused at the second kind of read."""
    member = {e.id: k for k, g in enumerate(rec_groups) for e in g}
    seen: dict = {}  # recurrence -> (direction, access)
    for e in low.c.einsums:
        for acc in e.reads():
            rec = low.a.recurrences.get(acc.tensor)
            if rec is None or member.get(e.id, -1) == member.get(rec.update.id):
                continue
            coef = step_coefficient(acc.indices[rec.axis])
            if coef is None:
                continue
            before = seen.setdefault(acc.tensor, (coef, acc))
            if before[0] != coef:
                raise CascadeError(f"{acc.tensor} is read at forward and at reversed steps of "
                                   f"its recurrence; the Triton lowering runs a recurrence loop "
                                   f"in one direction", acc.span)
    return frozenset(name for name, (coef, _) in seen.items() if coef < 0)


def reads_reversed(low, einsum, reverse: frozenset, seen=None) -> bool:
    """Whether ``einsum`` reads a reversed recurrence at a reversed step, directly or through
    the intermediates it inlines."""
    seen = seen if seen is not None else set()
    for node in einsum.reads():
        rec = low.a.recurrences.get(node.tensor)
        if rec is not None:
            if node.tensor in reverse and step_coefficient(node.indices[rec.axis]) == -1:
                return True
            continue
        if node.tensor in low.inputs or node.tensor in seen:
            continue
        seen.add(node.tensor)
        if any(reads_reversed(low, d, reverse, seen) for d in low.defs.get(node.tensor, ())):
            return True
    return False
